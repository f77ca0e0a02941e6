// Package keypadtest is a fake keypad matrix built on periph's gpiotest pins, so that the
// keypad scanner (and anything wired to it) is tested exactly as it runs on a board: it drives
// the row pins and reads the column pins, and the fake answers as the wires would.
//
// A gpiotest.Pin holds one level and knows nothing of other pins, so it cannot model a matrix
// on its own: here the rows are plain gpiotest pins, and each column embeds one and overrides
// Read to look at the keys held down in its column and at the rows driven Low.
//
// The fake also counts column reads made while more than one row was Low (Overlaps): on a
// real matrix such a read cannot tell which row a key is on, so a correct scanner never makes
// one.
//
// Ghosting is not modelled: a key connects its own row and column and nothing else.
package keypadtest

import (
	"fmt"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/wallphone/wallphone/device"
)

// Matrix is a keypad matrix of Rows() x Cols() wires with a key at each crossing. Its
// methods are safe for concurrent use: the scanner reads pins on its goroutine while the test
// presses keys on another.
type Matrix struct {
	rows []*Row                // immutable after New
	cols []*Col                // immutable after New
	at   map[device.Key][2]int // immutable after New: row and column of each key

	mu       sync.Mutex // guards down and overlaps
	down     [][]bool   // [row][col]: the key there is held down
	overlaps int        // column reads made while two or more rows were Low
}

// Row is a row wire: a plain gpiotest pin that can be told to fail.
type Row struct {
	gpiotest.Pin
	// outErr, guarded by the embedded Pin's mutex, is returned by Out instead of driving the
	// pin, so that tests can take the scanner's error path.
	outErr error
}

// Col is a column wire. Read answers Low when a key held down in this column sits on a row
// that is driven Low; otherwise the pull-up holds it High. Without a pull-up it reads the
// level its pin was left at (Low unless set), as a floating input may.
type Col struct {
	gpiotest.Pin
	m   *Matrix // immutable
	idx int     // immutable: the column's index
	// inErr, guarded by the embedded Pin's mutex, is returned by In instead of configuring
	// the pin.
	inErr error
}

var (
	_ gpio.PinIO = (*Row)(nil)
	_ gpio.PinIO = (*Col)(nil)
)

// New returns a matrix wired for layout ([row][col]), every key up. It panics if the layout
// is ragged or has a key twice, since a fake that cannot be wired is a broken test.
func New(layout [][]device.Key) *Matrix {
	m := &Matrix{at: make(map[device.Key][2]int)}
	ncol := 0
	if len(layout) > 0 {
		ncol = len(layout[0])
	}
	for r, row := range layout {
		if len(row) != ncol {
			panic(fmt.Sprintf("keypadtest: layout row %d has %d keys, row 0 has %d", r, len(row), ncol))
		}
		for c, k := range row {
			if p, dup := m.at[k]; dup {
				panic(fmt.Sprintf("keypadtest: key %q at row %d col %d and row %d col %d", k, p[0], p[1], r, c))
			}
			m.at[k] = [2]int{r, c}
		}
		m.rows = append(m.rows, &Row{Pin: gpiotest.Pin{N: fmt.Sprintf("KP_ROW%d", r), Num: r}})
		m.down = append(m.down, make([]bool, ncol))
	}
	for c := range ncol {
		m.cols = append(m.cols, &Col{Pin: gpiotest.Pin{N: fmt.Sprintf("KP_COL%d", c), Num: 100 + c}, m: m, idx: c})
	}
	return m
}

// Rows returns the row pins, for keypad.Config.Rows.
func (m *Matrix) Rows() []gpio.PinOut {
	out := make([]gpio.PinOut, len(m.rows))
	for i, r := range m.rows {
		out[i] = r
	}
	return out
}

// Cols returns the column pins, for keypad.Config.Cols.
func (m *Matrix) Cols() []gpio.PinIn {
	out := make([]gpio.PinIn, len(m.cols))
	for i, c := range m.cols {
		out[i] = c
	}
	return out
}

// Row returns row pin i.
func (m *Matrix) Row(i int) *Row { return m.rows[i] }

// Col returns column pin i.
func (m *Matrix) Col(i int) *Col { return m.cols[i] }

// Press holds key k down. It panics if k is not on the matrix.
func (m *Matrix) Press(k device.Key) { m.Set(k, true) }

// Release lets key k up. It panics if k is not on the matrix.
func (m *Matrix) Release(k device.Key) { m.Set(k, false) }

// Set holds key k down or lets it up. It panics if k is not on the matrix.
func (m *Matrix) Set(k device.Key, down bool) {
	p, ok := m.at[k]
	if !ok {
		panic(fmt.Sprintf("keypadtest: no key %q on the matrix", k))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down[p[0]][p[1]] = down
}

// Overlaps returns how many column reads were made while two or more rows were Low.
func (m *Matrix) Overlaps() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.overlaps
}

// FailOut makes every later Out on the row return err (nil makes it work again).
func (r *Row) FailOut(err error) {
	r.Lock()
	defer r.Unlock()
	r.outErr = err
}

// Out implements gpio.PinOut: it drives the row, unless told to fail.
func (r *Row) Out(l gpio.Level) error {
	r.Lock()
	defer r.Unlock()
	if r.outErr != nil {
		return r.outErr
	}
	r.L = l
	return nil
}

// FailIn makes every later In on the column return err (nil makes it work again).
func (c *Col) FailIn(err error) {
	c.Lock()
	defer c.Unlock()
	c.inErr = err
}

// In implements gpio.PinIn: it configures the column, unless told to fail.
func (c *Col) In(pull gpio.Pull, edge gpio.Edge) error {
	c.Lock()
	err := c.inErr
	c.Unlock()
	if err != nil {
		return err
	}
	return c.Pin.In(pull, edge)
}

// Pull implements gpio.PinIn. gpiotest's own Pull reads the pull without its lock; this one
// takes it, so that a test may look while the scanner runs.
func (c *Col) Pull() gpio.Pull {
	c.Lock()
	defer c.Unlock()
	return c.P
}

// Read implements gpio.PinIn with the matrix's wiring.
func (c *Col) Read() gpio.Level {
	c.Lock()
	pull, floating := c.P, c.L
	c.Unlock()
	if pull != gpio.PullUp {
		return floating
	}
	return c.m.read(c.idx)
}

func (m *Matrix) read(col int) gpio.Level {
	m.mu.Lock()
	defer m.mu.Unlock()
	level, low := gpio.High, 0
	for r, row := range m.rows {
		if row.Read() == gpio.Low {
			low++
			if m.down[r][col] {
				level = gpio.Low
			}
		}
	}
	if low > 1 {
		m.overlaps++
	}
	return level
}
