// Package policy is the facility policy a phone obeys: who may call (caller IDs, PIN
// verifiers, languages, allowed lists, call limits), which numbers are blocked or free, the
// dial plan numbers are read under, and the timeouts and limits of a call.
//
// It keeps the promise that the phone decides from the facility's written rules, never from
// a silent default. So parsing is strict: unknown fields, duplicate keys, nulls, missing
// limits, numbers that do not normalise and rules that contradict each other (a number both
// blocked and free, or blocked and on a caller's allowed list) are errors, and every error
// names the field it is about, as in "callers[3].pin_verifier: ...". The only defaults are
// these:
//
//   - a caller without "language" hears English ("en");
//   - a caller without "call_limit" gets limits.call_limit;
//   - a caller without "allowed_numbers" may call any number the rest of the policy allows;
//     an empty list is refused, because it reads both as "no one" and as "anyone";
//   - a policy without "blocked_numbers" or "free_numbers" has none;
//   - a dial plan without "area_code" refuses seven-digit numbers, and one without
//     "outside_digit" has none;
//   - a policy without "retention" keeps call records' numbers DefaultCallRecordRetention;
//   - a policy without "firmware" lets new firmware reboot the phone at any idle moment;
//     with it, only inside its "reboot_window" ("02:00-05:00", across midnight allowed) in
//     its "time_zone" (an IANA name: the zone database is built in), both required.
//
// Every number in the file is normalised to E.164 with the policy's own dial plan
// (dialplan.Plan.Written) when the policy is parsed, so lookups compare one form only.
//
// [Parse] works on bytes and does no I/O, so that the same code can take the verified bytes
// of a signed target; [Load] reads a local file.
//
// # The file
//
//	{
//	  "version": 1,
//	  "facility": "demo-county",
//	  "dial_plan": {"country": "US", "area_code": "512", "outside_digit": ""},
//	  "limits": {
//	    "max_pin_attempts": 3, "lockout": "15m", "call_limit": "15m",
//	    "privileged_call_limit": "60m", "entry_timeout": "10s", "inter_digit_timeout": "4s",
//	    "ring_timeout": "45s", "accept_timeout": "20s", "language_timeout": "5s"
//	  },
//	  "callers": [
//	    {"id": "1001", "pin_verifier": "$argon2id$v=19$...", "language": "en",
//	     "allowed_numbers": ["+1 512 555 0199"], "call_limit": "20m"}
//	  ],
//	  "blocked_numbers": ["(512) 555-0166"],
//	  "free_numbers": ["1-800-656-4673"],
//	  "recording": {
//	    "recipients": ["age1...investigations", "age1...escrow"],
//	    "segment": "5s", "spool_max_bytes": 268435456, "when_full": "refuse"
//	  }
//	}
//
// "recording" says to whom recordings are sealed (age X25519 recipients, at least two: the
// phone holds no key that opens them, and no single key holder is the only way in), how long
// each sealed segment is (1s to 60s: a power cut loses at most the one being written), how
// large the spool of sealed files may grow, and what happens when it is full. The only rule
// for a full spool is "refuse": new recorded calls are refused with a prompt and an alert is
// logged, and nothing already recorded is dropped.
//
// Durations are Go duration strings ("90s", "15m", "1h30m") and must be positive.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wallphone/wallphone/dialplan"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/recording/recipients"
)

// Errors. Parse wraps them in a [*FieldError] that names the field; test with errors.Is.
// Errors from the dialplan, pin and recipients packages (a number, a plan, a verifier, a
// recipient) are wrapped too.
var (
	// ErrSyntax: the bytes are not one JSON object in UTF-8.
	ErrSyntax = errors.New("policy: not a JSON object")
	// ErrUnknownField: a key the schema does not have (a typo, or a newer schema).
	ErrUnknownField = errors.New("policy: unknown field")
	// ErrDuplicateKey: one object has the same key twice; JSON would keep only the last.
	ErrDuplicateKey = errors.New("policy: duplicate key")
	// ErrType: a value of the wrong JSON type, or null.
	ErrType = errors.New("policy: wrong type")
	// ErrMissing: a required field is absent.
	ErrMissing = errors.New("policy: missing field")
	// ErrValue: a value out of range or of the wrong form.
	ErrValue = errors.New("policy: invalid value")
	// ErrDuplicateCaller: two callers have the same ID.
	ErrDuplicateCaller = errors.New("policy: duplicate caller id")
	// ErrConflict: two rules contradict each other, such as a number both blocked and free.
	ErrConflict = errors.New("policy: conflicting rules")
)

const (
	// MaxFileSize bounds what Load reads: room for tens of thousands of callers.
	MaxFileSize = 16 << 20
	// MaxPINAttempts bounds limits.max_pin_attempts; more would be no limit at all.
	MaxPINAttempts = 100
	// MaxCallerIDLen is the longest caller ID, in digits.
	MaxCallerIDLen = 16
)

// Languages a caller may have.
const (
	English = "en"
	Spanish = "es"
)

// FieldError is an error about one field of a policy.
type FieldError struct {
	// Path names the field as in "callers[3].pin_verifier"; empty for the whole document.
	Path string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(path string, err error) error { return &FieldError{Path: path, Err: err} }

// Limits are the facility's timeouts and limits. All are required in the file and positive.
type Limits struct {
	// MaxPINAttempts failed PINs in a row lock a caller ID out for Lockout.
	MaxPINAttempts int
	Lockout        time.Duration
	// CallLimit is the length of a call, unless the caller has their own.
	CallLimit time.Duration
	// PrivilegedCallLimit is the length of a call to a privileged number.
	PrivilegedCallLimit time.Duration
	// EntryTimeout is how long the phone waits for the first key of an ID, PIN or number.
	EntryTimeout time.Duration
	// InterDigitTimeout is how long it waits for the next key once entry has begun.
	InterDigitTimeout time.Duration
	// RingTimeout is how long the called party's phone may ring.
	RingTimeout time.Duration
	// AcceptTimeout is how long the called party has to accept a recorded call.
	AcceptTimeout time.Duration
	// LanguageTimeout is how long the greeting waits for a language choice.
	LanguageTimeout time.Duration
}

// WhenFullRefuse is the one rule for a full spool: refuse new recorded calls, keep every
// recording already made.
const WhenFullRefuse = "refuse"

// Limits of the recording section.
const (
	MinRecipients    = 2
	MinSegment       = time.Second
	MaxSegment       = time.Minute
	MinSpoolMaxBytes = 1 << 20
)

// Recording is how the phone seals and keeps recordings.
type Recording struct {
	// Recipients are age X25519 recipients ("age1..."), at least MinRecipients, distinct.
	Recipients []string
	// Segment is the length of one sealed segment.
	Segment time.Duration
	// SpoolMaxBytes bounds the sealed files waiting on the phone.
	SpoolMaxBytes int64
	// WhenFull is WhenFullRefuse.
	WhenFull string
}

// Stale is the facility's rule for a phone whose registry is past its expiry with no fresh
// copy to be had. Every policy states it. It always keeps deciding from its last verified registry (never an empty
// one) and marks each call it decides so; past RefuseRecordedAfter (0: never, written StaleNever) it also stops
// placing calls that would be recorded, since a number registered meanwhile would be
// recorded, and connects only privileged and free numbers.
type Stale struct {
	RefuseRecordedAfter time.Duration
}

// Retention is how long the phone keeps who called whom. A call record keeps the caller's ID
// and the number called (recorded and blocked calls) only while the phone needs them: while the
// call's recording is still on the phone, and for CallRecords after the call, so that destroy
// on discovery can still send purge requests for copies already uploaded (the back office's
// vault sweep covers them after that).
type Retention struct {
	CallRecords time.Duration
}

// DefaultCallRecordRetention is CallRecords when a policy does not set it: short, because what
// is not kept cannot be taken from a stolen phone.
const DefaultCallRecordRetention = 30 * 24 * time.Hour

// maxCallRecordRetention bounds it: a year and a day.
const maxCallRecordRetention = 366 * 24 * time.Hour

// StaleNever is how a policy writes that a stale phone keeps placing recorded calls for ever.
const StaleNever = "never"

// Caller is one person who may use the phones.
type Caller struct {
	ID string // 1 to MaxCallerIDLen ASCII digits
	// PINVerifier is an argon2id PHC string; see package pin. It parsed when the policy did.
	PINVerifier string
	Language    string // English or Spanish
	// Allowed are the only numbers, in E.164, this caller may call; empty means the caller
	// has no allowed list.
	Allowed []string
	// CallLimit is this caller's call length: their own, or the facility's CallLimit.
	CallLimit time.Duration
}

// Allows reports whether the caller's allowed list lets them call e164 (an E.164 number
// from dialplan). A caller without a list is allowed every number. Allows answers for the
// list alone: whether privileged or free numbers bypass it is the call decision's business.
func (c Caller) Allows(e164 string) bool {
	return len(c.Allowed) == 0 || slices.Contains(c.Allowed, e164)
}

// Policy is a parsed, validated facility policy. It is not changed after Parse, so it may be
// shared between goroutines.
type Policy struct {
	Version   int64 // at least 1; a newer policy has a higher version
	Facility  string
	DialPlan  dialplan.Plan
	Limits    Limits
	Recording Recording
	Stale     Stale
	Retention Retention
	// RebootWindow is when new firmware may reboot the phone (when idle).
	RebootWindow RebootWindow

	callers map[string]Caller
	ids     []string // callers in file order
	blocked map[string]struct{}
	free    map[string]struct{}
}

// Caller returns the caller with the given ID. The Caller is a copy.
func (p *Policy) Caller(id string) (Caller, bool) {
	c, ok := p.callers[id]
	c.Allowed = slices.Clone(c.Allowed)
	return c, ok
}

// Callers returns copies of all callers in file order.
func (p *Policy) Callers() []Caller {
	out := make([]Caller, 0, len(p.ids))
	for _, id := range p.ids {
		c, _ := p.Caller(id)
		out = append(out, c)
	}
	return out
}

// IsBlocked reports whether e164 is on the facility's block list.
func (p *Policy) IsBlocked(e164 string) bool {
	_, ok := p.blocked[e164]
	return ok
}

// IsFree reports whether e164 is one of the facility's free (unrecorded, unbilled) numbers.
func (p *Policy) IsFree(e164 string) bool {
	_, ok := p.free[e164]
	return ok
}

// Blocked returns the block list in E.164, sorted.
func (p *Policy) Blocked() []string { return sortedKeys(p.blocked) }

// Free returns the free numbers in E.164, sorted.
func (p *Policy) Free() []string { return sortedKeys(p.free) }

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The file's schema. Pointers tell an absent field from a zero one.
type (
	file struct {
		Version        *int64         `json:"version"`
		Facility       *string        `json:"facility"`
		DialPlan       *filePlan      `json:"dial_plan"`
		Limits         *fileLimits    `json:"limits"`
		Callers        *[]fileCaller  `json:"callers"`
		BlockedNumbers *[]string      `json:"blocked_numbers,omitempty"`
		FreeNumbers    *[]string      `json:"free_numbers,omitempty"`
		Recording      *fileRecording `json:"recording"`
		Stale          *fileStale     `json:"stale,omitempty"`
		Retention      *fileRetention `json:"retention,omitempty"`
		Firmware       *fileFirmware  `json:"firmware,omitempty"`
	}
	fileRetention struct {
		CallRecords *string `json:"call_records"`
	}
	fileStale struct {
		RefuseRecordedAfter *string `json:"refuse_recorded_after"`
	}
	fileRecording struct {
		Recipients    *[]string `json:"recipients"`
		Segment       *string   `json:"segment"`
		SpoolMaxBytes *int64    `json:"spool_max_bytes"`
		WhenFull      *string   `json:"when_full"`
	}
	filePlan struct {
		Country      *string `json:"country"`
		AreaCode     *string `json:"area_code,omitempty"`
		OutsideDigit *string `json:"outside_digit,omitempty"`
	}
	fileLimits struct {
		MaxPINAttempts      *int64  `json:"max_pin_attempts"`
		Lockout             *string `json:"lockout"`
		CallLimit           *string `json:"call_limit"`
		PrivilegedCallLimit *string `json:"privileged_call_limit"`
		EntryTimeout        *string `json:"entry_timeout"`
		InterDigitTimeout   *string `json:"inter_digit_timeout"`
		RingTimeout         *string `json:"ring_timeout"`
		AcceptTimeout       *string `json:"accept_timeout"`
		LanguageTimeout     *string `json:"language_timeout"`
	}
	fileCaller struct {
		ID             *string   `json:"id"`
		PINVerifier    *string   `json:"pin_verifier"`
		Language       *string   `json:"language,omitempty"`
		AllowedNumbers *[]string `json:"allowed_numbers,omitempty"`
		CallLimit      *string   `json:"call_limit,omitempty"`
	}
)

// Load reads and parses the policy file at path. Errors name the file.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("policy file %s: %w", path, fieldErr("", fmt.Errorf("%w: larger than %d bytes", ErrValue, MaxFileSize)))
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	return p, nil
}

// Parse parses and validates a policy. The error, if any, is a [*FieldError] naming the
// first field found wrong.
func Parse(b []byte) (*Policy, error) {
	if !utf8.Valid(b) {
		return nil, fieldErr("", fmt.Errorf("%w: invalid UTF-8", ErrSyntax))
	}
	// The shape check gives every error a path, and refuses duplicate keys and keys in
	// another case, which encoding/json would quietly accept.
	if err := checkShape(b); err != nil {
		return nil, err
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		// checkShape has seen everything Decode can object to; this is a fault in it.
		return nil, fieldErr("", fmt.Errorf("%w: %w", ErrSyntax, err))
	}
	return build(&f)
}

// build validates the decoded file and makes the Policy.
func build(f *file) (*Policy, error) {
	p := &Policy{
		callers: map[string]Caller{},
		blocked: map[string]struct{}{},
		free:    map[string]struct{}{},
	}
	switch {
	case f.Version == nil:
		return nil, fieldErr("version", ErrMissing)
	case *f.Version < 1:
		return nil, fieldErr("version", fmt.Errorf("%w: %d, want 1 or more", ErrValue, *f.Version))
	}
	p.Version = *f.Version
	switch {
	case f.Facility == nil:
		return nil, fieldErr("facility", ErrMissing)
	case strings.TrimSpace(*f.Facility) == "":
		return nil, fieldErr("facility", fmt.Errorf("%w: blank", ErrValue))
	}
	p.Facility = *f.Facility

	if f.DialPlan == nil {
		return nil, fieldErr("dial_plan", ErrMissing)
	}
	if f.DialPlan.Country == nil {
		return nil, fieldErr("dial_plan.country", ErrMissing)
	}
	p.DialPlan = dialplan.Plan{Country: *f.DialPlan.Country, AreaCode: deref(f.DialPlan.AreaCode), OutsideDigit: deref(f.DialPlan.OutsideDigit)}
	if err := p.DialPlan.Validate(); err != nil {
		return nil, fieldErr("dial_plan", err)
	}

	if f.Limits == nil {
		return nil, fieldErr("limits", ErrMissing)
	}
	lim, err := buildLimits(f.Limits)
	if err != nil {
		return nil, err
	}
	p.Limits = lim

	if f.Recording == nil {
		return nil, fieldErr("recording", ErrMissing)
	}
	if p.Recording, err = buildRecording(f.Recording); err != nil {
		return nil, err
	}

	// What a phone does when its registry can no longer be refreshed is the facility's written
	// choice, never a silent default (promise 6): the rule is required, and recording past
	// expiry for ever is written "never".
	switch {
	case f.Stale == nil:
		return nil, fieldErr("stale", ErrMissing)
	case f.Stale.RefuseRecordedAfter == nil:
		return nil, fieldErr("stale.refuse_recorded_after", ErrMissing)
	case *f.Stale.RefuseRecordedAfter == StaleNever:
	default:
		if p.Stale.RefuseRecordedAfter, err = duration(*f.Stale.RefuseRecordedAfter); err != nil {
			return nil, fieldErr("stale.refuse_recorded_after", err)
		}
	}

	p.Retention.CallRecords = DefaultCallRecordRetention
	if f.Retention != nil {
		if f.Retention.CallRecords == nil {
			return nil, fieldErr("retention.call_records", ErrMissing)
		}
		d, err := duration(*f.Retention.CallRecords)
		if err == nil && d > maxCallRecordRetention {
			err = fmt.Errorf("%w: %s is longer than %s", ErrValue, d, maxCallRecordRetention)
		}
		if err != nil {
			return nil, fieldErr("retention.call_records", err)
		}
		p.Retention.CallRecords = d
	}

	if f.Firmware != nil {
		if p.RebootWindow, err = buildFirmware(f.Firmware); err != nil {
			return nil, err
		}
	}

	// Lists first, so that callers' allowed numbers can be checked against them.
	blocked, err := p.numbers(f.BlockedNumbers, "blocked_numbers")
	if err != nil {
		return nil, err
	}
	for _, e := range blocked {
		p.blocked[e] = struct{}{}
	}
	free, err := p.numbers(f.FreeNumbers, "free_numbers")
	if err != nil {
		return nil, err
	}
	for i, e := range free {
		if p.IsBlocked(e) {
			return nil, fieldErr(fmt.Sprintf("free_numbers[%d]", i), fmt.Errorf("%w: %s is also in blocked_numbers", ErrConflict, e))
		}
		p.free[e] = struct{}{}
	}

	if f.Callers == nil {
		return nil, fieldErr("callers", ErrMissing)
	}
	for i, fc := range *f.Callers {
		c, err := p.buildCaller(fmt.Sprintf("callers[%d]", i), fc)
		if err != nil {
			return nil, err
		}
		if _, dup := p.callers[c.ID]; dup {
			return nil, fieldErr(fmt.Sprintf("callers[%d].id", i), fmt.Errorf("%w: %q", ErrDuplicateCaller, c.ID))
		}
		p.callers[c.ID] = c
		p.ids = append(p.ids, c.ID)
	}
	return p, nil
}

func buildLimits(fl *fileLimits) (Limits, error) {
	var lim Limits
	switch n := fl.MaxPINAttempts; {
	case n == nil:
		return lim, fieldErr("limits.max_pin_attempts", ErrMissing)
	case *n < 1 || *n > MaxPINAttempts:
		return lim, fieldErr("limits.max_pin_attempts", fmt.Errorf("%w: %d, want 1..%d", ErrValue, *n, MaxPINAttempts))
	default:
		lim.MaxPINAttempts = int(*n)
	}
	for _, d := range []struct {
		name string
		in   *string
		out  *time.Duration
	}{
		{"lockout", fl.Lockout, &lim.Lockout},
		{"call_limit", fl.CallLimit, &lim.CallLimit},
		{"privileged_call_limit", fl.PrivilegedCallLimit, &lim.PrivilegedCallLimit},
		{"entry_timeout", fl.EntryTimeout, &lim.EntryTimeout},
		{"inter_digit_timeout", fl.InterDigitTimeout, &lim.InterDigitTimeout},
		{"ring_timeout", fl.RingTimeout, &lim.RingTimeout},
		{"accept_timeout", fl.AcceptTimeout, &lim.AcceptTimeout},
		{"language_timeout", fl.LanguageTimeout, &lim.LanguageTimeout},
	} {
		path := "limits." + d.name
		if d.in == nil {
			return lim, fieldErr(path, ErrMissing)
		}
		v, err := duration(*d.in)
		if err != nil {
			return lim, fieldErr(path, err)
		}
		*d.out = v
	}
	return lim, nil
}

func buildRecording(fr *fileRecording) (Recording, error) {
	var r Recording
	if fr.Recipients == nil {
		return r, fieldErr("recording.recipients", ErrMissing)
	}
	for i, rc := range *fr.Recipients {
		path := fmt.Sprintf("recording.recipients[%d]", i)
		if _, err := recipients.Parse(rc); err != nil {
			return r, fieldErr(path, fmt.Errorf("%w: %w", ErrValue, err))
		}
		if slices.Contains(r.Recipients, rc) {
			return r, fieldErr(path, fmt.Errorf("%w: listed twice", ErrValue))
		}
		r.Recipients = append(r.Recipients, rc)
	}
	if len(r.Recipients) < MinRecipients {
		return r, fieldErr("recording.recipients", fmt.Errorf("%w: %d recipients, want at least %d", ErrValue, len(r.Recipients), MinRecipients))
	}
	if fr.Segment == nil {
		return r, fieldErr("recording.segment", ErrMissing)
	}
	seg, err := duration(*fr.Segment)
	if err != nil {
		return r, fieldErr("recording.segment", err)
	}
	if seg < MinSegment || seg > MaxSegment || seg%(20*time.Millisecond) != 0 {
		return r, fieldErr("recording.segment", fmt.Errorf("%w: %s, want %s to %s in whole 20 ms frames", ErrValue, seg, MinSegment, MaxSegment))
	}
	r.Segment = seg
	switch n := fr.SpoolMaxBytes; {
	case n == nil:
		return r, fieldErr("recording.spool_max_bytes", ErrMissing)
	case *n < MinSpoolMaxBytes:
		return r, fieldErr("recording.spool_max_bytes", fmt.Errorf("%w: %d, want at least %d", ErrValue, *n, MinSpoolMaxBytes))
	default:
		r.SpoolMaxBytes = *n
	}
	switch w := fr.WhenFull; {
	case w == nil:
		return r, fieldErr("recording.when_full", ErrMissing)
	case *w != WhenFullRefuse:
		return r, fieldErr("recording.when_full", fmt.Errorf("%w: %q, want %q", ErrValue, *w, WhenFullRefuse))
	default:
		r.WhenFull = *w
	}
	return r, nil
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrValue, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: %q is not positive", ErrValue, s)
	}
	return d, nil
}

// numbers normalises a list of written numbers, index for index.
func (p *Policy) numbers(list *[]string, path string) ([]string, error) {
	out := make([]string, 0, len(deref(list)))
	for i, s := range deref(list) {
		e, err := p.DialPlan.Written(s)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", path, i), err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (p *Policy) buildCaller(path string, fc fileCaller) (Caller, error) {
	var c Caller
	switch {
	case fc.ID == nil:
		return c, fieldErr(path+".id", ErrMissing)
	case !isCallerID(*fc.ID):
		return c, fieldErr(path+".id", fmt.Errorf("%w: %q, want 1 to %d digits", ErrValue, *fc.ID, MaxCallerIDLen))
	}
	c.ID = *fc.ID

	if fc.PINVerifier == nil {
		return c, fieldErr(path+".pin_verifier", ErrMissing)
	}
	if _, err := pin.Parse(*fc.PINVerifier); err != nil {
		return c, fieldErr(path+".pin_verifier", err)
	}
	c.PINVerifier = *fc.PINVerifier

	c.Language = English
	if fc.Language != nil {
		if l := *fc.Language; l != English && l != Spanish {
			return c, fieldErr(path+".language", fmt.Errorf("%w: %q, want %q or %q", ErrValue, l, English, Spanish))
		}
		c.Language = *fc.Language
	}

	c.CallLimit = p.Limits.CallLimit
	if fc.CallLimit != nil {
		d, err := duration(*fc.CallLimit)
		if err != nil {
			return c, fieldErr(path+".call_limit", err)
		}
		c.CallLimit = d
	}

	if fc.AllowedNumbers != nil {
		if len(*fc.AllowedNumbers) == 0 {
			return c, fieldErr(path+".allowed_numbers", fmt.Errorf("%w: empty list; leave the field out for a caller without an allowed list", ErrValue))
		}
		allowed, err := p.numbers(fc.AllowedNumbers, path+".allowed_numbers")
		if err != nil {
			return c, err
		}
		for i, e := range allowed {
			if p.IsBlocked(e) {
				return c, fieldErr(fmt.Sprintf("%s.allowed_numbers[%d]", path, i), fmt.Errorf("%w: %s is also in blocked_numbers", ErrConflict, e))
			}
			// Two spellings of one number are one entry.
			if !slices.Contains(c.Allowed, e) {
				c.Allowed = append(c.Allowed, e)
			}
		}
	}
	return c, nil
}

func isCallerID(s string) bool {
	if len(s) < 1 || len(s) > MaxCallerIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
