package keypad

import (
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/device/keypad/keypadtest"
)

// BenchmarkScan4x4 is one full scan of a 4x4 matrix on the fake pins: 8 writes, 16 reads and
// the debounce of 16 keys. Compare it with BenchmarkRawPinIO4x4, the same pin traffic and
// nothing else, and BenchmarkRawReads4x4, the 16 reads alone: the differences are the
// scanner's own cost. A scan must not allocate, since it runs 200 times a second for ever.
func BenchmarkScan4x4(b *testing.B) {
	m := keypadtest.New(Layout4x4())
	s, err := New(Config{Rows: m.Rows(), Cols: m.Cols(), Layout: Layout4x4()})
	if err != nil {
		b.Fatal(err)
	}
	m.Press('5') // one key held, as during a call, so that the debounce has work to do
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(s.every)
		if err := s.scan(now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawPinIO4x4(b *testing.B) {
	m := keypadtest.New(Layout4x4())
	rows, cols := m.Rows(), m.Cols()
	for _, c := range cols {
		if err := c.In(gpio.PullUp, gpio.NoEdge); err != nil {
			b.Fatal(err)
		}
	}
	m.Press('5')
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range rows {
			if err := r.Out(gpio.Low); err != nil {
				b.Fatal(err)
			}
			for _, c := range cols {
				_ = c.Read()
			}
			if err := r.Out(gpio.High); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkRawReads4x4(b *testing.B) {
	m := keypadtest.New(Layout4x4())
	cols := m.Cols()
	for _, c := range cols {
		if err := c.In(gpio.PullUp, gpio.NoEdge); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for range 4 {
			for _, c := range cols {
				_ = c.Read()
			}
		}
	}
}

// TestScanDoesNotAllocate keeps the benchmark's promise in the ordinary test run.
func TestScanDoesNotAllocate(t *testing.T) {
	m := keypadtest.New(Layout4x4())
	s, err := New(Config{Rows: m.Rows(), Cols: m.Cols(), Layout: Layout4x4()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	n := 0
	allocs := testing.AllocsPerRun(1000, func() {
		// A key going down and up, so that debounce edges and presses happen too.
		n++
		m.Set('5', n%20 < 10)
		now = now.Add(s.every)
		if err := s.scan(now); err != nil {
			t.Fatal(err)
		}
		s.PollKey()
	})
	if allocs != 0 {
		t.Errorf("a scan allocates %v times", allocs)
	}
}
