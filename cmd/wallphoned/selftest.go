package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/sim"
	"github.com/wallphone/wallphone/selftest"
)

// errSelftest is returned when a part failed: exit status 1.
var errSelftest = errors.New("selftest failed")

const selftestUsage = `usage: wallphoned selftest [flags]

The technician's walk through the hardware: every key, the hook, the earpiece and the
mouthpiece, each passed or failed; exit status 1 if one failed. flags:
`

// runSelftest is `wallphoned selftest`: the technician's walk through the hardware.
func runSelftest(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wallphoned selftest", flag.ContinueOnError)
	boardName := fs.String("board", "sim", "board `name`: sim, or a built-in board")
	boardFile := fs.String("board-file", "", "board definition `file` for a board that is not built in")
	clock := fs.String("clock", "real", "sim board: real or virtual")
	timeout := fs.Duration("step-timeout", time.Minute, "how long each step waits for the technician")
	if err := parse(fs, args, "wallphoned selftest", stdout, selftestUsage); err != nil {
		return err
	}
	if *boardName == "sim" && *boardFile == "" {
		return selftestSim(ctx, *clock == "virtual", *timeout, stdin, stdout, stderr)
	}
	hw, err := openHardware(*boardName, *boardFile, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	defer hw.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ticker := time.NewTicker(audio.FrameDuration)
	defer ticker.Stop()
	done := make(chan error, 1)
	go func() { done <- hw.devs.Run(ctx) }()
	res := selftest.Run(ctx, hw.board, selftest.Options{Keys: hw.devs.Keys, StepTimeout: *timeout, Ticks: ticker.C, Out: stdout})
	cancel()
	if err := <-done; err != nil {
		return err
	}
	if !res.Passed() {
		return errSelftest
	}
	return nil
}

// selftestSim runs the self test on the simulated phone, worked by the same commands as the
// agent (offhook, press, wait...), so that the walk-through itself can be tried and scripted.
func selftestSim(ctx context.Context, virtual bool, timeout time.Duration, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	board := sim.New(sim.Options{Mic: audio.Tone(0.1, 440)})
	ticks := make(chan time.Time)
	done := make(chan struct{})
	var res selftest.Result
	keys := []device.Key("123456789*0#")
	go func() {
		defer close(done)
		res = selftest.Run(ctx, board.Device(), selftest.Options{Keys: keys, StepTimeout: timeout, Ticks: ticks, Out: stdout})
	}()
	driver := sim.NewDriver(sim.DriverOptions{Board: board, Virtual: virtual, Stop: done, Stderr: stderr})
	err := driver.Run(ctx, stdin, func(now time.Time) {
		select {
		case ticks <- now:
		case <-done:
		}
	})
	if err != nil {
		return err
	}
	cancel() // input ended before the test did: the steps left fail as stopped
	<-done
	if !res.Passed() {
		return errSelftest
	}
	return nil
}
