// Package trunk is the phone's way out to the called party: the interface the call state
// machine dials through, whatever carries the call (SIP to the facility's server, or the
// simulated called party). It keeps promise 2 by carrying the called party's accept key.
package trunk

import (
	"fmt"

	"github.com/wallphone/wallphone/audio"
)

// EventKind says what happened on a leg.
type EventKind int

const (
	// Ringing: the called phone is ringing.
	Ringing EventKind = iota + 1
	// Answered: the called party picked up; audio may flow.
	Answered
	// Busy: the called line is busy.
	Busy
	// NoAnswer: the called party did not answer in the far end's own time.
	NoAnswer
	// Rejected: the called party refused the call before answering.
	Rejected
	// Failed: the call could not be set up (no route, network, server error).
	Failed
	// HungUp: the called party ended an answered call.
	HungUp
	// Digit: the called party pressed a key (RFC 4733 event or SIP INFO); Event.Digit says which.
	Digit
)

var eventNames = map[EventKind]string{
	Ringing: "ringing", Answered: "answered", Busy: "busy", NoAnswer: "no_answer",
	Rejected: "rejected", Failed: "failed", HungUp: "hung_up", Digit: "digit",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one thing that happened on a leg.
type Event struct {
	Kind EventKind
	// Digit is the key for Kind == Digit.
	Digit rune
	// Reason is a short human-readable cause for Failed (e.g. a SIP status line).
	Reason string
}

// Trunk places calls.
type Trunk interface {
	// Dial starts a call to an E.164 number and returns at once; what happens next arrives as
	// events on the leg.
	Dial(e164 string) (Leg, error)
}

// Leg is one outgoing call. Its methods are called from the call state machine's loop once
// per frame and must not block.
type Leg interface {
	// Poll returns the oldest event not yet returned, or false if there is none.
	Poll() (Event, bool)
	// Send queues one frame of audio for the called party.
	Send(f *audio.Frame)
	// Receive fills f with the next frame from the called party and reports whether there
	// was one; f is untouched when it returns false.
	Receive(f *audio.Frame) bool
	// SendDigit sends a key the caller pressed while talking to the called party (an RFC 4733
	// telephone event), so that the menus of an attorney's office or a court can be worked.
	// Keys are 0-9, *, # and A-D; others are ignored.
	SendDigit(d rune)
	// Hangup ends the call (cancelling it if not yet answered). It is safe to call more than
	// once and after the far end hung up.
	Hangup()
}
