package selftest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/sim"
)

var keys4x3 = []device.Key("123456789*0#")

// technician drives a self test on the simulated board: one tick at a time, doing what the
// script says at given ticks.
type technician struct {
	t      *testing.T
	board  *sim.Board
	ticks  chan time.Time
	done   chan Result
	out    syncBuffer
	cancel context.CancelFunc
}

// syncBuffer is the technician's screen: the test goroutine reads what the self test writes.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// await ticks until the screen shows text for the n-th time, as a technician reads before
// acting.
func (tc *technician) await(text string, n int) {
	tc.t.Helper()
	for range 10000 {
		if strings.Count(tc.out.String(), text) >= n {
			return
		}
		tc.wait(1)
	}
	tc.t.Fatalf("the screen never showed %q %d times:\n%s", text, n, tc.out.String())
}

// upToMouthpiece passes the keypad and hook steps and answers the earpiece step with key.
func (tc *technician) upToMouthpiece(key string) {
	for _, k := range keys4x3 {
		tc.press(string(k))
	}
	tc.doHook()
	tc.await("a tone is playing", 1)
	tc.press(key)
}

// doHook answers the hook step's instructions: lift, replace, lift.
func (tc *technician) doHook() {
	tc.await("hook: lift the handset", 1)
	tc.hook(true)
	tc.await("hook: replace the handset", 1)
	tc.hook(false)
	tc.await("hook: lift the handset and keep it", 1)
	tc.hook(true)
}

func start(t *testing.T, mic audio.Source, timeout time.Duration) *technician {
	tc := &technician{t: t, board: sim.New(sim.Options{Mic: mic}), ticks: make(chan time.Time), done: make(chan Result, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	tc.cancel = cancel
	go func() {
		tc.done <- Run(ctx, tc.board.Device(), Options{Keys: keys4x3, StepTimeout: timeout, Ticks: tc.ticks, Out: &tc.out})
	}()
	return tc
}

// wait sends n ticks, or fewer if the test has finished.
func (tc *technician) wait(n int) {
	for range n {
		select {
		case tc.ticks <- time.Time{}:
		case r := <-tc.done:
			tc.done <- r
			return
		}
	}
}

func (tc *technician) press(k string) {
	if err := tc.board.Press(k); err != nil {
		tc.t.Fatal(err)
	}
	tc.wait(1)
}

func (tc *technician) hook(off bool) { tc.board.SetOffHook(off); tc.wait(3) }

// finish lets time run out and returns the result.
func (tc *technician) finish() Result {
	for {
		select {
		case tc.ticks <- time.Time{}:
		case r := <-tc.done:
			tc.cancel()
			return r
		}
	}
}

func part(r Result, name string) Part {
	for _, p := range r.Parts {
		if p.Name == name {
			return p
		}
	}
	return Part{}
}

func TestAllPass(t *testing.T) {
	tc := start(t, audio.Tone(0.1, 300), 10*time.Second)
	for _, k := range keys4x3 {
		tc.press(string(k))
	}
	tc.doHook()
	tc.await("a tone is playing", 1)
	tc.wait(10)
	tc.press("1") // heard the tone
	r := tc.finish()
	if !r.Passed() {
		t.Fatalf("%+v\n%s", r, tc.out.String())
	}
	out := tc.out.String()
	for _, want := range []string{"press every key once: 1 2 3", "lift the handset", "a tone is playing", "speak into the handset", "selftest PASSED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if st := tc.board.Heard(); st.SoundFrames < 10 {
		t.Errorf("the earpiece played %d frames of tone", st.SoundFrames)
	}
}

func TestFailures(t *testing.T) {
	t.Run("a key never pressed", func(t *testing.T) {
		tc := start(t, audio.Tone(0.1, 300), time.Second)
		for _, k := range keys4x3[:11] {
			tc.press(string(k))
		}
		r := tc.finish()
		if p := part(r, "keypad"); p.Passed || !strings.Contains(p.Detail, "no press of #") {
			t.Fatalf("%+v", p)
		}
		if r.Passed() || !strings.Contains(tc.out.String(), "selftest FAILED") {
			t.Fatal(tc.out.String())
		}
	})
	t.Run("a key the keypad does not have", func(t *testing.T) {
		tc := start(t, audio.Tone(0.1, 300), time.Second)
		tc.press("A")
		for _, k := range keys4x3 {
			tc.press(string(k))
		}
		r := tc.finish()
		if p := part(r, "keypad"); p.Passed || !strings.Contains(p.Detail, "also reported A") {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("hook stuck on-hook", func(t *testing.T) {
		tc := start(t, audio.Tone(0.1, 300), time.Second)
		for _, k := range keys4x3 {
			tc.press(string(k))
		}
		r := tc.finish()
		if p := part(r, "hook"); p.Passed || !strings.Contains(p.Detail, "stayed on-hook") {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("tone not heard", func(t *testing.T) {
		tc := start(t, audio.Tone(0.1, 300), 2*time.Second)
		tc.upToMouthpiece("9")
		r := tc.finish()
		if p := part(r, "earpiece"); p.Passed || !strings.Contains(p.Detail, "did not hear") {
			t.Fatalf("%+v", p)
		}
		if !part(r, "mouthpiece").Passed {
			t.Error("the mouthpiece step did not run on after a failure")
		}
	})
	t.Run("silent mouthpiece", func(t *testing.T) {
		tc := start(t, nil, time.Second)
		tc.upToMouthpiece("1")
		r := tc.finish()
		if p := part(r, "mouthpiece"); p.Passed || !strings.Contains(p.Detail, "digital silence") {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("quiet mouthpiece", func(t *testing.T) {
		tc := start(t, audio.Tone(0.002, 300), time.Second)
		tc.upToMouthpiece("1")
		r := tc.finish()
		if p := part(r, "mouthpiece"); p.Passed || !strings.Contains(p.Detail, "too quiet") {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		tc := start(t, nil, time.Minute)
		tc.wait(5)
		tc.cancel()
		r := <-tc.done
		if r.Passed() || part(r, "mouthpiece").Detail != "not run: stopped" {
			t.Fatalf("%+v", r)
		}
	})
}
