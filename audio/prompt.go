package audio

// PromptID names a spoken prompt. Its value is the id in prompts/catalog.tsv and the name of
// the prompt's audio file.
type PromptID string

// The prompts the call needs. LoadPrompts refuses a catalogue that lacks one of them in any
// language.
const (
	PromptGreeting      PromptID = "greeting"       // bilingual: asks for the language
	PromptEnterID       PromptID = "enter_id"       // asks for the caller's ID number
	PromptEnterPIN      PromptID = "enter_pin"      // asks for the caller's PIN
	PromptPINRejected   PromptID = "pin_rejected"   // ID or PIN wrong, try again
	PromptLockedOut     PromptID = "locked_out"     // too many wrong attempts
	PromptEnterNumber   PromptID = "enter_number"   // asks for the number to call
	PromptInvalidNumber PromptID = "invalid_number" // not a phone number
	PromptBlocked       PromptID = "blocked"        // the number may not be called
	PromptPrivate       PromptID = "private"        // privileged call: not recorded
	PromptFree          PromptID = "free"           // free and confidential: not recorded
	PromptNoticeCaller  PromptID = "notice_caller"  // recording notice to the caller
	PromptNoticeCallee  PromptID = "notice_callee"  // recording notice and accept/decline keys to the called party
	PromptNotAccepted   PromptID = "not_accepted"   // the called party declined
	PromptBusy          PromptID = "busy"           // the line is busy
	PromptNoAnswer      PromptID = "no_answer"      // nobody answered
	PromptCallFailed    PromptID = "call_failed"    // the call could not be completed
	PromptWarning60     PromptID = "warning_60"     // one minute left
	PromptWarning30     PromptID = "warning_30"     // thirty seconds left
	PromptTimeLimit     PromptID = "time_limit"     // the call's time is up
	PromptFarEndHangup  PromptID = "far_end_hangup" // the called party hung up
	PromptNoInput       PromptID = "no_input"       // the caller entered nothing
	PromptUnavailable   PromptID = "unavailable"    // the phone cannot decide safely, so it refuses calls
	PromptHangUp        PromptID = "hang_up"        // after a call ended, before the off-hook tone
	PromptSimFarEnd     PromptID = "sim_far_end"    // the simulated called party's voice in test calls
)

// required lists the constants above, in the order a call meets them.
var required = [...]PromptID{
	PromptGreeting, PromptEnterID, PromptEnterPIN, PromptPINRejected, PromptLockedOut,
	PromptEnterNumber, PromptInvalidNumber, PromptBlocked, PromptPrivate, PromptFree,
	PromptNoticeCaller, PromptNoticeCallee, PromptNotAccepted, PromptBusy, PromptNoAnswer,
	PromptCallFailed, PromptWarning60, PromptWarning30, PromptTimeLimit, PromptFarEndHangup,
	PromptNoInput, PromptUnavailable, PromptHangUp, PromptSimFarEnd,
}

// PromptIDs returns the prompts that LoadPrompts guarantees in every language, so that a
// caller's tests can check they handle each one. The slice is the caller's to keep.
func PromptIDs() []PromptID {
	ids := required
	return ids[:]
}
