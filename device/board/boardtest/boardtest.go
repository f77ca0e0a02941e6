// Package boardtest gives a board definition fake pins — a keypad matrix that answers as the
// wires would, and gpiotest pins for the hook switch and the outputs — so that the board's
// real drivers run in tests exactly as on a phone.
package boardtest

import (
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/wallphone/wallphone/device/board"
	"github.com/wallphone/wallphone/device/keypad"
	"github.com/wallphone/wallphone/device/keypad/keypadtest"
)

// Fake is a board's pins, faked.
type Fake struct {
	Pins   map[string]gpio.PinIO
	Matrix *keypadtest.Matrix
	Hook   *gpiotest.Pin
}

// New makes a fake pin for every pin of d.
func New(d board.Definition) *Fake {
	layout := keypad.Layout4x3()
	if d.Keypad.Layout == "4x4" {
		layout = keypad.Layout4x4()
	}
	f := &Fake{Pins: map[string]gpio.PinIO{}, Matrix: keypadtest.New(layout), Hook: &gpiotest.Pin{N: d.Hook.Pin}}
	for i, n := range d.Keypad.Rows {
		f.Pins[n] = f.Matrix.Row(i)
	}
	for i, n := range d.Keypad.Cols {
		f.Pins[n] = f.Matrix.Col(i)
	}
	f.Pins[d.Hook.Pin] = f.Hook
	for _, n := range d.Outputs {
		f.Pins[n] = &gpiotest.Pin{N: n}
	}
	return f
}

// Lookup finds a pin by name, as gpioreg.ByName does on a phone.
func (f *Fake) Lookup(name string) gpio.PinIO { return f.Pins[name] }
