package siptrunk

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallphone/wallphone/trunk"
)

// statuser is how the agent asks a trunk how it stands.
type statuser interface{ Status() string }

// A phone without a usable sip.json keeps running: every call fails, saying why (no account,
// or what is wrong in the file), and the log says why, naming the file, once.
func TestOpenFileWithoutAccount(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"server": "sip.example", "pasword": "x"}`), 0o600)
	for _, tc := range []struct {
		file, event, detail string
		want                error
		status              string
	}{
		{filepath.Join(dir, "missing.json"), "sip_not_configured", "missing.json", ErrNoAccount,
			"no account (sip.json not installed)"},
		{bad, "sip_error", "pasword", ErrConfig, `not started: sip.json: json: unknown field "pasword"`},
	} {
		var log bytes.Buffer
		tr, stop := OpenFile(tc.file, slog.New(slog.NewJSONHandler(&log, nil)))
		_, err := tr.Dial("+15125550123")
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: dial: %v, want %v", tc.file, err, tc.want)
		}
		if tc.want == ErrConfig && (!errors.Is(err, ErrNotStarted) || !strings.Contains(err.Error(), "pasword")) {
			t.Errorf("%s: dial: %v, want ErrNotStarted naming the field", tc.file, err)
		}
		if got := tr.(statuser).Status(); got != tc.status {
			t.Errorf("%s: status %q, want %q", tc.file, got, tc.status)
		}
		stop()
		if n := strings.Count(log.String(), `"event":"`+tc.event+`"`); n != 1 || !strings.Contains(log.String(), tc.detail) {
			t.Errorf("%s: log %s", tc.file, log.String())
		}
		if _, err := tr.Dial("+15125550123"); !errors.Is(err, ErrClosed) {
			t.Errorf("%s: dial after stop: %v, want ErrClosed", tc.file, err)
		}
	}
}

// stepClock is a retry clock the test drives: each After hands the test the wait asked for
// and fires only when the test says so.
type stepClock struct {
	waits chan time.Duration
	fire  chan time.Time
}

func newStepClock() *stepClock {
	return &stepClock{waits: make(chan time.Duration, 100), fire: make(chan time.Time)}
}

var stepNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func (c *stepClock) Now() time.Time { return stepNow }

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

// next returns the wait of the next attempt, once the trunk asks for it: the attempt before
// it is over by then.
func (c *stepClock) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the trunk asked for no wait: it does not retry")
		return 0
	}
}

// busyPort holds a UDP port on loopback, as another process holding the SIP port would.
func busyPort(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openBusy writes a sip.json whose listen address busy holds, for server, and opens it on
// clock; the test's cleanup stops it too.
func openBusy(t *testing.T, busy *net.UDPConn, server string, clock *stepClock) (trunk.Trunk, func(), *logWatch) {
	t.Helper()
	lo := 20000 + 2*int(time.Now().UnixNano()%4000)
	file := filepath.Join(t.TempDir(), "sip.json")
	conf := fmt.Sprintf(`{"server": %q, "user": "wall-0042", "listen": %q, "rtp_ports": "%d-%d"}`,
		server, busy.LocalAddr(), lo, lo+999)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &logWatch{t: t, seen: make(chan string, 100)}
	tr, stop := Open(file, FileOptions{Logger: slog.New(slog.NewJSONHandler(w, nil)),
		After: clock.After, Now: clock.Now})
	t.Cleanup(stop)
	return tr, stop, w
}

// A SIP listen address that another process holds at start does not disable calls until a
// restart: each call fails naming the real cause and when the trunk tries again, and once the
// port is free the retry starts the user agent and a call goes through to SIPp.
func TestOpenFileRetriesListen(t *testing.T) {
	s := startSIPp(t, "uas_hangup.xml", "udp", "codec", "0")
	busy := busyPort(t)
	clock := newStepClock()
	tr, _, log := openBusy(t, busy, s.addr, clock)

	_, err := tr.Dial("+15125550100")
	if !errors.Is(err, syscall.EADDRINUSE) || !errors.Is(err, ErrNotStarted) {
		t.Fatalf("dial while the port is taken: %v, want ErrNotStarted wrapping EADDRINUSE", err)
	}
	wait := clock.next(t)
	for _, want := range []string{"SIP trunk not started: sip listen:", busy.LocalAddr().String(),
		"address already in use", fmt.Sprintf("(retrying in %s)", (wait + time.Second - 1).Truncate(time.Second))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("dial: %q does not say %q", err, want)
		}
	}
	if st := tr.(statuser).Status(); !strings.HasPrefix(st, "not started: sip listen:") || !strings.Contains(st, "address already in use; retrying in ") {
		t.Errorf("status %q", st)
	}
	log.wait("sip_error")
	if !log.saw(`"retry_in"`) {
		t.Error("the log does not say when the trunk tries again")
	}

	busy.Close()
	clock.fire <- stepNow
	log.wait("sip_ready")
	// The user agent logs that it is ready before the retry hands it over: the retry's end is
	// when calls go through it.
	<-tr.(*fileTrunk).done
	want := "ready, listening on " + busy.LocalAddr().String() + " (udp), not registering"
	if st := tr.(statuser).Status(); st != want {
		t.Errorf("status %q, want %q", st, want)
	}
	leg, err := tr.Dial("+15125550100")
	if err != nil {
		t.Fatal(err)
	}
	c := drive(t, leg, nil, 10*time.Second, func(c *callLog) bool { return c.has(trunk.HungUp) })
	s.wait(t)
	if got := afterRinging(c.kinds()); got != "answered hung_up " {
		t.Errorf("events %q", got)
	}
	leg.Hangup()
}

// While the port stays taken the waits double from a second to a minute, give or take a
// tenth; the log says the first failure and then only those at the cap; stopping ends the
// retries without waiting for the next attempt.
func TestOpenFileBackoff(t *testing.T) {
	busy := busyPort(t)
	clock := newStepClock()
	tr, stop, log := openBusy(t, busy, "127.0.0.1:5060", clock)
	base := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, b := range base {
		b *= time.Second
		if d := clock.next(t); d < b-b/10 || d >= b+b/10 {
			t.Errorf("wait %d: %s, want %s give or take a tenth", i, d, b)
		}
		if i < len(base)-1 {
			clock.fire <- stepNow
		}
	}
	// The first failure, then the three at the cap.
	if n := log.count(`"event":"sip_error"`); n != 4 {
		t.Errorf("%d sip_error records, want 4", n)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		stop()
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return while the trunk waited to retry")
	}
	if _, err := tr.Dial("+15125550100"); !errors.Is(err, ErrClosed) {
		t.Errorf("dial after stop: %v, want ErrClosed", err)
	}
	if st := tr.(statuser).Status(); st != "stopped" {
		t.Errorf("status after stop %q", st)
	}
}
