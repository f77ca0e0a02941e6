package provisioning

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/internal/atomicfile"
)

const (
	challengeSize = 32
	nonceSize     = 16
	// ChallengeTTL is how long a hello's challenge may be answered.
	ChallengeTTL = time.Minute
	// IdleTimeout ends a session nobody has used for this long: a technician who walks away
	// without bye leaves nothing open for long.
	IdleTimeout = 5 * time.Minute
	// resetTTL is how long the second confirmation of a factory reset may take.
	resetTTL = time.Minute
)

// Backoff and lock: after the n-th failed authentication in a row (n < LockAfter) the next
// attempt waits 2^(n-1) s; from the LockAfter-th on, the console is locked for LockFor,
// doubling with every further failure up to MaxLock. Only a successful authentication clears
// the count; it is kept in the phone's state across restarts.
const (
	LockAfter = 5
	LockFor   = 15 * time.Minute
	MaxLock   = 24 * time.Hour
)

// Auditor is the audit log the console writes every action to (*audit.Log).
type Auditor interface {
	Append(kind string, fields map[string]string) error
	// ChangeKey records, signed by the key in force, that next is the device key from now
	// on, and signs every later entry with next (audit.Log.ChangeKey). Enrolment calls it
	// when it makes the phone a new key, so the log verifies across the change.
	ChangeKey(next ed25519.PrivateKey) error
}

// LockStore keeps the count of failed authentications and the time before which the next
// attempt is refused, across restarts.
type LockStore interface {
	ConsoleFailures() (failures int, until time.Time, err error)
	SetConsoleFailures(failures int, until time.Time) error
}

// Phone is what the console reads from the running agent.
type Phone interface {
	Status(ctx context.Context) (Status, error)
	Selftest(ctx context.Context) ([]Check, error)
	// Logs returns up to n recent lines of the agent's log, oldest first, with no dialed
	// number in them: the phone redacts each line field by field (the server removes
	// anything number-like besides, times and call ids apart).
	Logs(n int) []string
}

// Status is what the phone reports about itself. It never holds a dialed number. SIP says
// where calls go and whether they can ("ready, listening on 127.0.0.1:5070 (udp), registered",
// "not started: <cause>; retrying in 8s", "no account (sip.json not installed)", "simulated
// called party"); empty when the trunk does not say.
type Status struct {
	DeviceID        string        `json:"device_id"`
	Facility        string        `json:"facility,omitempty"`
	PolicyVersion   int64         `json:"policy_version"`
	RegistryVersion uint64        `json:"registry_version"`
	RegistryAge     string        `json:"registry_age,omitempty"` // how current ("fresh until T", "stale since T"); empty: unknown
	SpoolSegments   int           `json:"spool_segments"`
	SpoolCalls      int           `json:"spool_calls"`
	SpoolBytes      int64         `json:"spool_bytes"`
	Uplink          string        `json:"uplink"` // what the uplink does: where it uploads, or why it does not
	SIP             string        `json:"sip,omitempty"`
	Firmware        string        `json:"firmware,omitempty"` // the firmware's state: committed, on trial, installing, failed
	Calls           []CallSummary `json:"calls,omitempty"`
}

// CallSummary is one recent call, without its number.
type CallSummary struct {
	CallID    string        `json:"call_id"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration"`
	Decision  string        `json:"decision,omitempty"`
	Recorded  bool          `json:"recorded"`
	EndReason string        `json:"end_reason,omitempty"`
}

// Check is one result of the unattended self test.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// SelftestResult is the answer to selftest.
type SelftestResult struct {
	Checks []Check `json:"checks"`
}

// Config is what a Server needs. Every field but Logger, Now, After, Rand, Firmware and
// Updater is required.
type Config struct {
	DeviceID string
	Firmware string
	// DataDir holds device.key and conf/.
	DataDir string
	// DeviceKey is the phone's current public key.
	DeviceKey ed25519.PublicKey
	// TrustFile lists the provisioning keys (see ParseTrust); read at every authentication.
	TrustFile string
	// Validators says which items enrolment may install in conf/ and how each is checked.
	Validators map[string]func([]byte) error
	Locks      LockStore
	Audit      Auditor
	Phone      Phone
	// Reset is called after the console has wiped nothing yet: the agent stops, then wipes
	// keys, configuration, state and spool, and restarts.
	Reset func() error
	// Reboot restarts the phone.
	Reboot func() error
	// Updater installs firmware from the technician's repository (update); nil refuses it.
	Updater Updater
	// After is the phone's timer while it waits for the technician's answers during an
	// update; nil is time.After.
	After  func(time.Duration) <-chan time.Time
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// Server is the phone's end of the console. Serve runs one connection at a time.
type Server struct {
	cfg Config

	mu sync.Mutex // guards the fields below, shared by Serve calls one after another
	// deviceKey and facility change with enrolment.
	deviceKey ed25519.PublicKey
	facility  string
	session   session
	// after runs once the answer is written: a reset or reboot.
	after func()
}

// session is what one technician has done since hello.
type session struct {
	challenge   []byte
	challengeAt time.Time
	cert        *Certificate // nil: not authenticated
	lastUsed    time.Time
	staged      map[string][]byte
	resetNonce  []byte
	resetAt     time.Time
}

// NewServer checks cfg and reads the facility the phone is enrolled in, if any.
func NewServer(cfg Config) (*Server, error) {
	if cfg.DeviceID == "" || cfg.DataDir == "" || len(cfg.DeviceKey) != ed25519.PublicKeySize ||
		cfg.TrustFile == "" || cfg.Locks == nil || cfg.Audit == nil || cfg.Phone == nil ||
		cfg.Reset == nil || cfg.Reboot == nil {
		return nil, errors.New("provisioning: incomplete server config")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Firmware == "" {
		cfg.Firmware = "unknown"
	}
	fac, err := ReadFacility(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, deviceKey: cfg.DeviceKey, facility: fac}, nil
}

// The enrolment: what a technician installs in <data>/conf.
const (
	// FacilityFile holds the facility id; it is installed last, as its presence says the
	// phone is enrolled.
	FacilityFile   = "facility"
	RootFile       = "root.json"       // the repository's TUF root
	RepositoryFile = "repository.json" // where the repository is
	RecipientsFile = "recipients.txt"  // the recording recipients a policy may seal to
	AuditKeyFile   = "audit.key"       // the facility's key for the audit log's keyed hashes
	VaultFile      = "vault.json"      // where the uplink sends what the phone sealed
	SIPFile        = "sip.json"        // the phone's SIP account
)

// EnrolmentFiles are the files that enrol a phone with a repository, in the order they are
// installed: the facility last.
var EnrolmentFiles = []string{RootFile, RepositoryFile, RecipientsFile, AuditKeyFile, FacilityFile}

// ReadFacility returns the facility a phone is enrolled in; "" if it is not.
func ReadFacility(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "conf", FacilityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("provisioning: %w", err)
	}
	f := strings.TrimSpace(string(b))
	if !validName(f) {
		return "", fmt.Errorf("provisioning: conf/facility holds no valid facility id")
	}
	return f, nil
}

// WriteEnrolment installs checked items in <dataDir>/conf, in name order, then runs
// beforeFacility (nil for none: the console makes the phone a new device key there), then
// writes the facility file: a phone is enrolled only once everything else is in place, and
// an enrolment cut short by a power cut leaves a phone that is not enrolled.
func WriteEnrolment(dataDir string, items map[string][]byte, facility string, beforeFacility func() error) error {
	if !validName(facility) {
		return fmt.Errorf("provisioning: %q is not a valid facility id", facility)
	}
	conf := filepath.Join(dataDir, "conf")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(items))
	for _, name := range names {
		if name == FacilityFile {
			continue
		}
		if err := atomicfile.Write(filepath.Join(conf, name), items[name], 0o600); err != nil {
			return err
		}
	}
	if beforeFacility != nil {
		if err := beforeFacility(); err != nil {
			return err
		}
	}
	return atomicfile.Write(filepath.Join(conf, FacilityFile), []byte(facility+"\n"), 0o600)
}

// Serve answers requests on rw until its Read fails or ctx is done; it returns nil then if
// ctx is done. Each Serve starts with no one authenticated: whoever is on the line now
// says hello again. Serve reads rw on a goroutine of its own and returns once that has
// stopped: when ctx is done or a write fails, it closes rw if rw is an io.Closer (a serial
// port); otherwise the caller must close what rw reads from for Serve to return.
func (s *Server) Serve(ctx context.Context, rw io.ReadWriter) error {
	s.mu.Lock()
	s.session = session{}
	s.mu.Unlock()
	frames := make(chan frameResult)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { readFrames(NewFrameReader(rw), frames, stop) })
	defer func() {
		close(stop)
		if c, ok := rw.(io.Closer); ok && ctx.Err() == nil {
			// A failed write: the reader may be blocked on a line nobody will close.
			c.Close()
		}
		wg.Wait()
	}()
	l := &line{w: rw, frames: frames}
	for {
		f, err := l.next(ctx)
		if ctx.Err() != nil {
			if c, ok := rw.(io.Closer); ok {
				c.Close()
			}
			return nil
		}
		var ferr error
		switch {
		case errors.Is(err, ErrFrameCorrupt), errors.Is(err, ErrFrameTooLarge):
			// Noise, or a frame cut short; nothing of it is acted on.
			s.cfg.Logger.Debug("console frame discarded", "event", "console_frame_discarded", "err", err)
			if errors.Is(err, ErrFrameTooLarge) {
				ferr = l.write(Frame{Type: TypeError}, &Error{Code: CodeBadRequest, Message: "frame too large"})
			}
		case err != nil:
			return err
		case f.Type >= answerBit:
			// An answer to a read of an update that has ended: nothing to do with it.
			continue
		default:
			typ, answer := s.handle(ctx, l, f)
			ferr = l.write(Frame{Type: typ, Seq: f.Seq}, answer)
		}
		if ferr != nil {
			return ferr
		}
		s.mu.Lock()
		after := s.after
		s.after = nil
		s.mu.Unlock()
		if after != nil {
			// Reset and reboot happen once their answer is on the wire.
			after()
		}
	}
}

// frameResult is one ReadFrame's outcome.
type frameResult struct {
	f   Frame
	err error
}

// readFrames hands the frames of fr to out until the stream fails or stop is closed.
func readFrames(fr *FrameReader, out chan<- frameResult, stop <-chan struct{}) {
	for {
		f, err := fr.ReadFrame()
		select {
		case out <- frameResult{f, err}:
		case <-stop:
			return
		}
		if err != nil && !errors.Is(err, ErrFrameCorrupt) && !errors.Is(err, ErrFrameTooLarge) {
			return
		}
	}
}

// line is one Serve's connection: frames in from its reader, frames out. During an update
// the phone sends requests of its own on it and reads their answers.
type line struct {
	frames <-chan frameResult
	// err is the error that stopped the reader, sticky: nothing more comes.
	err error
	// pending is a request that ended an update (ErrInterrupted), served next.
	pending *Frame
	// seq numbers the phone's own requests; only the goroutine reading the line uses it.
	seq uint16

	wmu sync.Mutex // guards w and last: answers, requests and notes are written from two goroutines during an update
	w   io.Writer
	// last is the latest progress note, sent again to keep the line alive.
	last *UpdateProgress
}

// next returns the next frame to serve.
func (l *line) next(ctx context.Context) (Frame, error) {
	if l.pending != nil {
		f := *l.pending
		l.pending = nil
		return f, nil
	}
	if l.err != nil {
		return Frame{}, l.err
	}
	select {
	case r := <-l.frames:
		if r.err != nil && !errors.Is(r.err, ErrFrameCorrupt) && !errors.Is(r.err, ErrFrameTooLarge) {
			l.err = r.err
		}
		return r.f, r.err
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// await returns the next answer to one of the phone's own requests, skipping frames that do
// not read; errWait when timeout fires first, ErrInterrupted (keeping the request for next)
// when the technician's tool sends a request instead.
func (l *line) await(ctx context.Context, timeout <-chan time.Time) (Frame, error) {
	for {
		if l.err != nil {
			return Frame{}, l.err
		}
		select {
		case r := <-l.frames:
			switch {
			case errors.Is(r.err, ErrFrameCorrupt), errors.Is(r.err, ErrFrameTooLarge):
				continue // the request is asked again when its answer does not come
			case r.err != nil:
				l.err = r.err
				return Frame{}, r.err
			case r.f.Type < answerBit:
				l.pending = &r.f
				return Frame{}, fmt.Errorf("%w (it sent %s)", ErrInterrupted, requestName(r.f.Type))
			}
			return r.f, nil
		case <-timeout:
			return Frame{}, errWait
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		}
	}
}

// request sends one of the phone's own requests and returns its sequence number.
func (l *line) request(typ byte, v any) (uint16, error) {
	l.seq++
	if l.seq == 0 {
		l.seq = 1
	}
	return l.seq, l.write(Frame{Type: typ, Seq: l.seq}, v)
}

// note sends a progress note, and keeps it to send again while nothing else is said.
func (l *line) note(p UpdateProgress) {
	l.wmu.Lock()
	l.last = &p
	l.wmu.Unlock()
	l.write(Frame{Type: TypeProgress}, p)
}

// renote sends the latest progress note again.
func (l *line) renote() {
	l.wmu.Lock()
	p := l.last
	l.wmu.Unlock()
	if p == nil {
		p = &UpdateProgress{Stage: "starting"}
	}
	l.write(Frame{Type: TypeProgress}, *p)
}

func (l *line) write(f Frame, v any) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return writeJSON(l.w, f, v)
}

// writeJSON writes a frame whose payload is v in JSON.
func writeJSON(w io.Writer, f Frame, v any) error {
	var err error
	if f.Payload, err = json.Marshal(v); err != nil {
		return err
	}
	b, err := AppendFrame(nil, f)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func requestName(t byte) string {
	if n := typeNames[t]; n != "" {
		return n
	}
	return fmt.Sprintf("type %#x", t)
}

// handle carries out one request and returns the answer's type and body.
func (s *Server) handle(ctx context.Context, l *line, f Frame) (byte, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := requestName(f.Type)
	req, err := ParseRequest(f.Type, f.Payload)
	if err != nil {
		s.audit("console_bad_request", map[string]string{"request": name, "error": err.Error()})
		return TypeError, &Error{Code: CodeBadRequest, Message: err.Error()}
	}
	now := s.cfg.Now()
	switch f.Type {
	case TypeHello:
		return s.hello(now)
	case TypeAuth:
		return s.auth(now, req.(Auth))
	}
	if s.session.cert == nil || now.Sub(s.session.lastUsed) > IdleTimeout {
		if s.session.cert != nil {
			s.session = session{}
		}
		s.audit("console_refused", map[string]string{"request": name, "reason": CodeNotAuthenticated})
		return TypeError, &Error{Code: CodeNotAuthenticated, Message: "say hello and authenticate first"}
	}
	s.session.lastUsed = now
	fields := map[string]string{"request": name, "technician": s.session.cert.Name,
		"serial": fmt.Sprint(s.session.cert.Serial)}
	var answer any
	switch f.Type {
	case TypeStatus:
		answer, err = s.cfg.Phone.Status(ctx)
	case TypeSelftest:
		var checks []Check
		checks, err = s.cfg.Phone.Selftest(ctx)
		answer = SelftestResult{Checks: checks}
	case TypeLogs:
		answer = s.logs(req.(Logs).Lines)
	case TypePut:
		answer, err = s.put(req.(Put))
		p := req.(Put)
		fields["item"], fields["offset"] = p.Name, fmt.Sprint(p.Offset)
	case TypeEnroll:
		answer, err = s.enroll(req.(Enroll))
	case TypeReset:
		answer, err = s.reset(ctx, now, req.(Reset), fields)
	case TypeReboot:
		answer = Done{Message: "the phone restarts now"}
		s.after = func() {
			if err := s.cfg.Reboot(); err != nil {
				s.cfg.Logger.Error("console reboot failed", "event", "console_error", "err", err)
			}
		}
	case TypeBye:
		s.session = session{}
		answer = Done{Message: "session closed"}
	case TypeUpdate:
		answer, err = s.update(ctx, l, fields)
		// An update takes as long as the line needs: the session was in use all along.
		s.session.lastUsed = s.cfg.Now()
	}
	if err != nil {
		fields["result"] = "refused"
		fields["error"] = err.Error()
		s.audit("console_command", fields)
		var e *Error
		if errors.As(err, &e) {
			return TypeError, e
		}
		return TypeError, &Error{Code: CodeFailed, Message: err.Error()}
	}
	fields["result"] = "ok"
	if aerr := s.audit("console_command", fields); aerr != nil {
		// Nothing happens on the console that the audit log does not show; the command has
		// been done, though, so say so.
		return TypeError, &Error{Code: CodeFailed, Message: "done, but the audit log could not record it: " + aerr.Error()}
	}
	return f.Type | answerBit, answer
}

func (s *Server) audit(kind string, fields map[string]string) error {
	fields["device_id"] = s.cfg.DeviceID
	err := s.cfg.Audit.Append(kind, fields)
	if err != nil {
		s.cfg.Logger.Error("audit log append failed", "event", "audit_error", "kind", kind, "err", err)
	}
	return err
}

func (s *Server) hello(now time.Time) (byte, any) {
	// A hello starts a new session: whoever sent it proves who they are afresh.
	s.session = session{challenge: make([]byte, challengeSize), challengeAt: now}
	if _, err := io.ReadFull(s.cfg.Rand, s.session.challenge); err != nil {
		return TypeError, &Error{Code: CodeFailed, Message: "no randomness: " + err.Error()}
	}
	s.audit("console_hello", map[string]string{})
	return TypeHello | answerBit, Hello{
		DeviceID: s.cfg.DeviceID, Firmware: s.cfg.Firmware,
		DeviceKey: s.deviceKey, KeyFingerprint: identity.Fingerprint(s.deviceKey),
		Facility: s.facility, Challenge: s.session.challenge, ChallengeTTL: ChallengeTTL,
	}
}

func (s *Server) auth(now time.Time, a Auth) (byte, any) {
	failures, until, err := s.cfg.Locks.ConsoleFailures()
	if err != nil {
		s.audit("console_auth_failed", map[string]string{"reason": "lock state unreadable: " + err.Error()})
		return TypeError, &Error{Code: CodeFailed, Message: "the console's lock state is unreadable; nobody is let in"}
	}
	if until.Sub(now) > MaxLock {
		// A clock set back (a board without a battery-backed clock, say) must not stretch
		// a lock beyond the longest one.
		until = now.Add(MaxLock)
		if err := s.cfg.Locks.SetConsoleFailures(failures, until); err != nil {
			s.cfg.Logger.Error("console lock state unwritable", "event", "console_error", "err", err)
		}
	}
	if now.Before(until) {
		code := CodeBackoff
		if failures >= LockAfter {
			code = CodeLocked
		}
		// The challenge is spent all the same: it cannot be kept for after the wait.
		s.session = session{}
		s.audit("console_auth_failed", map[string]string{"reason": code, "failures": fmt.Sprint(failures)})
		return TypeError, &Error{Code: code, Message: refusedMessage(failures), RetryAfter: until.Sub(now)}
	}
	challenge, at := s.session.challenge, s.session.challengeAt
	s.session = session{} // single use, whatever the outcome
	cert, err := s.check(now, a, challenge, at)
	if err != nil {
		failures++
		wait := time.Duration(1<<min(failures-1, 20)) * time.Second
		code := CodeAuthFailed
		if failures >= LockAfter {
			wait = min(LockFor<<min(failures-LockAfter, 20), MaxLock)
			code = CodeLocked
		}
		fields := map[string]string{"reason": err.Error(), "failures": fmt.Sprint(failures)}
		if cert != nil {
			fields["technician"], fields["serial"] = cert.Name, fmt.Sprint(cert.Serial)
		}
		if serr := s.cfg.Locks.SetConsoleFailures(failures, now.Add(wait)); serr != nil {
			fields["lock_error"] = serr.Error()
		}
		s.audit("console_auth_failed", fields)
		if code == CodeLocked {
			s.audit("console_locked", map[string]string{"until": now.Add(wait).UTC().Format(time.RFC3339), "failures": fmt.Sprint(failures)})
		}
		return TypeError, &Error{Code: code, Message: err.Error() + "; " + failedMessage(failures), RetryAfter: wait}
	}
	if err := s.cfg.Locks.SetConsoleFailures(0, time.Time{}); err != nil {
		s.audit("console_auth_failed", map[string]string{"reason": "lock state unwritable: " + err.Error()})
		return TypeError, &Error{Code: CodeFailed, Message: "the console's lock state is unwritable; nobody is let in"}
	}
	fields := map[string]string{"technician": cert.Name, "serial": fmt.Sprint(cert.Serial), "facility": cert.Facility}
	if err := s.audit("console_auth_ok", fields); err != nil {
		return TypeError, &Error{Code: CodeFailed, Message: "the audit log is unwritable; nobody is let in"}
	}
	s.session = session{cert: cert, lastUsed: now}
	return TypeAuth | answerBit, AuthOK{Technician: cert.Name, Facility: cert.Facility, Serial: cert.Serial, NotAfter: cert.NotAfter}
}

// The messages of a refused sign-in say where the technician stands: how many attempts are
// left before the lock, or that the console is locked; when the next attempt may come is in
// the error's RetryAfter. A lock is never claimed before there is one.

// failedMessage follows the reason of the failures-th failure in a row.
func failedMessage(failures int) string {
	if failures >= LockAfter {
		return lockedMessage(failures)
	}
	return fmt.Sprintf("%s left before the console locks", plural(LockAfter-failures, "attempt"))
}

// refusedMessage is the refusal of an attempt that came during the wait after failures.
func refusedMessage(failures int) string {
	if failures >= LockAfter {
		return lockedMessage(failures)
	}
	return fmt.Sprintf("wait before the next attempt: %s in a row; %d left before the console locks",
		plural(failures, "failed attempt"), LockAfter-failures)
}

func lockedMessage(failures int) string {
	return fmt.Sprintf("the console is locked after %d failed attempts in a row", failures)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// check verifies an answer to a challenge; the certificate is returned when it parsed, for
// the audit log.
func (s *Server) check(now time.Time, a Auth, challenge []byte, at time.Time) (*Certificate, error) {
	if challenge == nil || now.Sub(at) > ChallengeTTL || now.Before(at) {
		return nil, ErrNoChallenge
	}
	cert, err := ParseCertificate(a.Certificate)
	if err != nil {
		return nil, err
	}
	tb, err := os.ReadFile(s.cfg.TrustFile)
	if err != nil {
		return cert, fmt.Errorf("%w: %w", ErrTrust, err)
	}
	trust, err := ParseTrust(tb)
	if err != nil {
		return cert, err
	}
	if trust.Len() == 0 {
		return cert, ErrNoProvisioning
	}
	if err := cert.Verify(trust, s.facility, now); err != nil {
		return cert, err
	}
	if !ed25519.Verify(cert.PublicKey, AuthMessage(s.cfg.DeviceID, challenge), a.Signature) {
		return cert, ErrBadSignature
	}
	return cert, nil
}

// numberLike finds what could be a phone number: seven or more digits, with the separators
// people write between them.
var numberLike = regexp.MustCompile(`\+?\d[\d\s().-]{5,}\d`)

// notNumbers are the shapes of what the agent writes into its log lines that hold digit runs
// but never a phone number: times (RFC 3339, or a time of day), call ids (the call's UTC
// start and random hex), device ids (wp- and 16 hex digits), and key fingerprints and
// SHA-256 sums (32 or 64 hex digits, more than any phone number has). They are kept whole, so
// that a technician can read when a call was, match it to its recording and tell the phone.
var notNumbers = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?|\b\d{2}:\d{2}:\d{2}(\.\d+)?\b|\b\d{8}T\d{6}Z-[0-9a-f]{4,}\b|\bwp-[0-9a-f]{16}\b|\b[0-9a-f]{32}(?:[0-9a-f]{32})?\b`)

// RedactNumbers removes anything number-like from text, except times and call ids: the
// phone's redaction of free text in its log lines, and the console's last guard behind it.
func RedactNumbers(line string) string {
	var b strings.Builder
	last := 0
	for _, m := range notNumbers.FindAllStringIndex(line, -1) {
		b.WriteString(redactSpan(line[last:m[0]]))
		b.WriteString(line[m[0]:m[1]])
		last = m[1]
	}
	b.WriteString(redactSpan(line[last:]))
	return b.String()
}

func redactSpan(s string) string {
	return numberLike.ReplaceAllStringFunc(s, func(m string) string {
		digits := 0
		for _, c := range m {
			if c >= '0' && c <= '9' {
				digits++
			}
		}
		if digits < 7 {
			return m
		}
		return "[number removed]"
	})
}

func (s *Server) logs(n int) LogLines {
	lines := s.cfg.Phone.Logs(n)
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, RedactNumbers(l))
	}
	// Keep the newest lines that fit in one frame.
	for {
		b, _ := json.Marshal(LogLines{Lines: out})
		if len(b) <= MaxPayload-64 || len(out) == 0 {
			return LogLines{Lines: out}
		}
		out = out[1:]
	}
}

func (s *Server) put(p Put) (Done, error) {
	if _, ok := s.cfg.Validators[p.Name]; !ok {
		return Done{}, &Error{Code: CodeRefused, Message: fmt.Sprintf("%q is not an item a phone installs (it takes: %s)", p.Name, strings.Join(s.itemNames(), ", "))}
	}
	if s.session.staged == nil {
		s.session.staged = map[string][]byte{}
	}
	buf := s.session.staged[p.Name]
	if p.Offset == 0 {
		buf = make([]byte, 0, p.Total)
	}
	if p.Offset != len(buf) || cap(buf) != p.Total {
		return Done{}, &Error{Code: CodeRefused, Message: fmt.Sprintf("%s: chunk at %d, expected %d: start the item again", p.Name, p.Offset, len(buf))}
	}
	s.session.staged[p.Name] = append(buf, p.Data...)
	return Done{}, nil
}

func (s *Server) itemNames() []string {
	var names []string
	for n := range s.cfg.Validators {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// enroll checks every item before it writes any, then writes the items, a fresh device key
// and, last, the facility: a phone is enrolled only once everything else is in place.
func (s *Server) enroll(e Enroll) (Enrolled, error) {
	names := make([]string, 0, len(e.Items))
	for name, sum := range e.Items {
		validate, ok := s.cfg.Validators[name]
		if !ok {
			return Enrolled{}, &Error{Code: CodeRefused, Message: fmt.Sprintf("%q is not an item a phone installs", name)}
		}
		b, ok := s.session.staged[name]
		if !ok || len(b) != cap(b) {
			return Enrolled{}, &Error{Code: CodeRefused, Message: fmt.Sprintf("%s: not (completely) uploaded", name)}
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != strings.ToLower(sum) {
			return Enrolled{}, &Error{Code: CodeRefused, Message: fmt.Sprintf("%s: content differs from what was sent (checksum mismatch)", name)}
		}
		if err := validate(b); err != nil {
			return Enrolled{}, &Error{Code: CodeRefused, Message: fmt.Sprintf("%s: %v", name, err)}
		}
		names = append(names, name)
	}
	slices.Sort(names)
	items := map[string][]byte{}
	for _, name := range names {
		items[name] = s.session.staged[name]
	}
	var key ed25519.PrivateKey
	facility := s.session.cert.Facility
	err := WriteEnrolment(s.cfg.DataDir, items, facility, func() (err error) {
		key, err = s.newDeviceKey()
		return err
	})
	if err != nil {
		return Enrolled{}, err
	}
	pub := key.Public().(ed25519.PublicKey)
	s.deviceKey, s.facility = pub, facility
	s.session.staged = nil
	return Enrolled{Facility: facility, DeviceKey: pub, KeyFingerprint: identity.Fingerprint(pub), Installed: names}, nil
}

// newDeviceKey makes the phone a new device key and hands the audit log over to it: the log
// records the change, signed by the old key, and signs everything after it with the new one,
// so that it still verifies as a whole (audit.Verify follows the change). The key is staged
// (StagedKeyFile), the change recorded, and only then the key put in place: a power cut at
// any point leaves a log that verifies, and start-up finishes or drops the staged key as the
// log says (FinishKeyChange).
func (s *Server) newDeviceKey() (ed25519.PrivateKey, error) {
	staged := filepath.Join(s.cfg.DataDir, StagedKeyFile)
	key, err := identity.Create(staged)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Audit.ChangeKey(key); err != nil {
		if rerr := os.Remove(staged); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("the audit log cannot record the new device key, so the phone keeps its old one: %w", err)
	}
	if err := putKeyInPlace(s.cfg.DataDir); err != nil {
		// The log has the change: the next start finishes it.
		return nil, fmt.Errorf("the new device key is recorded but not yet in place (the next start puts it there): %w", err)
	}
	return key, nil
}

// DeviceKeyFile is the device key in the data directory; StagedKeyFile is a new one an
// enrolment made, until the audit log has recorded the change to it.
const (
	DeviceKeyFile = "device.key"
	StagedKeyFile = "device.key.new"
)

func putKeyInPlace(dataDir string) error {
	if err := os.Rename(filepath.Join(dataDir, StagedKeyFile), filepath.Join(dataDir, DeviceKeyFile)); err != nil {
		return err
	}
	return atomicfile.SyncDir(dataDir)
}

// FinishKeyChange completes what an enrolment cut short left of a device key change: a
// staged key the audit log hands over to (recorded says so) is put in place; one it does not
// is dropped, and the phone keeps its key. It reports which, if either, it did.
func FinishKeyChange(dataDir string, recorded func(ed25519.PublicKey) (bool, error)) (finished, dropped bool, err error) {
	staged := filepath.Join(dataDir, StagedKeyFile)
	b, err := os.ReadFile(staged)
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	key, err := identity.ParsePrivateKey(b)
	if err == nil {
		var ok bool
		if ok, err = recorded(key.Public().(ed25519.PublicKey)); err != nil {
			return false, false, err
		}
		if ok {
			return true, false, putKeyInPlace(dataDir)
		}
	}
	// Not recorded, or torn by the cut: never in force anywhere.
	return false, true, os.Remove(staged)
}

func (s *Server) reset(ctx context.Context, now time.Time, r Reset, fields map[string]string) (ResetAnswer, error) {
	if r.Nonce == nil {
		st, err := s.cfg.Phone.Status(ctx)
		if err != nil {
			return ResetAnswer{}, err
		}
		s.session.resetNonce = make([]byte, nonceSize)
		if _, err := io.ReadFull(s.cfg.Rand, s.session.resetNonce); err != nil {
			return ResetAnswer{}, err
		}
		s.session.resetAt = now
		fields["step"] = "asked"
		return ResetAnswer{Nonce: s.session.resetNonce, Unsent: st.SpoolCalls}, nil
	}
	want, at := s.session.resetNonce, s.session.resetAt
	s.session.resetNonce = nil
	fields["step"] = "confirmed"
	if want == nil || now.Sub(at) > resetTTL || !bytes.Equal(want, r.Nonce) {
		return ResetAnswer{}, &Error{Code: CodeRefused, Message: "confirmation does not match a reset asked for in the last minute: ask again"}
	}
	s.after = func() {
		if err := s.cfg.Reset(); err != nil {
			s.cfg.Logger.Error("console factory reset failed", "event", "console_error", "err", err)
		}
	}
	return ResetAnswer{Done: true}, nil
}

// update installs firmware from the technician's repository: the Updater reads it through
// the line while this goroutine keeps the line alive with progress notes.
func (s *Server) update(ctx context.Context, l *line, fields map[string]string) (Updated, error) {
	if s.cfg.Updater == nil {
		return Updated{}, &Error{Code: CodeRefused, Message: "this phone does not update its firmware over the console"}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-s.cfg.After(keepAlive):
				l.renote()
			}
		}
	})
	u, err := s.cfg.Updater.Update(ctx, &remote{s: s, l: l})
	close(stop)
	wg.Wait()
	if u.Image != "" {
		fields["image"], fields["version"] = u.Image, fmt.Sprint(u.Version)
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			err = &Error{Code: CodeRefused, Message: err.Error()}
		}
		return Updated{}, err
	}
	fields["slot"], fields["fetched"] = u.Slot, fmt.Sprint(u.Fetched)
	return u, nil
}
