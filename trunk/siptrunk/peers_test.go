package siptrunk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audio/g711"
	"github.com/wallphone/wallphone/internal/testports"
	"github.com/wallphone/wallphone/trunk"
)

// The tests in this file run real SIP peers from Debian: SIPp (package sip-tester) and
// baresip. make test installs them (make deps); a test skips only where a peer is missing
// and cannot be installed.

var installMu sync.Mutex

// needTool returns the path of cmd, installing Debian package pkg if it is missing and this
// user may; it skips the test, saying why, if neither works.
func needTool(t *testing.T, cmd, pkg string) string {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	if p, err := exec.LookPath(cmd); err == nil {
		return p
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		out, err := exec.Command("apt-get", "install", "-y", "-qq", pkg).CombinedOutput()
		if err != nil {
			t.Logf("apt-get install %s: %v\n%s", pkg, err, out)
		}
		if p, err := exec.LookPath(cmd); err == nil {
			return p
		}
	}
	t.Skipf("%s (Debian package %s) is not installed and cannot be installed here; make deps installs it", cmd, pkg)
	return ""
}

// portBlock is how many ports each freePort caller may use from the one it is given: room
// for a peer's media ports above its first one, and for baresip's SIP over TLS.
const portBlock = 4

// ports hands out the test peers' ports, never the same twice in one test binary.
var ports = testports.New(nil)

// freePort returns the first of portBlock ports that were free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	return ports.Take(t, portBlock)
}

// testTrunk starts a trunk on loopback that sends its calls to server.
func testTrunk(t *testing.T, server, transport string) *Trunk {
	tr, _ := testTrunkLog(t, fmt.Sprintf(`{"server": %q, "transport": %q, "user": "wall-0042"}`, server, transport))
	return tr
}

// testTrunkLog starts a trunk from sip.json text (listen and rtp_ports are added) and returns
// its log too.
func testTrunkLog(t *testing.T, conf string) (*Trunk, *logWatch) {
	t.Helper()
	lo := 20000 + 2*int(time.Now().UnixNano()%4000)
	conf = strings.TrimSuffix(strings.TrimSpace(conf), "}") +
		fmt.Sprintf(`, "listen": "127.0.0.1:0", "rtp_ports": "%d-%d"}`, lo, lo+999)
	cfg, err := Parse([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	w := &logWatch{t: t, seen: make(chan string, 100)}
	t.Cleanup(func() {
		// Every test dials this number; a call may be privileged, so it is never logged.
		if w.saw("5125550100") {
			t.Error("the dialed number is in the trunk's log")
		}
	})
	tr, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(w, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, w
}

// logWatch writes log records into the test's log and hands their event names to wait.
type logWatch struct {
	t    *testing.T
	seen chan string
	mu   sync.Mutex
	all  strings.Builder // every record
}

// count is how many records so far contain s.
func (w *logWatch) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Count(w.all.String(), s)
}

// saw reports whether any record so far contains s.
func (w *logWatch) saw(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.all.String(), s)
}

func (w *logWatch) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	w.mu.Lock()
	w.all.Write(b)
	w.mu.Unlock()
	var rec struct{ Event string }
	if json.Unmarshal(b, &rec) == nil && rec.Event != "" {
		select {
		case w.seen <- rec.Event:
		default:
		}
	}
	return len(b), nil
}

// wait waits for a record with event name ev.
func (w *logWatch) wait(ev string) {
	w.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e := <-w.seen:
			if e == ev {
				return
			}
		case <-timeout:
			w.t.Fatalf("no %s in the trunk's log", ev)
		}
	}
}

// writeUlawWAV writes d of a sine at freq as a µ-law WAV (what SIPp streams with rtp_stream).
func writeUlawWAV(t *testing.T, path string, freq float64, d time.Duration, law string) {
	t.Helper()
	n := int(d.Seconds() * audio.SampleRate)
	data := make([]byte, n)
	for i := range data {
		v := int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/audio.SampleRate))
		if law == "PCMA" {
			data[i] = g711.EncodeAlaw(v)
		} else {
			data[i] = g711.EncodeUlaw(v)
		}
	}
	format := uint16(7)
	if law == "PCMA" {
		format = 6
	}
	var b bytes.Buffer
	wavHeader(&b, format, 8, n)
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wavHeader writes the header of a mono 8 kHz WAV of n samples.
func wavHeader(b *bytes.Buffer, format, bits uint16, n int) {
	size := n * int(bits) / 8
	b.WriteString("RIFF")
	for _, v := range []any{uint32(36 + size), []byte("WAVEfmt "), uint32(16), format, uint16(1),
		uint32(8000), uint32(8000 * bits / 8), bits / 8, bits, []byte("data"), uint32(size)} {
		binary.Write(b, binary.LittleEndian, v)
	}
}

// sipp is one SIPp run as the called party.
type sipp struct {
	addr string
	cmd  *exec.Cmd
	out  bytes.Buffer
	dir  string
	done chan error
}

// startSIPp runs scenario (a file in testdata) for one call, with -key pairs.
func startSIPp(t *testing.T, scenario string, transport string, keys ...string) *sipp {
	t.Helper()
	bin := needTool(t, "sipp", "sip-tester")
	dir := t.TempDir()
	// SIPp does not put -key values into exec actions, so every [key] is replaced here.
	xml, err := os.ReadFile(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(keys); i += 2 {
		xml = bytes.ReplaceAll(xml, []byte("["+keys[i]+"]"), []byte(keys[i+1]))
	}
	sf := filepath.Join(dir, scenario)
	if err := os.WriteFile(sf, xml, 0o644); err != nil {
		t.Fatal(err)
	}
	port, mport := freePort(t), freePort(t)
	tr := "u1"
	if transport == "tcp" {
		tr = "t1"
	}
	args := []string{"-sf", sf, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-t", tr,
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(mport), "-m", "1", "-nostdin",
		"-timeout", "20s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, "errors.log")}
	for i := 0; i+1 < len(keys); i += 2 {
		args = append(args, "-key", keys[i], keys[i+1])
	}
	s := &sipp{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
			t.Logf("sipp %v:\n%s\n%s", args, errs, tail(s.out.String(), 3000))
		}
	})
	// SIPp binds its socket right after it starts; give it that moment by waiting until the
	// kernel lists the port as bound. Trying to bind it ourselves would race SIPp for it:
	// under qemu that took the port from SIPp ("Unable to bind main socket").
	for i := 0; i < 200 && !testports.Bound(transport, port); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// wait waits for SIPp to finish its scenario and fails the test if it did not pass.
func (s *sipp) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			errs, _ := os.ReadFile(filepath.Join(s.dir, "errors.log"))
			t.Fatalf("sipp: %v\n%s\n%s", err, errs, tail(s.out.String(), 2000))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("sipp did not finish:\n%s", tail(s.out.String(), 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// callLog is what the phone's side of a call saw, driven as the call machine drives a leg:
// one Poll, Send and Receive per 20 ms.
type callLog struct {
	events []trunk.Event
	heard  []int16 // every frame Receive returned
	digits string
}

func (c *callLog) kinds() string {
	var b strings.Builder
	for _, e := range c.events {
		b.WriteString(e.Kind.String() + " ")
	}
	return b.String()
}

func (c *callLog) has(k trunk.EventKind) bool {
	for _, e := range c.events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// drive ticks the leg every 20 ms, sending tone, until until returns true or limit passes.
func drive(t *testing.T, leg trunk.Leg, tone audio.Source, limit time.Duration, until func(*callLog) bool) *callLog {
	t.Helper()
	c := &callLog{}
	tick := time.NewTicker(audio.FrameDuration)
	defer tick.Stop()
	deadline := time.Now().Add(limit)
	var f audio.Frame
	for time.Now().Before(deadline) {
		<-tick.C
		for {
			ev, ok := leg.Poll()
			if !ok {
				break
			}
			c.events = append(c.events, ev)
			if ev.Kind == trunk.Digit {
				c.digits += string(ev.Digit)
			}
		}
		if tone != nil {
			f.Silence()
			tone.Next(&f)
			leg.Send(&f)
		}
		if leg.Receive(&f) {
			c.heard = append(c.heard, f[:]...)
		}
		if until(c) {
			return c
		}
	}
	t.Fatalf("gave up after %s; events: %s; digits %q", limit, c.kinds(), c.digits)
	return c
}

// sound keeps the frames of x that are not all silence: what the jitter buffer put in place of
// packets lost on a loaded machine is not what the far end said.
func sound(x []int16) []int16 {
	var out []int16
	for i := 0; i+audio.FrameSamples <= len(x); i += audio.FrameSamples {
		f := x[i : i+audio.FrameSamples]
		for _, v := range f {
			if v != 0 {
				out = append(out, f...)
				break
			}
		}
	}
	return out
}

// toneShare is the share of the energy of x that is in the frequency freq (Goertzel).
func toneShare(x []int16, freq float64) float64 {
	if len(x) == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/audio.SampleRate)
	var s1, s2, total float64
	for _, v := range x {
		s := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s
		total += float64(v) * float64(v)
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	if total == 0 {
		return 0
	}
	return power / (total * float64(len(x)) / 2)
}
