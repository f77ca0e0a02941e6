package keypadtest_test

import (
	"testing"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/keypad/keypadtest"
)

var layout = [][]device.Key{
	{'1', '2', '3'},
	{'4', '5', '6'},
}

func read(m *keypadtest.Matrix) string {
	var s []byte
	for _, c := range m.Cols() {
		if c.Read() == gpio.High {
			s = append(s, 'H')
		} else {
			s = append(s, 'L')
		}
	}
	return string(s)
}

// A column reads Low only for a key held down on a row driven Low.
func TestWiring(t *testing.T) {
	m := keypadtest.New(layout)
	for _, c := range m.Cols() {
		if err := c.In(gpio.PullUp, gpio.NoEdge); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range m.Rows() {
		if err := r.Out(gpio.High); err != nil {
			t.Fatal(err)
		}
	}
	m.Press('6') // row 1, col 2
	m.Press('1') // row 0, col 0
	if got := read(m); got != "HHH" {
		t.Errorf("no row Low: %s, want HHH", got)
	}
	_ = m.Row(0).Out(gpio.Low)
	if got := read(m); got != "LHH" {
		t.Errorf("row 0 Low: %s, want LHH", got)
	}
	_ = m.Row(0).Out(gpio.High)
	_ = m.Row(1).Out(gpio.Low)
	if got := read(m); got != "HHL" {
		t.Errorf("row 1 Low: %s, want HHL", got)
	}
	m.Release('6')
	if got := read(m); got != "HHH" {
		t.Errorf("row 1 Low, 6 released: %s, want HHH", got)
	}
	if n := m.Overlaps(); n != 0 {
		t.Errorf("Overlaps = %d with one row Low at a time", n)
	}
	_ = m.Row(0).Out(gpio.Low)
	read(m)
	if n := m.Overlaps(); n != 3 {
		t.Errorf("Overlaps = %d after three reads with two rows Low, want 3", n)
	}
}

// A column without its pull-up floats, and the fake reads it Low: a scanner that forgot the
// pull-up sees every key down.
func TestFloatingColumn(t *testing.T) {
	m := keypadtest.New(layout)
	if got := read(m); got != "LLL" {
		t.Errorf("columns with no pull-up read %s, want LLL", got)
	}
}

func TestFailures(t *testing.T) {
	m := keypadtest.New(layout)
	boom := gpioError("boom")
	m.Row(1).FailOut(boom)
	if err := m.Row(1).Out(gpio.Low); err != boom {
		t.Errorf("Out = %v, want boom", err)
	}
	if m.Row(1).Read() != gpio.Low || m.Row(1).Out(gpio.High) != boom {
		t.Error("a failing Out changed the level")
	}
	m.Row(1).FailOut(nil)
	if err := m.Row(1).Out(gpio.High); err != nil || m.Row(1).Read() != gpio.High {
		t.Errorf("healed Out = %v, level %v", err, m.Row(1).Read())
	}
	m.Col(2).FailIn(boom)
	if err := m.Col(2).In(gpio.PullUp, gpio.NoEdge); err != boom || m.Col(2).Pull() == gpio.PullUp {
		t.Errorf("In = %v, pull %v; want boom and no pull-up", err, m.Col(2).Pull())
	}
}

func TestPressUnknownKeyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Press('9') on a 2x3 matrix did not panic")
		}
	}()
	keypadtest.New(layout).Press('9')
}

type gpioError string

func (e gpioError) Error() string { return string(e) }
