package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wallphone/wallphone/audio"
)

// VirtualEpoch is where a virtual clock starts, so that scripted runs print the same times.
var VirtualEpoch = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// CalledParty is the simulated called party that callee commands work.
type CalledParty interface {
	Do(action string) error
}

// DriverOptions configure a Driver.
type DriverOptions struct {
	Board *Board
	// Callee takes the callee commands; nil answers them with "there is no called party here"
	// (calls go to a real SIP peer).
	Callee CalledParty
	// Virtual moves the phone's time only by the script's waits (and one frame after each
	// action), so that a script runs the same every time, as fast as it can; else frames come
	// every 20 ms of the wall clock.
	Virtual bool
	// Stop, when closed, ends the run (the self test is over); nil never does.
	Stop <-chan struct{}
	// Stderr receives what a person at the terminal must read: bad lines, help.
	Stderr io.Writer
	// Logger receives command_error events; nil discards them.
	Logger *slog.Logger
}

// Driver works a simulated phone from lines of commands (see Usage) and moves it on, one
// frame at a time, on one goroutine: the agent's call loop, or the self test.
type Driver struct {
	o DriverOptions
	// now is the virtual clock in Unix nanoseconds: moved by Run, read by any goroutine.
	now  atomic.Int64
	tick func(now time.Time)
}

// NewDriver makes a driver whose virtual clock starts at VirtualEpoch.
func NewDriver(o DriverOptions) *Driver {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	d := &Driver{o: o}
	d.now.Store(VirtualEpoch.UnixNano())
	return d
}

// Now is the phone's time: the last frame's on the virtual clock, else the wall clock's.
func (d *Driver) Now() time.Time {
	if d.o.Virtual {
		return time.Unix(0, d.now.Load()).UTC()
	}
	return time.Now()
}

// After waits in real time even on the virtual clock: nothing in a script moves the waits
// that happen outside the call loop (a console port's retries).
func (d *Driver) After(dur time.Duration) <-chan time.Time { return time.After(dur) }

// Run reads commands from in until quit, the end of input, Stop or cancellation, calling tick
// for every frame. With the real clock a wait only delays the next command while frames go
// on; with the virtual clock nothing moves but by wait.
func (d *Driver) Run(ctx context.Context, in io.Reader, tick func(now time.Time)) error {
	d.tick = tick
	// The reader goroutine ends with the run, except while blocked reading in, which nothing
	// can interrupt; the process exits then anyway.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan string)
	readErr := make(chan error, 1)
	// resume lets the reader go on after the loop has dealt with a line; with the real clock a
	// wait is slept out in the reader so that frames go on meanwhile.
	resume := make(chan time.Duration)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
			var w time.Duration
			select {
			case w = <-resume:
			case <-ctx.Done():
				return
			}
			if w > 0 {
				select {
				case <-time.After(w):
				case <-ctx.Done():
					return
				}
			}
		}
		readErr <- sc.Err()
	}()

	var frames <-chan time.Time
	if !d.o.Virtual {
		t := time.NewTicker(audio.FrameDuration)
		defer t.Stop()
		frames = t.C
	}
	lineNo := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.o.Stop:
			return nil
		case now := <-frames:
			tick(now)
		case err := <-readErr:
			return err
		case line := <-lines:
			lineNo++
			quit, sleep := d.command(ctx, lineNo, line)
			if quit || d.stopped() {
				return nil
			}
			select {
			case resume <- sleep:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// command carries out one line. It returns whether to stop, and how long the reader should
// sleep before the next line (real clock only).
func (d *Driver) command(ctx context.Context, lineNo int, line string) (quit bool, sleep time.Duration) {
	b, log, stderr := d.o.Board, d.o.Logger, d.o.Stderr
	c, err := ParseCommand(line)
	if err != nil {
		// The phone stays as it was: a typo on the console must not end a call.
		fmt.Fprintf(stderr, "line %d: %v\n", lineNo, err)
		log.Warn("bad command", "event", "command_error", "line", lineNo, "err", err.Error())
		return false, 0
	}
	switch c.Op {
	case OffHook, OnHook:
		up, state := c.Op == OffHook, "on-hook"
		if up {
			state = "off-hook"
		}
		if b.OffHook() == up {
			fmt.Fprintf(stderr, "line %d: the handset is already %s\n", lineNo, state)
			break
		}
		b.SetOffHook(up)
	case Press:
		if err := b.Press(c.Keys); err != nil {
			fmt.Fprintf(stderr, "line %d: %v\n", lineNo, err)
		}
	case Callee:
		if d.o.Callee == nil {
			fmt.Fprintf(stderr, "line %d: there is no called party here\n", lineNo)
			return false, 0
		}
		if err := d.o.Callee.Do(c.Action); err != nil {
			fmt.Fprintf(stderr, "line %d: %v\n", lineNo, err)
			log.Warn("bad command", "event", "command_error", "line", lineNo, "err", err.Error())
		}
	case Wait:
		if !d.o.Virtual {
			return false, c.Wait
		}
		d.advance(ctx, c.Wait)
		return false, 0
	case Help:
		fmt.Fprintln(stderr, Usage)
		return false, 0
	case Quit:
		return true, 0
	}
	if d.o.Virtual && c.Op != Nothing {
		// One frame after every action, so that the phone sees it at the time it was given.
		d.advance(ctx, audio.FrameDuration)
	}
	return false, 0
}

func (d *Driver) advance(ctx context.Context, dur time.Duration) {
	for now, end := d.Now(), d.Now().Add(dur); now.Before(end); {
		now = now.Add(audio.FrameDuration)
		d.now.Store(now.UnixNano())
		d.tick(now)
		if ctx.Err() != nil || d.stopped() {
			return
		}
	}
}

func (d *Driver) stopped() bool {
	select {
	case <-d.o.Stop:
		return true
	default:
		return false
	}
}
