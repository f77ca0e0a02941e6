package hook_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/wallphone/wallphone/device/hook"
)

// The tests run under synctest: time passes only when every goroutine of the test is blocked,
// so the switch samples at exact fake instants. wait(d) lets d of fake time pass and then lets
// the switch finish the sample due at that instant.

const (
	interval = 5 * time.Millisecond  // the default Interval
	debounce = 50 * time.Millisecond // the default Debounce
)

func wait(d time.Duration) {
	time.Sleep(d) // fake time: returns once d has passed in the bubble
	synctest.Wait()
}

// set puts level l on the pin as the switch would, under the pin's lock as gpiotest asks.
func set(p *gpiotest.Pin, l gpio.Level) {
	p.Lock()
	defer p.Unlock()
	p.L = l
}

// polarity is one way a board wires the switch.
type polarity struct {
	name     string
	off      gpio.Level // OffHookLevel
	pull     gpio.Pull
	onLevel  gpio.Level
	offLevel gpio.Level
}

var polarities = []polarity{
	{"switch to ground, pull-up", gpio.Low, gpio.PullUp, gpio.High, gpio.Low},
	{"switch to supply, pull-down", gpio.High, gpio.PullDown, gpio.Low, gpio.High},
}

// run starts s until the test ends, and returns after its first sample.
func run(t *testing.T, s *hook.Switch) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	synctest.Wait()
}

// newSwitch makes a switch on a fresh pin resting on-hook.
func newSwitch(t *testing.T, pol polarity) (*hook.Switch, *gpiotest.Pin) {
	t.Helper()
	p := &gpiotest.Pin{N: "HOOK", Num: 17}
	s, err := hook.New(hook.Config{Pin: p, OffHookLevel: pol.off, Pull: pol.pull})
	if err != nil {
		t.Fatal(err)
	}
	set(p, pol.onLevel)
	return s, p
}

func want(t *testing.T, s *hook.Switch, off bool, changes int) {
	t.Helper()
	if s.OffHook() != off || s.Changes() != changes {
		t.Errorf("OffHook %v, Changes %d; want %v, %d", s.OffHook(), s.Changes(), off, changes)
	}
}

func TestLiftAndReplace(t *testing.T) {
	for _, pol := range polarities {
		t.Run(pol.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, p := newSwitch(t, pol)
				run(t, s)
				wait(time.Second)
				want(t, s, false, 0)
				for i := 1; i <= 3; i++ {
					set(p, pol.offLevel)
					wait(100 * time.Millisecond)
					want(t, s, true, 2*i-1)
					set(p, pol.onLevel)
					wait(100 * time.Millisecond)
					want(t, s, false, 2*i)
				}
			})
		})
	}
}

func TestChangesExactlyDebounceAfterSeen(t *testing.T) {
	for _, pol := range polarities {
		t.Run(pol.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, p := newSwitch(t, pol)
				run(t, s)
				for _, to := range []gpio.Level{pol.offLevel, pol.onLevel} {
					wait(2 * time.Millisecond) // between two samples
					set(p, to)
					wait(interval - 2*time.Millisecond) // the first sample to see it
					before := s.OffHook()
					for range debounce/interval - 1 {
						wait(interval)
						if s.OffHook() != before {
							t.Fatalf("changed before Debounce")
						}
					}
					wait(interval)
					if s.OffHook() == before {
						t.Fatalf("not changed Debounce after the first sample that saw it")
					}
				}
				want(t, s, false, 2)
			})
		})
	}
}

func TestFlappingDoesNotChangeState(t *testing.T) {
	for _, pol := range polarities {
		t.Run(pol.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, p := newSwitch(t, pol)
				run(t, s)
				// A handset rattling in its cradle: off-hook for less than Debounce at a time,
				// at uneven lengths so that the samples see every flap.
				flap := func(to, back gpio.Level) {
					for _, ms := range []time.Duration{12, 30, 45, 8, 49, 21} {
						set(p, to)
						wait(ms * time.Millisecond)
						set(p, back)
						wait(7 * time.Millisecond) // longer than Interval: always seen

					}
				}
				flap(pol.offLevel, pol.onLevel)
				wait(time.Second)
				want(t, s, false, 0)

				// And a lifted handset knocked against the hook during a call.
				set(p, pol.offLevel)
				wait(100 * time.Millisecond)
				want(t, s, true, 1)
				flap(pol.onLevel, pol.offLevel)
				wait(time.Second)
				want(t, s, true, 1)
			})
		})
	}
}

func TestStartsOnHook(t *testing.T) {
	for _, pol := range polarities {
		t.Run(pol.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, p := newSwitch(t, pol)
				set(p, pol.offLevel) // the phone boots with the handset lifted
				want(t, s, false, 0)
				run(t, s)
				want(t, s, false, 0)
				wait(debounce - interval)
				want(t, s, false, 0)
				wait(interval)
				want(t, s, true, 1)
			})
		})
	}
}

func TestNewAppliesPull(t *testing.T) {
	for _, pull := range []gpio.Pull{gpio.PullUp, gpio.PullDown, gpio.Float} {
		p := &gpiotest.Pin{N: "HOOK"}
		if _, err := hook.New(hook.Config{Pin: p, Pull: pull}); err != nil {
			t.Fatal(err)
		}
		if p.Pull() != pull {
			t.Errorf("pull %v after New with %v", p.Pull(), pull)
		}
	}
	// The zero Pull leaves an external resistor's setting alone.
	p := &gpiotest.Pin{N: "HOOK", P: gpio.PullDown}
	if _, err := hook.New(hook.Config{Pin: p}); err != nil {
		t.Fatal(err)
	}
	if p.Pull() != gpio.PullNoChange {
		t.Errorf("the zero Pull asked for %v, want PullNoChange", p.Pull())
	}
}

// failingPin is a gpiotest pin whose In fails, as a pin already claimed by another driver
// does.
type failingPin struct {
	gpiotest.Pin
}

var errBusy = errors.New("gpio: pin busy")

func (*failingPin) In(gpio.Pull, gpio.Edge) error { return errBusy }

func TestNewReportsPinError(t *testing.T) {
	_, err := hook.New(hook.Config{Pin: &failingPin{gpiotest.Pin{N: "HOOK", Num: 17}}, Pull: gpio.PullUp})
	if !errors.Is(err, errBusy) || errors.Is(err, hook.ErrConfig) {
		t.Fatalf("New = %v, want the pin's error", err)
	}
	if got := err.Error(); got != "hook: HOOK(17): set PullUp: gpio: pin busy" {
		t.Errorf("error %q does not say which pin and what failed", got)
	}
}

func TestNewRejects(t *testing.T) {
	p := &gpiotest.Pin{N: "HOOK"}
	for _, tc := range []struct {
		cfg  hook.Config
		want string
	}{
		{hook.Config{}, "no pin"},
		{hook.Config{Pin: p, Debounce: -time.Millisecond}, "Debounce -1ms is negative"},
		{hook.Config{Pin: p, Interval: -time.Second}, "Interval -1s is negative"},
	} {
		_, err := hook.New(tc.cfg)
		if !errors.Is(err, hook.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want ErrConfig saying %q", tc.cfg, err, tc.want)
		}
	}
}

func TestRunTwiceAtOnceIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newSwitch(t, polarities[0])
		run(t, s)
		// Bounded, so that a second Run that wrongly starts scanning still returns.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.Run(ctx); err == nil {
			t.Error("a second Run while the first runs returned nil")
		}
	})
}
