// Package output drives the wall phone's on/off outputs on GPIO: its LEDs and its ringer.
//
// The promise it keeps is that an output is off until it is told otherwise: New drives the
// pin off at once, whatever the board left on it at boot, so a phone that restarts does not
// ring or light a lamp on its own; and On reports the level last written, never one that a
// failed write did not set. Which level is "on" depends on the board's wiring (an LED to
// ground is lit High, one to the supply is lit Low), so it is given to New.
package output

import (
	"errors"
	"fmt"
	"sync"

	"periph.io/x/conn/v3/gpio"
)

// Output is one on/off output. Its methods are safe for concurrent use.
type Output struct {
	// Immutable after New.
	pin        gpio.PinOut
	activeHigh bool

	mu sync.Mutex // guards on, and serialises writes so that on always matches the last one
	on bool
}

// New takes pin as an output that is on when High (activeHigh) or when Low, and drives it off
// at once.
func New(pin gpio.PinOut, activeHigh bool) (*Output, error) {
	if pin == nil {
		return nil, errors.New("output: no pin")
	}
	o := &Output{pin: pin, activeHigh: activeHigh}
	if err := o.write(false); err != nil {
		return nil, err
	}
	return o, nil
}

// Set turns the output on or off. If the pin fails, the error names it and On keeps
// reporting the state before the call.
func (o *Output) Set(on bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.write(on); err != nil {
		return err
	}
	o.on = on
	return nil
}

// On reports whether the output was last set on.
func (o *Output) On() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.on
}

func (o *Output) write(on bool) error {
	l := gpio.Level(on == o.activeHigh)
	if err := o.pin.Out(l); err != nil {
		return fmt.Errorf("output: %s: drive %v: %w", o.pin, l, err)
	}
	return nil
}
