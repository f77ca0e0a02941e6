// Package simtrunk is the simulated called party: a trunk.Trunk whose far end answers,
// accepts, declines, is busy, does not answer or hangs up when told to (or on its own, in
// auto mode), and talks with a recorded voice. The simulated phone and the call tests use it.
package simtrunk

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/trunk"
)

// Options configure the simulated called party.
type Options struct {
	// Now is the phone's clock; auto mode measures its delays with it.
	Now func() time.Time
	// Auto makes the called party answer after AnswerAfter, and press the accept key once it
	// has heard the notice and half a second of silence after it.
	Auto bool
	// AnswerAfter is how long an auto called party lets it ring; 0 means 2 s.
	AnswerAfter time.Duration
	// Voice is what the called party says, started afresh each time it runs out; nil is silence.
	Voice func() audio.Source
	// VoiceText is the words of Voice, logged (as callee_says) when the called party starts
	// talking, so that a person at the simulated phone can read what the earpiece says.
	VoiceText string
	// Logger receives what the called party does; nil discards.
	Logger *slog.Logger
}

// Errors returned by Do.
var (
	// ErrNoCall: the action needs a call in a state it is not in.
	ErrNoCall = errors.New("no call in the right state")
	// ErrAction: the action is not one the called party knows.
	ErrAction = errors.New("unknown action")
	// ErrBusyLine: Dial while the called party is still on a call.
	ErrBusyLine = errors.New("simulated called party is already on a call")
)

// Trunk is the simulated far end. Its methods are safe for concurrent use.
type Trunk struct {
	opts Options
	log  *slog.Logger

	mu  sync.Mutex // guards leg and everything in it
	leg *Leg
}

var _ trunk.Trunk = (*Trunk)(nil)

// New returns a simulated called party.
func New(o Options) *Trunk {
	if o.AnswerAfter == 0 {
		o.AnswerAfter = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Trunk{opts: o, log: log}
}

type legState int

const (
	legRinging legState = iota
	legAnswered
	legEnded
)

// Leg is one call to the simulated called party.
type Leg struct {
	t      *Trunk
	number string
	state  legState
	events []trunk.Event
	dialed time.Time
	voice  audio.Source
	stats  Stats
	// lastSound is when the called party last heard something, for auto accept.
	lastSound time.Time
	accepted  bool
}

// Stats is what the called party heard and did on one call.
type Stats struct {
	Number string
	// FramesHeard counts frames sent to the called party; SoundHeard those that were not
	// silence.
	FramesHeard, SoundHeard int
	// HeardBeforeAccept counts frames sent before the called party pressed the accept key:
	// on a recorded call, only the notice.
	HeardBeforeAccept int
	// FramesSaid counts frames of the called party's voice handed to the phone.
	FramesSaid int
	Digits     string
	// KeysHeard are the keys the caller sent while talking.
	KeysHeard string
	HungUpBy  string // "phone" or "callee"
}

// Dial implements trunk.Trunk.
func (t *Trunk) Dial(e164 string) (trunk.Leg, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leg != nil && t.leg.state != legEnded {
		return nil, ErrBusyLine
	}
	l := &Leg{t: t, number: e164, dialed: t.opts.Now(), stats: Stats{Number: e164}}
	l.events = append(l.events, trunk.Event{Kind: trunk.Ringing})
	t.leg = l
	t.log.Info("callee_ringing", "event", "callee_ringing")
	return l, nil
}

// Status says, for the console, where calls go.
func (t *Trunk) Status() string { return "simulated called party" }

// Last returns what happened on the most recent call, and false if there has been none.
func (t *Trunk) Last() (Stats, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leg == nil {
		return Stats{}, false
	}
	return t.leg.stats, true
}

// Do makes the called party act: answer, accept, decline, busy, noanswer or hangup.
func (t *Trunk) Do(action string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.leg
	state := legEnded
	if l != nil {
		state = l.state
	}
	need := func(want legState, what string) error {
		if state != want {
			return fmt.Errorf("callee %s: %w: %s", action, ErrNoCall, what)
		}
		return nil
	}
	switch action {
	case "answer":
		if err := need(legRinging, "nothing is ringing"); err != nil {
			return err
		}
		l.answer()
	case "accept":
		if err := need(legAnswered, "no answered call"); err != nil {
			return err
		}
		l.digit('1')
	case "decline":
		switch state {
		case legRinging:
			l.end(trunk.Rejected)
		case legAnswered:
			l.digit('9')
		default:
			return need(legRinging, "no call")
		}
	case "busy":
		if err := need(legRinging, "nothing is ringing"); err != nil {
			return err
		}
		l.end(trunk.Busy)
	case "noanswer":
		if err := need(legRinging, "nothing is ringing"); err != nil {
			return err
		}
		l.end(trunk.NoAnswer)
	case "hangup":
		if err := need(legAnswered, "no answered call (use decline or noanswer while it rings)"); err != nil {
			return err
		}
		l.end(trunk.HungUp)
	default:
		return fmt.Errorf("callee %s: %w", action, ErrAction)
	}
	t.log.Info("callee_"+action, "event", "callee_"+action)
	return nil
}

// The helpers below run with t.mu held.

func (l *Leg) answer() {
	l.state = legAnswered
	l.events = append(l.events, trunk.Event{Kind: trunk.Answered})
}

func (l *Leg) digit(d rune) {
	if d == '1' {
		l.accepted = true
	}
	l.stats.Digits += string(d)
	l.events = append(l.events, trunk.Event{Kind: trunk.Digit, Digit: d})
}

func (l *Leg) end(kind trunk.EventKind) {
	l.state = legEnded
	l.stats.HungUpBy = "callee"
	l.events = append(l.events, trunk.Event{Kind: kind})
}

// Poll implements trunk.Leg; in auto mode it is also where the called party decides to act.
func (l *Leg) Poll() (trunk.Event, bool) {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if l.t.opts.Auto {
		now := l.t.opts.Now()
		switch {
		case l.state == legRinging && now.Sub(l.dialed) >= l.t.opts.AnswerAfter:
			l.answer()
			l.t.log.Info("callee_answer", "event", "callee_answer", "auto", true)
		case l.state == legAnswered && !l.accepted && l.stats.SoundHeard >= 50 &&
			now.Sub(l.lastSound) >= 500*time.Millisecond:
			l.digit('1')
			l.t.log.Info("callee_accept", "event", "callee_accept", "auto", true)
		}
	}
	if len(l.events) == 0 {
		return trunk.Event{}, false
	}
	ev := l.events[0]
	l.events = l.events[1:]
	return ev, true
}

// Send implements trunk.Leg.
func (l *Leg) Send(f *audio.Frame) {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if l.state != legAnswered {
		return
	}
	l.stats.FramesHeard++
	if !l.accepted {
		l.stats.HeardBeforeAccept++
	}
	for _, v := range f {
		if v > 100 || v < -100 {
			l.stats.SoundHeard++
			l.lastSound = l.t.opts.Now()
			break
		}
	}
}

// Receive implements trunk.Leg.
func (l *Leg) Receive(f *audio.Frame) bool {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if l.state != legAnswered || l.t.opts.Voice == nil {
		return false
	}
	if l.voice == nil {
		l.t.log.Info("callee_says", "event", "callee_says", "text", l.t.opts.VoiceText)
	}
	if l.voice == nil || !l.voice.Next(f) {
		l.voice = l.t.opts.Voice()
		if !l.voice.Next(f) {
			return false
		}
	}
	l.stats.FramesSaid++
	return true
}

// SendDigit implements trunk.Leg: the called party hears the key if the call is answered.
func (l *Leg) SendDigit(d rune) {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if l.state != legAnswered {
		return
	}
	l.stats.KeysHeard += string(d)
}

// Hangup implements trunk.Leg.
func (l *Leg) Hangup() {
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	if l.state == legEnded {
		return
	}
	l.state = legEnded
	l.stats.HungUpBy = "phone"
	l.t.log.Info("callee_released", "event", "callee_released")
}
