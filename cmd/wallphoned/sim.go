package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/wallphone/wallphone/agent"
	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device/sim"
	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/simtrunk"
)

// virtualEpoch is where a virtual clock starts, so that scripted runs print the same times.
var virtualEpoch = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// simPhone is the simulated board, its called party and the call machine, driven from lines
// of input on one goroutine.
type simPhone struct {
	log    *slog.Logger
	stderr io.Writer
	board  *sim.Board
	callee *simtrunk.Trunk // nil when calls go to a real SIP peer
	// tick moves the phone on by one frame: the call machine, or the self test.
	tick func(now time.Time)
	// stop, when closed, ends the loop (the self test is over); nil for the agent.
	stop    <-chan struct{}
	virtual bool
	// now is the virtual clock in Unix nanoseconds, unused with the real one: moved by the
	// loop, read by the agent's other goroutines too.
	now atomic.Int64
}

func runSim(ctx context.Context, cfg config, stdin io.Reader, stdout, stderr io.Writer) error {
	log := newLogger(cfg.logMode, stdout)
	if err := enrolDemo(cfg, log); err != nil {
		return err
	}
	prompts, err := audio.LoadPrompts()
	if err != nil {
		return fmt.Errorf("prompts: %w", err)
	}
	p := &simPhone{log: log, stderr: stderr, virtual: cfg.clock == "virtual"}
	p.setNow(virtualEpoch)
	var ear *os.File
	if cfg.earpiece != "" {
		if ear, err = os.Create(cfg.earpiece); err != nil {
			return fmt.Errorf("earpiece file: %w", err)
		}
		defer ear.Close()
	}
	opts := sim.Options{Mic: audio.Tone(0.1, 440)}
	if ear != nil {
		opts.Earpiece = bufio.NewWriterSize(ear, 64<<10)
		defer opts.Earpiece.(*bufio.Writer).Flush()
	}
	p.board = sim.New(opts)
	voice, lang := audio.PromptSimFarEnd, audio.English
	callee := simtrunk.New(simtrunk.Options{
		Now:       p.clock,
		Auto:      cfg.callee == "auto",
		Voice:     func() audio.Source { return prompts.Clip(voice, lang).Source() },
		VoiceText: prompts.Clip(voice, lang).Text(),
		Logger:    log,
	})
	if cfg.trunk != "sip" {
		// With --trunk sip the called party is a real one, out of reach of callee commands.
		p.callee = callee
	}
	var clock agent.Clock = agent.RealClock{}
	if p.virtual {
		clock = virtualClock{p}
	}
	drive := func(ctx context.Context, tick func(time.Time)) error {
		p.tick = tick
		if cfg.logMode == "text" {
			fmt.Fprintln(stderr, "Simulated wall phone ready; type help for the commands, quit to stop.")
		}
		err := p.loop(ctx, stdin)
		// One last look at the phone, so that an onhook given just before quit counts as one.
		tick(p.clock())
		return err
	}
	return runPhone(ctx, cfg, log, p.board.Device(), prompts, func() trunk.Trunk { return callee }, clock, drive, nil)
}

// virtualClock is the simulated phone's clock with --clock virtual: the time of the last
// frame, moved only by the script. Waits outside the call loop (the console's retries) pass
// in real time, since nothing in a script moves them.
type virtualClock struct{ p *simPhone }

func (c virtualClock) Now() time.Time                       { return c.p.clock() }
func (virtualClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (p *simPhone) clock() time.Time {
	if p.virtual {
		return time.Unix(0, p.now.Load()).UTC()
	}
	return time.Now()
}

func (p *simPhone) setNow(t time.Time) { p.now.Store(t.UnixNano()) }

// loop reads commands until quit, end of input or cancellation. With the real clock the
// machine ticks every 20 ms and a wait only delays the next command; with the virtual clock
// nothing moves but by wait, so a script runs the same every time, as fast as it can.
func (p *simPhone) loop(ctx context.Context, stdin io.Reader) error {
	// The reader goroutine ends with the loop, except while blocked reading stdin, which
	// nothing can interrupt; the process exits then anyway.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan string)
	readErr := make(chan error, 1)
	// resume lets the reader go on after the loop has dealt with a line; with the real clock a
	// wait is slept out in the reader so that ticks go on meanwhile.
	resume := make(chan time.Duration)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
			var d time.Duration
			select {
			case d = <-resume:
			case <-ctx.Done():
				return
			}
			if d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
		}
		readErr <- sc.Err()
	}()

	var tick <-chan time.Time
	if !p.virtual {
		t := time.NewTicker(audio.FrameDuration)
		defer t.Stop()
		tick = t.C
	}
	lineNo := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.stop:
			return nil
		case now := <-tick:
			p.tick(now)
		case err := <-readErr:
			return err
		case line := <-lines:
			lineNo++
			quit, sleep := p.command(ctx, lineNo, line)
			if quit || p.stopped() {
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
func (p *simPhone) command(ctx context.Context, lineNo int, line string) (quit bool, sleep time.Duration) {
	c, err := sim.ParseCommand(line)
	if err != nil {
		// The phone stays as it was: a typo on the console must not end a call.
		fmt.Fprintf(p.stderr, "line %d: %v\n", lineNo, err)
		p.log.Warn("bad command", "event", "command_error", "line", lineNo, "err", err.Error())
		return false, 0
	}
	switch c.Op {
	case sim.OffHook:
		p.board.SetOffHook(true)
	case sim.OnHook:
		p.board.SetOffHook(false)
	case sim.Press:
		if err := p.board.Press(c.Keys); err != nil {
			fmt.Fprintf(p.stderr, "line %d: %v\n", lineNo, err)
		}
	case sim.Callee:
		if p.callee == nil {
			fmt.Fprintf(p.stderr, "line %d: there is no called party here\n", lineNo)
			return false, 0
		}
		if err := p.callee.Do(c.Action); err != nil {
			fmt.Fprintf(p.stderr, "line %d: %v\n", lineNo, err)
			p.log.Warn("bad command", "event", "command_error", "line", lineNo, "err", err.Error())
		}
	case sim.Wait:
		if !p.virtual {
			return false, c.Wait
		}
		p.advance(ctx, c.Wait)
		return false, 0
	case sim.Help:
		fmt.Fprintln(p.stderr, sim.Usage)
		return false, 0
	case sim.Quit:
		return true, 0
	}
	if p.virtual && c.Op != sim.Nothing {
		// One tick after every action, so that the phone sees it at the time it was given.
		p.advance(ctx, audio.FrameDuration)
	}
	return false, 0
}

func (p *simPhone) advance(ctx context.Context, d time.Duration) {
	for now, end := p.clock(), p.clock().Add(d); now.Before(end); {
		now = now.Add(audio.FrameDuration)
		p.setNow(now)
		p.tick(now)
		if ctx.Err() != nil || p.stopped() {
			return
		}
	}
}

func (p *simPhone) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}
