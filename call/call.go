// Package call is the call state machine: from off-hook through ID and PIN, number entry, the
// recording decision, the notices and the called party's accept, to hang-up. It keeps
// promises 1 and 2: a privileged or free call never reaches the recorder, and no audio flows
// on a recorded call until the called party heard the notice and pressed the accept key.
//
// The machine is driven by Tick, once per audio frame (20 ms), from one goroutine. Each tick
// it polls the hook, the keypad and the far end, checks its deadlines against the time it is
// given, and moves one frame each way. It has no goroutines and no clock of its own, so a test
// (or the simulated phone's scripts) can drive it through minutes of calls in microseconds,
// with every timer firing at exactly the simulated time.
package call

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/trunk"
)

// Registry is the privileged-number registry as the machine needs it: a snapshot taken when
// a number is decided, kept for the rest of that call.
type Registry interface {
	Lookup(e164 string) (registry.Entry, bool)
	Version() uint64
}

// Auditor keeps the tamper-evident record of every decision.
type Auditor interface {
	Decided(callID string, at time.Time, d Decision) error
}

// Recorder starts recordings. Start is called only for calls decided Recorded, and only after
// the called party accepted.
type Recorder interface {
	// CanRecord reports whether a recording could be kept now (room on the flash, a recorder
	// for the policy in force). It is asked before the notice: a recorded call that could not
	// be kept is refused before anyone is told it is recorded, and before it is dialled.
	CanRecord() error
	Start(info RecordingInfo) (Recording, error)
}

// Recording takes both directions of a recorded call, one frame each per tick.
type Recording interface {
	// Write takes what the caller said and what the called party said in the same 20 ms.
	Write(caller, called *audio.Frame) error
	// Close finishes the recording.
	Close() error
}

// RecordingInfo is what a recording is told about its call.
type RecordingInfo struct {
	CallID   string
	DeviceID string
	CallerID string
	E164     string
	Decision Decision
	Started  time.Time
}

// Store keeps PIN lockouts and call records.
type Store interface {
	Lockout(callerID string) (pin.Lockout, error)
	SetLockout(callerID string, l pin.Lockout) error
	PutCall(callID string, record []byte) error
}

// Config is what a Machine is built from. Every field but Logger and Rand is required.
type Config struct {
	Keypad  device.Keypad
	Hook    device.Hook
	Handset device.Handset
	Trunk   trunk.Trunk
	Prompts *audio.Prompts
	// Policy returns the facility policy in force, nil if there is none (the phone is then out
	// of service); each session keeps the one it started with.
	Policy func() *policy.Policy
	// Registry returns the registry in force, or nil if the phone has never had a verified one.
	Registry func() Registry
	// Freshness says whether the registry is stale; nil means always fresh.
	Freshness func(now time.Time) registry.Freshness
	// Audit receives every decision; nil keeps none.
	Audit    Auditor
	Recorder Recorder
	Store    Store
	DeviceID string
	// Logger receives one record per call event (see Event names); nil discards them.
	Logger *slog.Logger
	// Rand makes call ids; nil means crypto/rand.
	Rand io.Reader
}

type state int

const (
	idle state = iota
	greeting
	enterID
	enterPIN
	enterNumber
	announce
	ringing
	notice
	awaitAccept
	talking
	finished
)

var stateNames = [...]string{"idle", "greeting", "enter_id", "enter_pin", "enter_number", "announce",
	"ringing", "notice", "await_accept", "talking", "finished"}

func (s state) String() string { return stateNames[s] }

// Keys with a meaning to the machine.
const (
	keyClear  = '*'
	keySubmit = '#'
	// acceptKey and declineKey are what the called-party notice asks for.
	acceptKey  = '1'
	declineKey = '9'
	// maxEntry bounds what a caller can type into one field.
	maxEntry = 24
	// offHookToneFor is how long the off-hook tone sounds after a call ended with the handset
	// still up: long enough to be noticed, short enough not to torment the next in line.
	offHookToneFor = time.Minute
)

// Machine is one wall phone's call logic. It is not safe for concurrent use: one goroutine
// calls Tick and Shutdown.
type Machine struct {
	cfg Config
	log *slog.Logger
	now time.Time
	st  state
	s   *session // nil while idle

	// The frames of one tick, kept here because frames passed to the devices' interface
	// methods would otherwise be allocated afresh each tick.
	mic, ear, far, out audio.Frame
}

// session is everything about one off-hook, from lifting the handset to putting it down.
type session struct {
	id         string
	started    time.Time
	pol        *policy.Policy
	lang       audio.Lang
	langChosen bool

	entry    []byte
	activity time.Time // last key or end of prompt: entry timeouts count from here
	callerID string
	caller   policy.Caller
	verified bool
	failures int // wrong ID/PIN rounds in this session

	decision Decision
	decided  bool
	leg      trunk.Leg
	deadline time.Time // ringing: ring timeout; awaitAccept: accept timeout
	talkFrom time.Time
	endAt    time.Time
	warn60   time.Time
	warn30   time.Time
	rec      Recording
	recorded bool
	// recErr is the first loss of recorded audio, for the call's record.
	recErr string

	toCaller     audio.Source // a prompt or tone in the earpiece; nil: silence or the far end
	toCallerDone func()       // called once when toCaller runs out
	toCallee     audio.Source

	ended     bool
	endReason string
}

// New checks the configuration and returns an idle machine.
func New(cfg Config) (*Machine, error) {
	switch {
	case cfg.Keypad == nil, cfg.Hook == nil, cfg.Handset == nil:
		return nil, fmt.Errorf("call: keypad, hook and handset are required")
	case cfg.Trunk == nil, cfg.Prompts == nil, cfg.Policy == nil, cfg.Registry == nil:
		return nil, fmt.Errorf("call: trunk, prompts, policy and registry are required")
	case cfg.Recorder == nil, cfg.Store == nil:
		return nil, fmt.Errorf("call: recorder and store are required")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Machine{cfg: cfg, log: log}, nil
}

// State names the machine's state, for status displays and tests.
func (m *Machine) State() string { return m.st.String() }

// InCall reports whether a session is under way (the handset is off-hook).
func (m *Machine) InCall() bool { return m.s != nil }

// Recording reports whether a recording is running, for the phone's recording light.
func (m *Machine) Recording() bool { return m.s != nil && m.s.rec != nil }

// Tick advances the machine to now and moves one frame of audio each way.
func (m *Machine) Tick(now time.Time) {
	m.now = now
	off := m.cfg.Hook.OffHook()
	switch {
	case m.s == nil && off:
		m.offHook()
	case m.s != nil && !off:
		m.onHook()
	}
	for {
		k, ok := m.cfg.Keypad.PollKey()
		if !ok {
			break
		}
		if m.s != nil {
			m.key(k)
		}
	}
	if m.s == nil {
		// The earpiece is not at anyone's ear, but the devices keep their pace.
		m.cfg.Handset.Capture(&m.mic)
		m.ear.Silence()
		m.cfg.Handset.Play(&m.ear)
		return
	}
	if m.s.leg != nil {
		for m.s != nil && m.s.leg != nil {
			ev, ok := m.s.leg.Poll()
			if !ok {
				break
			}
			m.legEvent(ev)
		}
	}
	m.timers()
	m.media()
}

// Shutdown ends a call in progress properly (the far end hung up, the recording closed, the
// record stored), as on SIGTERM.
func (m *Machine) Shutdown(now time.Time) {
	m.now = now
	if m.s != nil && !m.s.ended {
		m.end("shutdown", "")
	}
	m.s, m.st = nil, idle
}

func (m *Machine) offHook() {
	pol := m.cfg.Policy()
	outOfService := pol == nil
	if outOfService {
		// No verified policy yet: nobody can be let in, and the caller is told so.
		pol = &policy.Policy{}
	}
	m.s = &session{
		id:       m.newCallID(),
		started:  m.now,
		pol:      pol,
		lang:     audio.English,
		activity: m.now,
	}
	m.emit("offhook", slog.Int64("policy_version", pol.Version))
	if outOfService {
		m.end("out_of_service", audio.PromptUnavailable)
		return
	}
	m.st = greeting
	m.play(audio.PromptGreeting, nil)
}

func (m *Machine) onHook() {
	if !m.s.ended {
		m.end("caller_hangup", "")
	}
	m.emit("onhook")
	m.s, m.st = nil, idle
}

func (m *Machine) key(k device.Key) {
	s := m.s
	switch m.st {
	case greeting:
		switch k {
		case '1':
			s.lang, s.langChosen = audio.English, true
		case '2':
			s.lang, s.langChosen = audio.Spanish, true
		default:
			return
		}
		m.emit("language", slog.String("lang", string(s.lang)))
		m.startEntry(enterID, audio.PromptEnterID)
	case enterID, enterPIN, enterNumber:
		// Any key stops the prompt: callers who know the menu need not wait for it.
		s.toCaller, s.toCallerDone = nil, nil
		s.activity = m.now
		switch {
		case k == keyClear:
			clear(s.entry)
			s.entry = s.entry[:0]
		case k == keySubmit:
			if len(s.entry) > 0 {
				m.submit()
			}
		case k >= '0' && k <= '9' && len(s.entry) < maxEntry:
			s.entry = append(s.entry, byte(k))
		}
	}
	// Keys in other states mean nothing to the phone. They are not logged: a caller may key
	// an account number into a far-end menu while talking. While talking they go to the far
	// end, so that the menus of an attorney's office or a court can be worked.
	if m.st == talking && s.leg != nil {
		s.leg.SendDigit(rune(k))
	}
}

func (m *Machine) startEntry(st state, prompts ...audio.PromptID) {
	m.st = st
	clear(m.s.entry)
	m.s.entry = m.s.entry[:0]
	m.s.activity = m.now
	m.playSeq(prompts, nil)
}

func (m *Machine) submit() {
	s := m.s
	switch m.st {
	case enterID:
		s.callerID = string(s.entry)
		m.startEntry(enterPIN, audio.PromptEnterPIN)
	case enterPIN:
		m.checkPIN()
	case enterNumber:
		m.decide(string(s.entry))
	}
}

func (m *Machine) checkPIN() {
	s := m.s
	pinEntered := string(s.entry)
	clear(s.entry)
	s.entry = s.entry[:0]
	id := s.callerID
	lim := s.pol.Limits

	lock, err := m.cfg.Store.Lockout(id)
	if err != nil {
		m.fail("read lockout", err)
		return
	}
	if lock.Until.After(m.now) {
		m.emit("locked_out", slog.String("caller", id), slog.Time("until", lock.Until))
		m.end("locked_out", audio.PromptLockedOut)
		return
	}
	stored := lock
	if !lock.Until.IsZero() {
		lock = pin.Lockout{} // a lockout that has run out starts the count afresh
	}
	caller, known := s.pol.Caller(id)
	verifier := caller.PINVerifier
	if cs := s.pol.Callers(); !known && len(cs) > 0 {
		// An unknown ID costs the same argon2id work as a known one, so the time a PIN check
		// takes does not tell which IDs exist.
		verifier = cs[0].PINVerifier
	}
	ok := false
	if verifier != "" {
		ok, err = pin.Verify(verifier, pinEntered)
		if err != nil {
			// The policy was validated when loaded, so this is a fault, not a wrong PIN.
			m.fail("verify PIN", err)
			return
		}
	}
	ok = ok && known
	if ok {
		if stored != (pin.Lockout{}) {
			if err := m.cfg.Store.SetLockout(id, pin.Lockout{}); err != nil {
				m.fail("clear lockout", err)
				return
			}
		}
		s.caller, s.verified = caller, true
		if !s.langChosen {
			if l, err := audio.ParseLang(caller.Language); err == nil {
				s.lang = l
			}
		}
		// The caller's ID is not in this event: a call to a free number must not be linkable to
		// who made it.
		m.emit("pin_accepted", slog.String("lang", string(s.lang)))
		m.startEntry(enterNumber, audio.PromptEnterNumber)
		return
	}
	lock.Failures++
	s.failures++
	if lock.Failures >= lim.MaxPINAttempts {
		lock.Until = m.now.Add(lim.Lockout)
	}
	if err := m.cfg.Store.SetLockout(id, lock); err != nil {
		m.fail("store lockout", err)
		return
	}
	if !lock.Until.IsZero() {
		m.emit("locked_out", slog.String("caller", id), slog.Time("until", lock.Until))
		m.end("locked_out", audio.PromptLockedOut)
		return
	}
	m.emit("pin_rejected", slog.String("caller", id), slog.Int("failures", lock.Failures),
		slog.Int("max", lim.MaxPINAttempts))
	if s.failures >= lim.MaxPINAttempts {
		// Trying one ID after another from the same handset gets no further than one ID would.
		m.end("too_many_attempts", audio.PromptPINRejected)
		return
	}
	s.callerID = ""
	m.startEntry(enterID, audio.PromptPINRejected, audio.PromptEnterID)
}

func (m *Machine) decide(digits string) {
	s := m.s
	// No number goes to the log, whatever the decision: a recorded number may turn out
	// privileged later, and a log cannot be scrubbed the way the call record is. The call
	// record keeps the numbers of recorded and blocked calls; the audit log keeps a keyed hash.
	d, _ := Decide(s.pol, m.cfg.Registry(), s.caller, digits)
	if m.cfg.Freshness != nil {
		d = ApplyStale(d, s.pol, m.cfg.Freshness(m.now), m.now)
	}
	s.decision, s.decided = d, true
	if m.cfg.Audit != nil && d.Kind != Invalid {
		if err := m.cfg.Audit.Decided(s.id, m.now, d); err != nil {
			// The call goes on: refusing a privileged call because a log is full would
			// hurt the person the log exists to protect. The failure is loud instead.
			m.log.Error("audit log: decision not recorded", "event", "audit_error", "call_id", s.id, "err", err)
		}
	}
	attrs := []slog.Attr{
		slog.String("decision", string(d.Kind)), slog.String("reason", d.Reason),
		slog.Uint64("registry_version", d.RegistryVersion), slog.Int64("policy_version", d.PolicyVersion),
	}
	if d.Kind == Privileged {
		attrs = append(attrs, slog.String("kind", string(d.Privileged.Kind)))
	}
	if d.Stale {
		attrs = append(attrs, slog.Bool("registry_stale", true))
	}
	m.emit("decision", attrs...)
	switch d.Kind {
	case Invalid:
		s.decided = false
		m.startEntry(enterNumber, audio.PromptInvalidNumber, audio.PromptEnterNumber)
	case Blocked:
		m.end("blocked", audio.PromptBlocked)
	case Unavailable:
		m.end("unavailable", audio.PromptUnavailable)
	case Privileged:
		m.st = announce
		m.play(audio.PromptPrivate, m.dial)
	case Free:
		m.st = announce
		m.play(audio.PromptFree, m.dial)
	case Recorded:
		if err := m.cfg.Recorder.CanRecord(); err != nil {
			m.emit("recording_failed", slog.String("error", err.Error()))
			m.end("recording_unavailable", audio.PromptUnavailable)
			return
		}
		m.st = announce
		m.play(audio.PromptNoticeCaller, func() {
			m.emit("notice_played", slog.String("to", "caller"))
			m.dial()
		})
	}
}

func (m *Machine) dial() {
	s := m.s
	leg, err := m.cfg.Trunk.Dial(s.decision.E164)
	if err != nil {
		m.emit("dial_failed", slog.String("error", err.Error()))
		m.end("failed", audio.PromptCallFailed)
		return
	}
	s.leg = leg
	s.deadline = m.now.Add(s.pol.Limits.RingTimeout)
	m.st = ringing
	s.toCaller, s.toCallerDone = audio.Ringback(), nil
	m.emit("dialing")
}

func (m *Machine) legEvent(ev trunk.Event) {
	s := m.s
	switch ev.Kind {
	case trunk.Ringing:
		if m.st == ringing {
			m.emit("ringing")
		}
	case trunk.Answered:
		if m.st != ringing {
			return
		}
		m.emit("answered")
		if s.decision.Kind != Recorded {
			m.connect()
			return
		}
		// The caller keeps hearing ringback while the called party hears the notice: nothing
		// of the called party reaches the caller before the accept.
		m.st = notice
		clip := m.clip(audio.PromptNoticeCallee)
		m.emitPrompt(clip, "callee")
		s.toCallee = clip.Source()
	case trunk.Busy:
		m.farEndRefused("busy", audio.PromptBusy)
	case trunk.NoAnswer:
		m.farEndRefused("no_answer", audio.PromptNoAnswer)
	case trunk.Rejected:
		m.farEndRefused("rejected", audio.PromptNotAccepted)
	case trunk.Failed:
		if m.st == ringing || m.st == notice || m.st == awaitAccept || m.st == talking {
			m.emit("trunk_failed", slog.String("error", ev.Reason))
			m.end("failed", audio.PromptCallFailed)
		}
	case trunk.HungUp:
		switch m.st {
		case notice, awaitAccept:
			m.end("callee_hangup", audio.PromptNotAccepted)
		case ringing, talking:
			m.end("callee_hangup", audio.PromptFarEndHangup)
		}
	case trunk.Digit:
		// Only the answer to the notice counts; a key pressed while the notice still plays is
		// ignored so that nobody accepts a call they have not heard announced.
		if m.st != awaitAccept {
			return
		}
		switch ev.Digit {
		case acceptKey:
			m.emit("callee_accepted")
			m.connect()
		case declineKey:
			m.emit("callee_declined")
			m.end("declined", audio.PromptNotAccepted)
		}
	}
}

func (m *Machine) farEndRefused(reason string, p audio.PromptID) {
	if m.st == ringing {
		m.end(reason, p)
	}
}

func (m *Machine) connect() {
	s := m.s
	if s.decision.Kind == Recorded {
		// The record, with the number, is kept before the first frame is recorded: it is what
		// destroy on discovery finds the recording by, and a power cut mid-call must leave it
		// (start-up completes it). A recording nothing could find is not made.
		s.recorded = true
		if err := m.cfg.Store.PutCall(s.id, m.record()); err != nil {
			s.recorded = false
			m.fail("store call record", err)
			return
		}
		// The recorder starts before the first frame flows, or the call does not go ahead:
		// a recorded call that cannot be recorded is refused, never connected unrecorded.
		rec, err := m.cfg.Recorder.Start(RecordingInfo{
			CallID: s.id, DeviceID: m.cfg.DeviceID, CallerID: s.callerID, E164: s.decision.E164,
			Decision: s.decision, Started: m.now,
		})
		if err != nil {
			s.recorded = false
			m.emit("recording_failed", slog.String("error", err.Error()))
			m.end("recording_unavailable", audio.PromptUnavailable)
			return
		}
		s.rec = rec
		m.emit("recording_started")
	}
	lim := s.pol.Limits
	limit := lim.CallLimit
	if s.caller.CallLimit > 0 {
		limit = s.caller.CallLimit
	}
	if s.decision.Kind == Privileged && lim.PrivilegedCallLimit > 0 {
		limit = lim.PrivilegedCallLimit
	}
	s.talkFrom = m.now
	s.endAt = m.now.Add(limit)
	if limit > time.Minute {
		s.warn60 = s.endAt.Add(-time.Minute)
	}
	if limit > 30*time.Second {
		s.warn30 = s.endAt.Add(-30 * time.Second)
	}
	m.st = talking
	s.toCaller, s.toCallerDone = nil, nil // the ringback
	m.emit("connected", slog.Bool("recorded", s.recorded), slog.Duration("limit", limit))
}

// timers fires whatever deadline the current state has passed.
func (m *Machine) timers() {
	s := m.s
	if s == nil {
		return
	}
	lim := s.pol.Limits
	idleFor := m.now.Sub(s.activity)
	prompting := s.toCaller != nil
	switch m.st {
	case greeting:
		if !prompting && idleFor >= lim.LanguageTimeout {
			m.emit("language", slog.String("lang", string(s.lang)), slog.Bool("default", true))
			m.startEntry(enterID, audio.PromptEnterID)
		}
	case enterID, enterPIN:
		if !prompting && idleFor >= lim.EntryTimeout {
			m.end("no_input", audio.PromptNoInput)
		}
	case enterNumber:
		switch {
		case prompting:
		case len(s.entry) > 0 && idleFor >= lim.InterDigitTimeout:
			m.submit()
		case len(s.entry) == 0 && idleFor >= lim.EntryTimeout:
			m.end("no_input", audio.PromptNoInput)
		}
	case ringing:
		if !m.now.Before(s.deadline) {
			m.end("no_answer", audio.PromptNoAnswer)
		}
	case awaitAccept:
		if !m.now.Before(s.deadline) {
			m.emit("accept_timeout")
			m.end("not_accepted", audio.PromptNotAccepted)
		}
	case talking:
		switch {
		case !m.now.Before(s.endAt):
			m.end("time_limit", audio.PromptTimeLimit)
		case !s.warn30.IsZero() && !m.now.Before(s.warn30):
			s.warn30 = time.Time{}
			s.warn60 = time.Time{}
			m.play(audio.PromptWarning30, nil)
		case !s.warn60.IsZero() && !m.now.Before(s.warn60):
			s.warn60 = time.Time{}
			m.play(audio.PromptWarning60, nil)
		}
	}
}

// media moves one frame each way. It allocates nothing.
func (m *Machine) media() {
	s := m.s
	if s == nil {
		return
	}
	mic, ear, far, out := &m.mic, &m.ear, &m.far, &m.out
	ear.Silence()
	far.Silence()
	m.cfg.Handset.Capture(mic)
	haveFar := false
	if m.st == talking {
		haveFar = s.leg.Receive(far)
	}
	if s.toCaller != nil {
		if !s.toCaller.Next(ear) {
			done := s.toCallerDone
			s.toCaller, s.toCallerDone = nil, nil
			s.activity = m.now
			if done != nil {
				done()
			}
		}
	} else if haveFar {
		*ear = *far
	}
	m.cfg.Handset.Play(ear)
	if s.leg == nil {
		return
	}
	switch {
	case s.toCallee != nil:
		if s.toCallee.Next(out) {
			s.leg.Send(out)
		} else {
			s.toCallee = nil
			m.emit("notice_played", slog.String("to", "callee"))
			m.st = awaitAccept
			s.deadline = m.now.Add(s.pol.Limits.AcceptTimeout)
			out.Silence()
			s.leg.Send(out)
		}
	case m.st == awaitAccept:
		// Silence while the called party decides: a stream that stops for up to the accept
		// timeout is dropped by carriers' media timers and NAT bindings.
		out.Silence()
		s.leg.Send(out)
	case m.st == talking:
		s.leg.Send(mic)
		if s.rec != nil {
			if err := s.rec.Write(mic, far); err != nil {
				// Lost audio or no room for more: either way not a frame more is talked
				// unrecorded. What was lost, Close says.
				m.emit("recording_failed", slog.String("error", err.Error()))
				m.end("recording_failed", audio.PromptCallFailed)
			}
		}
	}
}

func (m *Machine) clip(id audio.PromptID) *audio.Clip {
	return m.cfg.Prompts.Clip(id, m.s.lang)
}

func (m *Machine) play(id audio.PromptID, done func()) {
	m.playSeq([]audio.PromptID{id}, done)
}

// playSeq plays prompts one after another to the caller, then calls done.
func (m *Machine) playSeq(ids []audio.PromptID, done func()) {
	s := m.s
	srcs := make([]audio.Source, 0, len(ids))
	for _, id := range ids {
		c := m.clip(id)
		m.emitPrompt(c, "caller")
		srcs = append(srcs, c.Source())
	}
	s.toCaller, s.toCallerDone = audio.Concat(srcs...), done
}

func (m *Machine) emitPrompt(c *audio.Clip, to string) {
	m.emit("prompt", slog.String("prompt", string(c.ID())), slog.String("lang", string(c.Lang())),
		slog.String("to", to), slog.String("text", c.Text()))
}

// recordingLost notes that part of the recording could not be kept: the log says it at once,
// the call's record keeps it.
func (m *Machine) recordingLost(err error) {
	m.s.recErr = err.Error()
	m.emit("recording_lost", slog.String("error", err.Error()))
}

// fail ends the session because the phone itself could not go on (its store failed).
func (m *Machine) fail(what string, err error) {
	m.log.Error("call failed", "call_id", m.s.id, "op", what, "err", err)
	m.end("phone_error", audio.PromptUnavailable)
}

// end finishes the call: the far end is hung up, the recording closed and the record stored,
// before anything else happens. The caller then hears the closing prompt, if any, and the
// session waits for on-hook.
func (m *Machine) end(reason string, closing audio.PromptID) {
	s := m.s
	s.ended, s.endReason = true, reason
	if s.leg != nil {
		s.leg.Hangup()
		s.leg = nil
	}
	s.toCallee = nil
	if s.rec != nil {
		if err := s.rec.Close(); err != nil {
			m.recordingLost(err)
		}
		s.rec = nil
		m.emit("recording_stopped")
	}
	if err := m.cfg.Store.PutCall(s.id, m.record()); err != nil {
		m.log.Error("store call record", "call_id", s.id, "err", err)
	}
	attrs := []slog.Attr{slog.String("reason", reason)}
	if s.decided {
		attrs = append(attrs, slog.String("decision", string(s.decision.Kind)))
	}
	if !s.talkFrom.IsZero() {
		attrs = append(attrs, slog.Duration("talk", m.now.Sub(s.talkFrom)))
	}
	m.emit("call_ended", attrs...)
	m.st = finished
	s.toCaller, s.toCallerDone = nil, nil
	if closing != "" {
		// As a real line does: say why, ask the caller to hang up, then the off-hook tone for a
		// while, so that nobody stands at a dead earpiece wondering.
		m.playSeq([]audio.PromptID{closing, audio.PromptHangUp}, nil)
		s.toCaller = audio.Concat(s.toCaller, audio.OffHookTone(offHookToneFor))
	}
}

func (m *Machine) record() []byte {
	s := m.s
	r := callrecord.Record{
		CallID: s.id, DeviceID: m.cfg.DeviceID, Started: s.started,
		Language: string(s.lang), PolicyVersion: s.pol.Version, Connected: s.talkFrom,
		Recorded: s.recorded, EndReason: s.endReason,
		RecordingError: s.recErr,
	}
	if s.ended {
		r.Ended = m.now
	}
	if s.verified {
		r.CallerID = s.callerID
	}
	if s.decided {
		d := s.decision
		r.Decision, r.Reason, r.RegistryVersion, r.PolicyVersion = string(d.Kind), d.Reason, d.RegistryVersion, d.PolicyVersion
		r.RegistryStale = d.Stale
		if d.keepsNumber() {
			r.Number = d.E164
		}
		if d.Kind == Privileged {
			r.PrivilegedKind = string(d.Privileged.Kind)
		}
		if d.Kind == Free {
			r.CallerID = ""
		}
	}
	b, err := r.Encode()
	if err != nil {
		panic(err) // every time in it is the phone's clock, within the years JSON holds
	}
	return b
}

func (m *Machine) emit(event string, attrs ...slog.Attr) {
	base := []slog.Attr{slog.String("event", event), slog.Time("at", m.now)}
	if m.s != nil {
		base = append(base, slog.String("call_id", m.s.id))
	}
	m.log.LogAttrs(context.Background(), slog.LevelInfo, event, append(base, attrs...)...)
}

func (m *Machine) newCallID() string {
	var b [6]byte
	if _, err := io.ReadFull(m.cfg.Rand, b[:]); err != nil {
		// crypto/rand does not fail on supported systems; a test's reader might.
		panic(fmt.Sprintf("call id: %v", err))
	}
	return m.now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
