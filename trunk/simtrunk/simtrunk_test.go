package simtrunk_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/simtrunk"
)

const number = "+15125550123"

var actions = []string{"answer", "accept", "decline", "busy", "noanswer", "hangup"}

// clock is the phone's time, moved only by the test.
type clock struct{ now time.Time }

func newClock() *clock                   { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }
func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

// events returns every event not yet polled, as text; a leg that never runs out of events
// shows as "endless".
func events(l trunk.Leg) string {
	var s []string
	for {
		ev, ok := l.Poll()
		if !ok {
			return strings.Join(s, ", ")
		}
		if len(s) == 100 {
			return "endless"
		}
		if ev.Kind == trunk.Digit {
			s = append(s, fmt.Sprintf("digit %c", ev.Digit))
		} else {
			s = append(s, ev.Kind.String())
		}
	}
}

func dial(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
	t.Helper()
	l, err := tr.Dial(number)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return l
}

func do(t *testing.T, tr *simtrunk.Trunk, action string) {
	t.Helper()
	if err := tr.Do(action); err != nil {
		t.Fatalf("Do(%s): %v", action, err)
	}
}

func frameOf(v int16) *audio.Frame {
	var f audio.Frame
	for i := range f {
		f[i] = v
	}
	return &f
}

var (
	sound   = frameOf(2000)
	quiet   = frameOf(100) // below the called party's threshold of sound
	silence = frameOf(0)
)

func TestDialRings(t *testing.T) {
	tr := simtrunk.New(simtrunk.Options{})
	if _, ok := tr.Last(); ok {
		t.Error("Last before any call reports one")
	}
	l := dial(t, tr)
	if got := events(l); got != "ringing" {
		t.Errorf("events after Dial: %q, want ringing", got)
	}
	if got := events(l); got != "" {
		t.Errorf("events polled twice: %q", got)
	}
	st, ok := tr.Last()
	if !ok || st.Number != number || st.HungUpBy != "" {
		t.Errorf("Last = %+v, %v; want a call to %s in progress", st, ok, number)
	}
}

// states bring a trunk into a state and return its leg (nil if none was dialed), with the
// events so far polled.
var states = []struct {
	name  string
	setup func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg
	ended bool // no call in progress (Dial allowed)
}{
	{"no call", func(*testing.T, *simtrunk.Trunk) trunk.Leg { return nil }, true},
	{"ringing", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg { return dial(t, tr) }, false},
	{"answered", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		do(t, tr, "answer")
		return l
	}, false},
	{"accepted", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		do(t, tr, "answer")
		do(t, tr, "accept")
		return l
	}, false},
	{"declined while ringing", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		do(t, tr, "decline")
		return l
	}, true},
	{"busy", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		do(t, tr, "busy")
		return l
	}, true},
	{"not answered", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		do(t, tr, "noanswer")
		return l
	}, true},
	{"hung up by the callee", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		do(t, tr, "answer")
		do(t, tr, "hangup")
		return l
	}, true},
	{"cancelled by the phone", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		l.Hangup()
		return l
	}, true},
	{"hung up by the phone", func(t *testing.T, tr *simtrunk.Trunk) trunk.Leg {
		l := dial(t, tr)
		do(t, tr, "answer")
		l.Hangup()
		return l
	}, true},
}

func TestDo(t *testing.T) {
	// What an action does: the events it queues and whether the call is over afterwards; err
	// when it is refused. Every known action needs a call, so in a state not listed all are
	// refused with ErrNoCall.
	type outcome struct {
		events string
		ended  bool
		err    error
	}
	noCall := outcome{err: simtrunk.ErrNoCall}
	ringing := map[string]outcome{
		"answer":   {events: "answered"},
		"accept":   noCall,
		"decline":  {events: "rejected", ended: true},
		"busy":     {events: "busy", ended: true},
		"noanswer": {events: "no_answer", ended: true},
		"hangup":   noCall,
	}
	answered := map[string]outcome{
		"answer":   noCall,
		"accept":   {events: "digit 1"},
		"decline":  {events: "digit 9"},
		"busy":     noCall,
		"noanswer": noCall,
		"hangup":   {events: "hung_up", ended: true},
	}
	want := map[string]map[string]outcome{"ringing": ringing, "answered": answered, "accepted": answered}

	for _, s := range states {
		for _, action := range append(slices.Clone(actions), "dance", "", "Answer", " answer") {
			t.Run(s.name+"/"+action, func(t *testing.T) {
				w, ok := want[s.name][action]
				switch {
				case !slices.Contains(actions, action):
					w = outcome{err: simtrunk.ErrAction}
				case !ok:
					w = noCall
				}
				if w.err != nil {
					w.ended = s.ended
				}

				tr := simtrunk.New(simtrunk.Options{})
				l := s.setup(t, tr)
				if l != nil {
					events(l)
				}
				before, _ := tr.Last()

				err := tr.Do(action)
				if w.err != nil {
					if !errors.Is(err, w.err) {
						t.Errorf("Do(%q) = %v, want %v", action, err, w.err)
					}
					if err != nil && !strings.Contains(err.Error(), action) {
						t.Errorf("Do(%q): %q does not name the action", action, err)
					}
					if after, _ := tr.Last(); after != before {
						t.Errorf("refused action changed the call: %+v, was %+v", after, before)
					}
				} else if err != nil {
					t.Fatalf("Do(%q): %v", action, err)
				}
				if l != nil {
					if got := events(l); got != w.events {
						t.Errorf("events after Do(%q): %q, want %q", action, got, w.events)
					}
				}
				if w.err == nil && w.ended {
					if st, _ := tr.Last(); st.HungUpBy != "callee" {
						t.Errorf("HungUpBy = %q, want callee", st.HungUpBy)
					}
				}

				// Whether the line is free shows in Dial.
				l2, err := tr.Dial(number)
				switch {
				case w.ended && err != nil:
					t.Errorf("Dial after the call ended: %v", err)
				case !w.ended && !errors.Is(err, simtrunk.ErrBusyLine):
					t.Errorf("Dial while a call is in progress: %v, want ErrBusyLine", err)
				case w.ended && events(l2) != "ringing":
					t.Error("the new call does not ring")
				}
			})
		}
	}
}

func TestDigits(t *testing.T) {
	tr := simtrunk.New(simtrunk.Options{})
	l := dial(t, tr)
	do(t, tr, "answer")
	do(t, tr, "accept")
	do(t, tr, "decline")
	do(t, tr, "hangup")
	if got := events(l); got != "ringing, answered, digit 1, digit 9, hung_up" {
		t.Errorf("events %q", got)
	}
	if st, _ := tr.Last(); st.Digits != "19" || st.HungUpBy != "callee" {
		t.Errorf("Last = %+v, want digits 19, hung up by the callee", st)
	}
}

func TestNewCallAfterEnd(t *testing.T) {
	tr := simtrunk.New(simtrunk.Options{})
	first := dial(t, tr)
	do(t, tr, "answer")
	first.Send(sound)
	first.Hangup()
	second := dial(t, tr)
	if st, _ := tr.Last(); st.FramesHeard != 0 || st.HungUpBy != "" {
		t.Errorf("Last after a new Dial = %+v, want the new call's fresh stats", st)
	}
	// Ending the old leg again touches nothing of the new one.
	first.Hangup()
	do(t, tr, "answer")
	if got := events(second); got != "ringing, answered" {
		t.Errorf("second call events %q", got)
	}
}

func TestSendCounts(t *testing.T) {
	tr := simtrunk.New(simtrunk.Options{})
	l := dial(t, tr)
	l.Send(sound) // ringing: nobody hears it
	l.Send(silence)
	if st, _ := tr.Last(); st.FramesHeard != 0 || st.SoundHeard != 0 || st.HeardBeforeAccept != 0 {
		t.Errorf("before answer: %+v, want nothing heard", st)
	}
	do(t, tr, "answer")
	for _, f := range []*audio.Frame{sound, silence, quiet, sound} {
		l.Send(f)
	}
	if st, _ := tr.Last(); st.FramesHeard != 4 || st.SoundHeard != 2 || st.HeardBeforeAccept != 4 {
		t.Errorf("after answer: %+v, want 4 frames heard, 2 of sound, all before accept", st)
	}
	do(t, tr, "accept")
	for _, f := range []*audio.Frame{sound, silence, sound} {
		l.Send(f)
	}
	if st, _ := tr.Last(); st.FramesHeard != 7 || st.SoundHeard != 4 || st.HeardBeforeAccept != 4 {
		t.Errorf("after accept: %+v, want 7 frames heard, 4 of sound, 4 before accept", st)
	}
	// Declining after the accept does not make later frames count as before it.
	do(t, tr, "decline")
	l.Send(sound)
	if st, _ := tr.Last(); st.HeardBeforeAccept != 4 {
		t.Errorf("after decline: HeardBeforeAccept = %d, want 4", st.HeardBeforeAccept)
	}
	l.Hangup()
	l.Send(sound)
	if st, _ := tr.Last(); st.FramesHeard != 8 {
		t.Errorf("after hangup: FramesHeard = %d, want 8", st.FramesHeard)
	}
}

// clip is a finite Source whose frames carry their number in the first sample.
type clip struct{ n, left int }

func (c *clip) Next(f *audio.Frame) bool {
	if c.left == 0 {
		return false
	}
	c.left--
	c.n++
	f.Silence()
	f[0] = int16(c.n)
	return true
}

func TestReceive(t *testing.T) {
	starts := 0
	tr := simtrunk.New(simtrunk.Options{Voice: func() audio.Source {
		starts++
		return &clip{left: 3}
	}})
	l := dial(t, tr)
	untouched := func() *audio.Frame { return frameOf(-5) }
	f := untouched()
	if l.Receive(f) || *f != *untouched() {
		t.Error("Receive while ringing gave a frame or touched f")
	}
	do(t, tr, "answer")
	var got []int16
	for range 7 {
		var f audio.Frame
		if !l.Receive(&f) {
			t.Fatal("Receive after answer: no frame")
		}
		got = append(got, f[0])
	}
	if !slices.Equal(got, []int16{1, 2, 3, 1, 2, 3, 1}) {
		t.Errorf("voice frames %v, want the clip looped", got)
	}
	if starts != 3 {
		t.Errorf("voice started %d times, want 3", starts)
	}
	if st, _ := tr.Last(); st.FramesSaid != 7 {
		t.Errorf("FramesSaid = %d, want 7", st.FramesSaid)
	}
	l.Hangup()
	f = untouched()
	if l.Receive(f) || *f != *untouched() {
		t.Error("Receive after hangup gave a frame or touched f")
	}
	if st, _ := tr.Last(); st.FramesSaid != 7 {
		t.Errorf("FramesSaid after hangup = %d, want 7", st.FramesSaid)
	}
}

func TestReceiveNoVoice(t *testing.T) {
	for name, voice := range map[string]func() audio.Source{
		"nil":   nil,
		"empty": func() audio.Source { return audio.Silence(0) },
	} {
		t.Run(name, func(t *testing.T) {
			tr := simtrunk.New(simtrunk.Options{Voice: voice})
			l := dial(t, tr)
			do(t, tr, "answer")
			f := frameOf(-5)
			if l.Receive(f) || *f != *frameOf(-5) {
				t.Error("Receive gave a frame or touched f")
			}
		})
	}
}

func TestReceiveAfterCalleeHangup(t *testing.T) {
	tr := simtrunk.New(simtrunk.Options{Voice: func() audio.Source { return &clip{left: 3} }})
	l := dial(t, tr)
	do(t, tr, "answer")
	var f audio.Frame
	if !l.Receive(&f) {
		t.Fatal("no frame after answer")
	}
	do(t, tr, "hangup")
	if l.Receive(&f) {
		t.Error("frame after the callee hung up")
	}
}

func TestHangup(t *testing.T) {
	tr := simtrunk.New(simtrunk.Options{})
	l := dial(t, tr)
	do(t, tr, "answer")
	events(l)
	l.Hangup()
	st, _ := tr.Last()
	if st.HungUpBy != "phone" {
		t.Errorf("HungUpBy = %q, want phone", st.HungUpBy)
	}
	l.Hangup()
	if again, _ := tr.Last(); again != st {
		t.Errorf("second Hangup changed the call: %+v, was %+v", again, st)
	}
	if got := events(l); got != "" {
		t.Errorf("Hangup queued events for the phone: %q", got)
	}
	if err := tr.Do("hangup"); !errors.Is(err, simtrunk.ErrNoCall) {
		t.Errorf("callee hangup after the phone's: %v, want ErrNoCall", err)
	}

	// After the callee hung up, the phone's Hangup does not rewrite who did.
	l = dial(t, tr)
	do(t, tr, "answer")
	do(t, tr, "hangup")
	l.Hangup()
	if st, _ := tr.Last(); st.HungUpBy != "callee" {
		t.Errorf("HungUpBy = %q after the callee hung up first, want callee", st.HungUpBy)
	}
}

func TestAutoAnswer(t *testing.T) {
	for _, tc := range []struct {
		after, want time.Duration
	}{
		{0, 2 * time.Second}, // the default
		{3 * time.Second, 3 * time.Second},
		{20 * time.Millisecond, 20 * time.Millisecond},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			c := newClock()
			tr := simtrunk.New(simtrunk.Options{Now: c.Now, Auto: true, AnswerAfter: tc.after})
			l := dial(t, tr)
			if got := events(l); got != "ringing" {
				t.Fatalf("events %q", got)
			}
			start := c.Now()
			for c.Now().Sub(start) < tc.want {
				if got := events(l); got != "" {
					t.Fatalf("at %v: %q, want it still ringing", c.Now().Sub(start), got)
				}
				c.advance(time.Millisecond)
			}
			if got := events(l); got != "answered" {
				t.Fatalf("at %v: %q, want answered", c.Now().Sub(start), got)
			}
			c.advance(time.Hour)
			if got := events(l); got != "" {
				t.Errorf("an hour later: %q", got)
			}
		})
	}
}

func TestAutoAnswerNotAfterEnd(t *testing.T) {
	c := newClock()
	tr := simtrunk.New(simtrunk.Options{Now: c.Now, Auto: true})
	l := dial(t, tr)
	do(t, tr, "busy")
	c.advance(time.Minute)
	if got := events(l); got != "ringing, busy" {
		t.Errorf("events %q, want ringing, busy and no answer", got)
	}
	l = dial(t, tr)
	l.Hangup()
	c.advance(time.Minute)
	if got := events(l); got != "ringing" {
		t.Errorf("events after the phone cancelled: %q, want no answer", got)
	}
}

// autoAnswered returns an auto called party that has just answered, with its events polled.
func autoAnswered(t *testing.T) (*clock, *simtrunk.Trunk, trunk.Leg) {
	t.Helper()
	c := newClock()
	tr := simtrunk.New(simtrunk.Options{Now: c.Now, Auto: true, AnswerAfter: time.Second})
	l := dial(t, tr)
	c.advance(time.Second)
	if got := events(l); got != "ringing, answered" {
		t.Fatalf("events %q", got)
	}
	return c, tr, l
}

// play sends n frames of f, one per tick, polling as the call loop does, and returns the
// events in order.
func play(c *clock, l trunk.Leg, f *audio.Frame, n int) string {
	var evs []string
	for range n {
		c.advance(audio.FrameDuration)
		l.Send(f)
		if e := events(l); e != "" {
			evs = append(evs, e)
		}
	}
	return strings.Join(evs, ", ")
}

func TestAutoAccept(t *testing.T) {
	c, tr, l := autoAnswered(t)
	// 49 frames of notice and a long silence: not enough heard to accept.
	if got := play(c, l, sound, 49); got != "" {
		t.Fatalf("during the notice: %q", got)
	}
	if got := play(c, l, silence, 100); got != "" {
		t.Fatalf("after 49 frames of sound: %q, want no accept", got)
	}
	// The 50th frame of sound; then the accept comes 500 ms after it, not a tick sooner.
	if got := play(c, l, sound, 1); got != "" {
		t.Fatalf("at the 50th sound frame: %q", got)
	}
	last := c.Now()
	for {
		c.advance(audio.FrameDuration)
		l.Send(silence)
		if got := events(l); got != "" {
			if got != "digit 1" {
				t.Fatalf("%q, want digit 1", got)
			}
			break
		}
		if c.Now().Sub(last) > time.Second {
			t.Fatal("no accept a second after the notice")
		}
	}
	if d := c.Now().Sub(last); d != 500*time.Millisecond {
		t.Errorf("accepted %v after the last sound, want 500ms", d)
	}
	st, _ := tr.Last()
	if st.Digits != "1" || st.HeardBeforeAccept != 49+100+1+25 {
		t.Errorf("Last = %+v, want digit 1 after %d frames", st, 49+100+1+25)
	}
	// Only once: more talk and silence press nothing more.
	if got := play(c, l, sound, 100) + play(c, l, silence, 100); got != "" {
		t.Errorf("after the accept: %q", got)
	}
	if st, _ := tr.Last(); st.Digits != "1" {
		t.Errorf("Digits = %q, want 1", st.Digits)
	}
}

func TestAutoAcceptWaitsForSilence(t *testing.T) {
	c, _, l := autoAnswered(t)
	// Sound that goes on and on, with gaps shorter than half a second.
	for range 10 {
		if got := play(c, l, sound, 30) + play(c, l, silence, 24); got != "" {
			t.Fatalf("while the notice plays: %q", got)
		}
	}
	if got := play(c, l, silence, 1); got != "digit 1" {
		t.Errorf("after 500 ms of silence: %q, want digit 1", got)
	}
}

func TestAutoAcceptQuietIsSilence(t *testing.T) {
	c, _, l := autoAnswered(t)
	if got := play(c, l, quiet, 200) + play(c, l, silence, 50); got != "" {
		t.Errorf("after 200 quiet frames: %q, want no accept", got)
	}
}

func TestAutoIgnoresSoundBeforeAnswer(t *testing.T) {
	c := newClock()
	tr := simtrunk.New(simtrunk.Options{Now: c.Now, Auto: true, AnswerAfter: time.Minute})
	l := dial(t, tr)
	events(l)
	// Sound while it rings is not heard: it does not count towards the accept.
	for range 100 {
		l.Send(sound)
	}
	c.advance(time.Minute)
	if got := events(l); got != "answered" {
		t.Fatalf("events %q", got)
	}
	if got := play(c, l, silence, 100); got != "" {
		t.Errorf("accepted a notice it never heard: %q", got)
	}
}

func TestAutoAfterManualAccept(t *testing.T) {
	c, tr, l := autoAnswered(t)
	do(t, tr, "accept")
	if got := play(c, l, sound, 60) + play(c, l, silence, 50); got != "digit 1" {
		t.Errorf("events %q, want the one manual digit 1", got)
	}
}

func TestAutoAfterCalleeHangup(t *testing.T) {
	// A called party that hung up does not accept later, whatever it hears.
	c, tr, l := autoAnswered(t)
	play(c, l, sound, 60)
	do(t, tr, "hangup")
	if got := events(l) + play(c, l, silence, 50); got != "hung_up" {
		t.Errorf("events %q, want hung_up only", got)
	}
}
