package call

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/device/sim"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/store"
	"github.com/wallphone/wallphone/trunk/simtrunk"
)

// Numbers of the demo facility, as a caller keys them.
const (
	dialPrivileged = "5125550100"
	dialRecorded   = "5125550123"
	dialBlocked    = "5125550166"
	dialFree       = "8006564673"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// event is one record the machine logged.
type event struct {
	name  string
	at    time.Time
	attrs map[string]string
}

// recordingHandler keeps every record the machine logs.
type recordingHandler struct {
	mu     sync.Mutex // guards events
	events []event
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	e := event{name: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "at" {
			e.at = a.Value.Time()
		}
		e.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
	return nil
}

// fakeRecorder keeps counts only, and lets a test make Start or Write fail.
type fakeRecorder struct {
	starts   []RecordingInfo
	frames   int
	sound    int // frames in which either side was not silent
	closed   int
	startErr error
	// canErr is what CanRecord says; closeErr what Close returns (a last segment lost).
	canErr, closeErr error
}

func (r *fakeRecorder) CanRecord() error { return r.canErr }

func (r *fakeRecorder) Start(info RecordingInfo) (Recording, error) {
	if r.startErr != nil {
		return nil, r.startErr
	}
	r.starts = append(r.starts, info)
	return (*fakeRecording)(r), nil
}

type fakeRecording fakeRecorder

func (r *fakeRecording) Write(caller, called *audio.Frame) error {
	r.frames++
	if *caller != (audio.Frame{}) || *called != (audio.Frame{}) {
		r.sound++
	}
	return nil
}
func (r *fakeRecording) Close() error { r.closed++; return r.closeErr }

type harness struct {
	t       testing.TB
	now     time.Time
	board   *sim.Board
	callee  *simtrunk.Trunk
	m       *Machine
	rec     *fakeRecorder
	db      *store.DB
	pol     *policy.Policy
	reg     Registry
	log     *recordingHandler
	prompts *audio.Prompts
	ear     *bytes.Buffer // everything the earpiece played, s16le; nil unless asked for
	fresh   registry.Freshness
	audit   fakeAuditor
}

// fakeAuditor keeps the decisions it was given.
type fakeAuditor struct{ decided []Decision }

func (a *fakeAuditor) Decided(_ string, _ time.Time, d Decision) error {
	a.decided = append(a.decided, d)
	return nil
}

var (
	promptsOnce sync.Once
	prompts     *audio.Prompts
	promptsErr  error
	demoOnce    sync.Once
	demoPolicy  []byte
	demoErr     error
)

func testPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	demoOnce.Do(func() {
		// Recipients whose identities nobody keeps: these tests never open a recording.
		recipients := []string{
			"age1uwdjl4mgf073yp3m3w2fw3p7cqpk9klcnd527hvyvgv5s0zcdv2sxggeq6",
			"age19phwxrk7zsc2tulwgw67xkz8l4epjghzjpj34j6r3sjh5qqe4qnqq2c6g3",
		}
		demoPolicy, demoErr = policy.Demo(rand.Reader, pin.TestParams(), recipients)
	})
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	p, err := policy.Parse(demoPolicy)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testRegistry(t testing.TB) Registry {
	t.Helper()
	r, err := registry.New(registry.Demo())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newHarness(t testing.TB) *harness { return newHarnessEar(t, nil) }

// newHarnessEar is newHarness with everything the earpiece plays written to ear.
func newHarnessEar(t testing.TB, ear *bytes.Buffer) *harness {
	t.Helper()
	promptsOnce.Do(func() { prompts, promptsErr = audio.LoadPrompts() })
	if promptsErr != nil {
		t.Fatal(promptsErr)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &harness{t: t, now: epoch, db: db, rec: &fakeRecorder{}, pol: testPolicy(t),
		reg: testRegistry(t), log: &recordingHandler{}, prompts: prompts}
	h.ear = ear
	opts := sim.Options{Mic: audio.Tone(0.1, 440)}
	if ear != nil {
		opts.Earpiece = ear
	}
	h.board = sim.New(opts)
	h.callee = simtrunk.New(simtrunk.Options{
		Now:   func() time.Time { return h.now },
		Voice: func() audio.Source { return audio.Tone(0.2, 1000) },
	})
	dev := h.board.Device()
	h.m, err = New(Config{
		Keypad: dev.Keypad, Hook: dev.Hook, Handset: dev.Handset,
		Trunk: h.callee, Prompts: prompts,
		Policy:    func() *policy.Policy { return h.pol },
		Registry:  func() Registry { return h.reg },
		Freshness: func(time.Time) registry.Freshness { return h.fresh },
		Audit:     &h.audit,
		Recorder:  h.rec, Store: db, DeviceID: "wp-test", Logger: slog.New(h.log),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) tick() {
	h.now = h.now.Add(audio.FrameDuration)
	h.m.Tick(h.now)
}

func (h *harness) wait(d time.Duration) {
	for end := h.now.Add(d); h.now.Before(end); {
		h.tick()
	}
}

// waitFor ticks until the named event appears (after the events already seen), failing after
// limit of simulated time.
func (h *harness) waitFor(name string, limit time.Duration) event {
	h.t.Helper()
	seen := len(h.events())
	for end := h.now.Add(limit); h.now.Before(end); {
		h.tick()
		evs := h.events()
		for _, e := range evs[seen:] {
			if e.name == name {
				return e
			}
		}
	}
	h.t.Fatalf("no %s event within %s; events: %s", name, limit, h.names())
	return event{}
}

// waitState ticks until the machine is in state, failing after limit of simulated time.
func (h *harness) waitState(state string, limit time.Duration) {
	h.t.Helper()
	for end := h.now.Add(limit); h.m.State() != state; h.tick() {
		if !h.now.Before(end) {
			h.t.Fatalf("state %s, want %s within %s; events: %s", h.m.State(), state, limit, h.names())
		}
	}
}

func (h *harness) offhook() { h.board.SetOffHook(true); h.tick() }
func (h *harness) onhook()  { h.board.SetOffHook(false); h.tick() }
func (h *harness) press(k string) {
	h.t.Helper()
	if err := h.board.Press(k); err != nil {
		h.t.Fatal(err)
	}
	h.tick()
}
func (h *harness) do(action string) {
	h.t.Helper()
	if err := h.callee.Do(action); err != nil {
		h.t.Fatal(err)
	}
	h.tick()
}

func (h *harness) events() []event {
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	return append([]event(nil), h.log.events...)
}

func (h *harness) names() string {
	var b strings.Builder
	for _, e := range h.events() {
		b.WriteString(e.name)
		if e.name == "prompt" {
			b.WriteString("(" + e.attrs["prompt"] + ")")
		}
		b.WriteByte(' ')
	}
	return b.String()
}

func (h *harness) last(name string) (event, bool) {
	evs := h.events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].name == name {
			return evs[i], true
		}
	}
	return event{}, false
}

func (h *harness) count(name string) int {
	n := 0
	for _, e := range h.events() {
		if e.name == name {
			n++
		}
	}
	return n
}

// login lifts the handset and gets to number entry as caller id.
func (h *harness) login(id, pin string) {
	h.t.Helper()
	h.offhook()
	h.press("1")
	h.press(id + "#")
	h.press(pin + "#")
	if h.m.State() != "enter_number" {
		h.t.Fatalf("after login as %s: state %s; events %s", id, h.m.State(), h.names())
	}
}

// dial enters a number and waits for the phone to have rung the called party.
func (h *harness) dial(digits string) {
	h.t.Helper()
	h.press(digits + "#")
	h.waitState("ringing", 30*time.Second)
}

// toAccept gets a recorded call to the point where the called party may accept.
func (h *harness) toAccept() {
	h.t.Helper()
	h.login("1001", "1234")
	h.dial(dialRecorded)
	h.do("answer")
	h.waitState("await_accept", 30*time.Second)
}

// records reads back every stored call record.
func (h *harness) records() []callrecord.Record {
	h.t.Helper()
	var out []callrecord.Record
	err := h.db.Calls(func(_ string, b []byte) error {
		r, err := callrecord.Parse(b)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) onlyRecord() callrecord.Record {
	h.t.Helper()
	rs := h.records()
	if len(rs) != 1 {
		h.t.Fatalf("%d call records, want 1: %+v", len(rs), rs)
	}
	return rs[0]
}

var errBoom = errors.New("boom")

// farEndFrames reports, for each frame the earpiece played, whether it carried the called
// party's voice (the 1 kHz tone of the harness), by the share of its energy at 1 kHz.
func (h *harness) farEndFrames() []bool {
	b := h.ear.Bytes()
	n := len(b) / (2 * audio.FrameSamples)
	out := make([]bool, n)
	for i := range n {
		var f audio.Frame
		for j := range f {
			k := 2 * (i*audio.FrameSamples + j)
			f[j] = int16(uint16(b[k]) | uint16(b[k+1])<<8)
		}
		out[i] = toneShare(&f, 1000) > 0.8
	}
	return out
}

// toneShare is the Goertzel power at freq over the frame's whole power (0 for silence).
func toneShare(f *audio.Frame, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/audio.SampleRate)
	var s1, s2, total float64
	for _, v := range f {
		x := float64(v)
		total += x * x
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	if total == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	return power / (total * float64(len(f)) / 2)
}

// earFramesWith counts the earpiece frames from frame from on in which freq dominates.
func (h *harness) earFramesWith(from int, freq float64) int {
	b := h.ear.Bytes()
	n := 0
	for i := from; (i+1)*2*audio.FrameSamples <= len(b); i++ {
		var f audio.Frame
		for j := range f {
			k := 2 * (i*audio.FrameSamples + j)
			f[j] = int16(uint16(b[k]) | uint16(b[k+1])<<8)
		}
		if toneShare(&f, freq) > 0.1 {
			n++
		}
	}
	return n
}

// closing is the prompt that said why the call ended: the last one before "please hang up".
func (h *harness) closing() event {
	h.t.Helper()
	ev := h.events()
	for i := len(ev) - 1; i > 0; i-- {
		if ev[i].name == "prompt" && ev[i].attrs["prompt"] == string(audio.PromptHangUp) {
			for j := i - 1; j >= 0; j-- {
				if ev[j].name == "prompt" {
					return ev[j]
				}
			}
		}
	}
	h.t.Fatalf("no closing prompt before %s: %s", audio.PromptHangUp, h.names())
	return event{}
}
