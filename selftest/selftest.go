// Package selftest walks a technician through the phone's hardware — every key of the keypad,
// the hook switch, the earpiece and the mouthpiece — and reports a clear pass or fail for
// each part. It runs on any board, real or simulated, through the same device interfaces as
// the call state machine, so what passes here is what calls will use.
package selftest

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
)

// Options say what the board has and how long a technician gets for each step.
type Options struct {
	// Keys are the keys the keypad must have, in the order to ask for them.
	Keys []device.Key
	// StepTimeout bounds each step; 0 means 60 s.
	StepTimeout time.Duration
	// Ticks drive the test, one per 20 ms frame: a time.Ticker's channel on a phone, a
	// channel the test feeds in tests.
	Ticks <-chan time.Time
	// Out receives the instructions and the results, for the technician's screen.
	Out io.Writer
}

// Part is the result of one step.
type Part struct {
	Name   string
	Passed bool
	Detail string
}

// Result is the whole test.
type Result struct{ Parts []Part }

// Passed reports whether every part passed.
func (r Result) Passed() bool {
	for _, p := range r.Parts {
		if !p.Passed {
			return false
		}
	}
	return len(r.Parts) > 0
}

// Run walks through the keypad, the hook and the audio loop, in that order, and returns what
// passed. A step that times out fails and the next one still runs; cancelling ctx stops the
// test and fails the steps not done.
func Run(ctx context.Context, b device.Board, o Options) Result {
	if o.StepTimeout == 0 {
		o.StepTimeout = time.Minute
	}
	t := &tester{ctx: ctx, b: b, o: o, limit: int(o.StepTimeout / audio.FrameDuration)}
	var r Result
	for _, step := range []struct {
		name string
		run  func() (bool, string)
	}{
		{"keypad", t.keypad},
		{"hook", t.hook},
		{"earpiece", t.earpiece},
		{"mouthpiece", t.mouthpiece},
	} {
		var p Part
		if ctx.Err() != nil {
			p = Part{Name: step.name, Detail: "not run: stopped"}
		} else {
			ok, detail := step.run()
			p = Part{Name: step.name, Passed: ok, Detail: detail}
		}
		verdict := "FAIL"
		if p.Passed {
			verdict = "PASS"
		}
		t.say("%-10s %s  %s", p.Name, verdict, p.Detail)
		r.Parts = append(r.Parts, p)
	}
	if r.Passed() {
		t.say("selftest PASSED")
	} else {
		t.say("selftest FAILED")
	}
	return r
}

type tester struct {
	ctx   context.Context
	b     device.Board
	o     Options
	limit int // ticks a step may take
	ear   audio.Frame
	mic   audio.Frame
}

func (t *tester) say(format string, args ...any) {
	if t.o.Out != nil {
		fmt.Fprintf(t.o.Out, format+"\n", args...)
	}
}

// tick waits for the next frame, keeps the audio devices moving, and reports false when the
// step must stop (cancelled).
func (t *tester) tick(play audio.Source) bool {
	select {
	case <-t.ctx.Done():
		return false
	case <-t.o.Ticks:
	}
	t.ear.Silence()
	if play != nil {
		play.Next(&t.ear)
	}
	t.b.Handset.Play(&t.ear)
	t.b.Handset.Capture(&t.mic)
	return true
}

func (t *tester) keypad() (bool, string) {
	want := slices.Clone(t.o.Keys)
	t.say("keypad: press every key once: %s", keys(want))
	var stray []device.Key
	for range t.limit {
		if !t.tick(nil) {
			return false, "stopped"
		}
		for {
			k, ok := t.b.Keypad.PollKey()
			if !ok {
				break
			}
			if i := slices.Index(want, k); i >= 0 {
				want = slices.Delete(want, i, i+1)
				if len(want) > 0 {
					t.say("  %c ok; still to press: %s", k, keys(want))
				}
			} else if !slices.Contains(t.o.Keys, k) {
				stray = append(stray, k)
			}
		}
		if len(want) == 0 {
			detail := fmt.Sprintf("all %d keys", len(t.o.Keys))
			if len(stray) > 0 {
				return false, detail + ", but the keypad also reported " + keys(stray) + ", which it does not have"
			}
			return true, detail
		}
	}
	return false, "no press of " + keys(want) + " within " + t.o.StepTimeout.String()
}

func (t *tester) hook() (bool, string) {
	for _, step := range []struct {
		say string
		off bool
	}{
		{"hook: replace the handset", false},
		{"hook: lift the handset", true},
		{"hook: replace the handset", false},
		{"hook: lift the handset and keep it at your ear", true},
	} {
		if t.b.Hook.OffHook() == step.off {
			continue
		}
		t.say("%s", step.say)
		if !t.waitHook(step.off) {
			state := "on-hook"
			if !step.off {
				state = "off-hook"
			}
			return false, "the switch stayed " + state + " for " + t.o.StepTimeout.String()
		}
	}
	return true, "lifted and replaced"
}

func (t *tester) waitHook(off bool) bool {
	for range t.limit {
		if !t.tick(nil) {
			return false
		}
		if t.b.Hook.OffHook() == off {
			return true
		}
	}
	return false
}

// earpiece plays a tone and asks the technician whether they hear it: only a person can tell.
func (t *tester) earpiece() (bool, string) {
	t.say("earpiece: a tone is playing; press 1 if you hear it, 9 if you do not")
	tone := audio.Tone(0.25, 1000)
	for range t.limit {
		if !t.tick(tone) {
			return false, "stopped"
		}
		for {
			k, ok := t.b.Keypad.PollKey()
			if !ok {
				break
			}
			switch k {
			case '1':
				return true, "the technician heard the tone"
			case '9':
				return false, "the technician did not hear the tone"
			}
		}
	}
	return false, "no answer within " + t.o.StepTimeout.String()
}

// speechLevel is the level that counts as someone speaking into the mouthpiece: about
// -40 dBFS RMS over a frame, well above a quiet line's noise.
const speechLevel = 0.01

// mouthpiece asks the technician to speak and passes once the mouthpiece picks up a level
// that only a voice (or a tap) gives, for a quarter of a second.
func (t *tester) mouthpiece() (bool, string) {
	t.say("mouthpiece: speak into the handset")
	loud, peak := 0, 0.0
	for range t.limit {
		if !t.tick(nil) {
			return false, "stopped"
		}
		level := rms(&t.mic)
		peak = max(peak, level)
		if level >= speechLevel {
			loud++
		} else {
			loud = 0
		}
		if loud >= 12 {
			return true, fmt.Sprintf("level %.0f dBFS", 20*math.Log10(level))
		}
	}
	if peak == 0 {
		return false, "nothing but digital silence: no audio from the mouthpiece"
	}
	return false, fmt.Sprintf("too quiet: the loudest frame was %.0f dBFS", 20*math.Log10(peak))
}

func rms(f *audio.Frame) float64 {
	var sum float64
	for _, v := range f {
		x := float64(v) / 32768
		sum += x * x
	}
	return math.Sqrt(sum / float64(len(f)))
}

func keys(ks []device.Key) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(rune(k))
	}
	return strings.Join(s, " ")
}
