package output_test

import (
	"errors"
	"sync"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/wallphone/wallphone/device/output"
)

func level(p *gpiotest.Pin) gpio.Level {
	p.Lock()
	defer p.Unlock()
	return p.L
}

func TestPolarities(t *testing.T) {
	for _, tc := range []struct {
		name       string
		activeHigh bool
		boot       gpio.Level // what the board left on the pin
		onLevel    gpio.Level
	}{
		{"active high", true, gpio.High, gpio.High},
		{"active low", false, gpio.Low, gpio.Low},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &gpiotest.Pin{N: "LED_REC", L: tc.boot} // left on at boot
			o, err := output.New(p, tc.activeHigh)
			if err != nil {
				t.Fatal(err)
			}
			if o.On() || level(p) == tc.onLevel {
				t.Fatalf("after New: On %v, pin %v; want off", o.On(), level(p))
			}
			for _, on := range []bool{true, true, false, true, false, false} {
				if err := o.Set(on); err != nil {
					t.Fatal(err)
				}
				if o.On() != on || (level(p) == tc.onLevel) != on {
					t.Errorf("Set(%v): On %v, pin %v", on, o.On(), level(p))
				}
			}
		})
	}
}

// flakyPin is a gpiotest pin whose Out can be made to fail.
type flakyPin struct {
	gpiotest.Pin
	mu  sync.Mutex // guards err
	err error
}

func (p *flakyPin) Out(l gpio.Level) error {
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.Pin.Out(l)
}

func (p *flakyPin) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

var errPin = errors.New("gpio: write failed")

func TestPinErrors(t *testing.T) {
	p := &flakyPin{Pin: gpiotest.Pin{N: "RINGER", Num: 22}}
	p.fail(errPin)
	if _, err := output.New(p, true); !errors.Is(err, errPin) {
		t.Fatalf("New on a failing pin = %v, want its error", err)
	}
	p.fail(nil)
	o, err := output.New(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Set(true); err != nil {
		t.Fatal(err)
	}
	p.fail(errPin)
	err = o.Set(false)
	if !errors.Is(err, errPin) || err.Error() != "output: RINGER(22): drive Low: gpio: write failed" {
		t.Errorf("Set = %v, want the pin's error naming the pin", err)
	}
	if !o.On() {
		t.Error("On reports off after a write that failed")
	}
	if _, err := output.New(nil, true); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestConcurrentUse(t *testing.T) {
	p := &gpiotest.Pin{N: "LED"}
	o, err := output.New(p, true)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				_ = o.Set(i%2 == 0)
				_ = o.On()
			}
		})
	}
	wg.Wait()
	if (level(p) == gpio.High) != o.On() {
		t.Errorf("On %v but pin %v", o.On(), level(p))
	}
}
