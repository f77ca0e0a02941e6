// Package hook reads the wall phone's hook switch from a GPIO pin and debounces it
// (device.Hook).
//
// Lifting the handset starts a session and replacing it ends the call, and with it the
// recording and the call record. The package keeps the hook's part of that: the state the
// agent sees changes only when the switch has held its new position for Config.Debounce, so
// a worn contact or a knock on the cradle neither hangs up a call half way nor starts a
// session nobody asked for.
package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/device"
)

const (
	defaultDebounce = 50 * time.Millisecond
	defaultInterval = 5 * time.Millisecond
)

// ErrConfig is wrapped by every error New returns for a Config that cannot work (as opposed to
// a pin that failed while being set up).
var ErrConfig = errors.New("hook: invalid config")

// Config describes a hook switch. Zero durations take the defaults given.
type Config struct {
	// Pin is the switch's input.
	Pin gpio.PinIn
	// OffHookLevel is the level that means the handset is lifted; boards differ.
	OffHookLevel gpio.Level
	// Pull is applied by New (e.g. gpio.PullUp for a switch to ground). The zero value,
	// gpio.PullNoChange, leaves the pin's pull as it is, for boards with an external
	// resistor.
	Pull gpio.Pull
	// Debounce is how long the switch must hold a new position before the state changes;
	// default 50ms. A hook that flaps faster than this does not change state.
	Debounce time.Duration
	// Interval is how often the pin is read; default 5ms.
	Interval time.Duration
	// Logger receives the debounced transitions (Debug); nil discards.
	Logger *slog.Logger
}

// Switch is a debounced hook switch. Run samples the pin; OffHook and Changes may be called
// from any goroutine meanwhile.
type Switch struct {
	// Immutable after New.
	pin      gpio.PinIn
	offLevel gpio.Level
	debounce time.Duration
	every    time.Duration
	log      *slog.Logger

	running atomic.Bool // true while a Run is under way: two would race on raw and rawSince

	// The last reading and when it began; only the goroutine in Run touches them.
	raw      bool // the last reading was off-hook
	rawSince time.Time

	// Written by Run, read by anyone: atomics, so that the call loop never waits on a lock.
	offHook atomic.Bool  // the debounced state
	changes atomic.Int64 // debounced transitions so far
}

var _ device.Hook = (*Switch)(nil)

// New checks cfg and applies its pull to the pin. The switch reads on-hook until Run has seen
// a stable reading. An error wraps ErrConfig, or the pin's own error.
func New(cfg Config) (*Switch, error) {
	if cfg.Pin == nil {
		return nil, fmt.Errorf("%w: no pin", ErrConfig)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Debounce", &cfg.Debounce, defaultDebounce},
		{"Interval", &cfg.Interval, defaultInterval},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("%w: %s %v is negative", ErrConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := cfg.Pin.In(cfg.Pull, gpio.NoEdge); err != nil {
		return nil, fmt.Errorf("hook: %s: set %v: %w", cfg.Pin, cfg.Pull, err)
	}
	return &Switch{
		pin:      cfg.Pin,
		offLevel: cfg.OffHookLevel,
		debounce: cfg.Debounce,
		every:    cfg.Interval,
		log:      cfg.Logger,
	}, nil
}

// Run reads the pin every Interval until ctx is done, then returns nil. A gpio.PinIn read
// cannot fail, so the only error is a second Run while one is under way. Run may be called
// again after it returns.
func (s *Switch) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("hook: Run is already running")
	}
	defer s.running.Store(false)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.sample(time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sample reads the pin at time now and moves the debounced state on.
func (s *Switch) sample(now time.Time) {
	if off := s.pin.Read() == s.offLevel; off != s.raw {
		s.raw, s.rawSince = off, now
	}
	if s.raw == s.offHook.Load() || now.Sub(s.rawSince) < s.debounce {
		return
	}
	s.offHook.Store(s.raw)
	n := s.changes.Add(1)
	s.log.Debug("hook", "off_hook", s.raw, "changes", n)
}

// OffHook reports whether the handset is lifted, debounced. It implements device.Hook.
func (s *Switch) OffHook() bool { return s.offHook.Load() }

// Changes returns how many times the debounced state has changed, for the self-test and
// diagnostics. A phone that starts with the handset lifted counts one.
func (s *Switch) Changes() int { return int(s.changes.Load()) }
