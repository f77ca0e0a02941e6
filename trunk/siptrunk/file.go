package siptrunk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/wallphone/wallphone/trunk"
)

// ErrNoAccount is what a call gets when the phone has no SIP account: the caller hears that
// the call failed, and the log says why, once at start.
var ErrNoAccount = errors.New("no SIP account configured (sip.json)")

// ErrNotStarted is what a call gets while the SIP user agent is not running although an
// account is installed; the error wraps why (a bad sip.json, or the last failed start, such as
// a listen address another process holds) and says when the next attempt is.
var ErrNotStarted = errors.New("SIP trunk not started")

// FileOptions are what Open takes besides the file.
type FileOptions struct {
	// Logger receives the trunk's records; nil discards.
	Logger *slog.Logger
	// After waits between attempts to start the user agent, and Now is the time that Dial
	// and Status count the next attempt from; nil are the wall clock's.
	After func(time.Duration) <-chan time.Time
	Now   func() time.Time
}

// The wait between attempts to start the user agent doubles from firstRetry up to maxRetry,
// each with jitter, so that phones that failed together do not retry together.
const (
	firstRetry = time.Second
	maxRetry   = time.Minute
)

// OpenFile is Open on the wall clock.
func OpenFile(file string, log *slog.Logger) (trunk.Trunk, func()) {
	return Open(file, FileOptions{Logger: log})
}

// Open starts a trunk from the account in file (sip.json). The phone keeps running whatever
// the file holds, as with any item of its configuration that is not installed:
//
//   - a missing file gives a trunk whose calls fail with ErrNoAccount;
//   - an unreadable or malformed one (Parse fails), calls that fail with ErrNotStarted wrapping
//     what is wrong, without retry: it will not mend itself;
//   - a start that fails (the listen address is taken, no route to the server yet) is retried
//     with backoff until it succeeds or the trunk is stopped; meanwhile calls fail with
//     ErrNotStarted wrapping the last failure.
//
// Each is logged (sip_not_configured, sip_error; a retry only when its cause changes or at
// the cap of the backoff) and reported by the trunk's Status. The returned function stops
// the retries, waiting for them, and closes the trunk if it started (hanging up a call still
// going).
func Open(file string, o FileOptions) (trunk.Trunk, func()) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &fileTrunk{file: file, log: log, after: o.After, now: o.Now}
	if f.after == nil {
		f.after = time.After
	}
	if f.now == nil {
		f.now = time.Now
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no SIP account: calls cannot be placed until sip.json is installed",
			"event", "sip_not_configured", "file", file)
		f.cause = ErrNoAccount
		return f, f.stop
	}
	if err == nil {
		f.cfg, err = Parse(b)
	}
	if err != nil {
		log.Error("SIP trunk not started: calls cannot be placed", "event", "sip_error",
			"file", file, "err", err.Error())
		f.cause = err
		return f, f.stop
	}
	wait, retry := f.try(firstRetry, "")
	if retry {
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel, f.done = cancel, make(chan struct{})
		go f.retry(ctx, wait)
	}
	return f, f.stop
}

// fileTrunk is the trunk Open returns: the SIP user agent once it runs, and until then what
// keeps it from running.
type fileTrunk struct {
	file  string
	log   *slog.Logger
	after func(time.Duration) <-chan time.Time
	now   func() time.Time
	cfg   Config

	// cancel stops the retry goroutine, which closes done when it has returned; both nil
	// when no goroutine was started.
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards t, cause, next and stopped
	t       *Trunk     // the running user agent; nil until it starts
	cause   error      // why t is nil: ErrNoAccount, a bad file, the last failed start
	next    time.Time  // when the next attempt is; zero: none will be made
	stopped bool
}

// Dial implements trunk.Trunk.
func (f *fileTrunk) Dial(e164 string) (trunk.Leg, error) {
	f.mu.Lock()
	t, cause, next, stopped := f.t, f.cause, f.next, f.stopped
	f.mu.Unlock()
	switch {
	case stopped:
		return nil, ErrClosed
	case t != nil:
		return t.Dial(e164)
	case errors.Is(cause, ErrNoAccount):
		return nil, cause
	case next.IsZero():
		return nil, fmt.Errorf("%w: %w", ErrNotStarted, cause)
	}
	return nil, fmt.Errorf("%w: %w (retrying in %s)", ErrNotStarted, cause, f.until(next))
}

// Status says, for the console, whether calls can be placed and if not, why.
func (f *fileTrunk) Status() string {
	f.mu.Lock()
	t, cause, next, stopped := f.t, f.cause, f.next, f.stopped
	f.mu.Unlock()
	switch {
	case stopped:
		return "stopped"
	case t != nil:
		return t.Status()
	case errors.Is(cause, ErrNoAccount):
		return "no account (sip.json not installed)"
	case next.IsZero():
		return "not started: " + cause.Error()
	}
	return fmt.Sprintf("not started: %v; retrying in %s", cause, f.until(next))
}

// until is how long until t, in whole seconds rounded up.
func (f *fileTrunk) until(t time.Time) time.Duration {
	return max(0, t.Sub(f.now())+time.Second-1).Truncate(time.Second)
}

// try starts the user agent once. When that fails it records why and, unless the cause is
// the configuration itself, when it tries again: after about backoff. The failure is logged
// unless it repeats lastLogged (the text of the last failure logged) below the backoff's cap.
func (f *fileTrunk) try(backoff time.Duration, lastLogged string) (wait time.Duration, retry bool) {
	t, err := New(f.cfg, Options{Logger: f.log})
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.t, f.cause, f.next = t, nil, time.Time{}
		return 0, false
	}
	f.cause, f.next = err, time.Time{}
	if errors.Is(err, ErrConfig) {
		f.log.Error("SIP trunk not started: calls cannot be placed", "event", "sip_error",
			"file", f.file, "err", err.Error())
		return 0, false
	}
	wait = spread(backoff)
	f.next = f.now().Add(wait)
	if err.Error() != lastLogged || backoff >= maxRetry {
		f.log.Error("SIP trunk not started: calls fail until it starts", "event", "sip_error",
			"file", f.file, "err", err.Error(), "retry_in", wait.Round(time.Millisecond))
	}
	return wait, true
}

// retry tries again after each wait, doubling it up to maxRetry, until the user agent starts
// or ctx is done.
func (f *fileTrunk) retry(ctx context.Context, wait time.Duration) {
	defer close(f.done)
	backoff := firstRetry
	lastLogged := f.causeText()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.after(wait):
		}
		backoff = min(2*backoff, maxRetry)
		var retry bool
		if wait, retry = f.try(backoff, lastLogged); !retry {
			return
		}
		lastLogged = f.causeText()
	}
}

func (f *fileTrunk) causeText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cause.Error()
}

// spread is d give or take a tenth.
func spread(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5)
}

// stop ends the retries and waits for them, then closes the user agent if it started.
func (f *fileTrunk) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	f.mu.Lock()
	t := f.t
	f.t = nil
	f.mu.Unlock()
	if t == nil {
		return
	}
	if err := t.Close(); err != nil {
		f.log.Error("closing the SIP trunk", "event", "sip_error", "err", err)
	}
}
