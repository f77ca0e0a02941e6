package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"github.com/wallphone/wallphone/agent"
	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/board"
	"github.com/wallphone/wallphone/sdnotify"
	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/simtrunk"
)

// hardware is a real board, opened: its GPIO drivers and its handset.
type hardware struct {
	def     board.Definition
	devs    *board.Devices
	board   device.Board
	handset handsetDevice
	// cmdline is the kernel's command line, which says the slot that runs; reboot restarts
	// the board into new firmware (nil: Run's ErrReboot is returned instead).
	cmdline string
	reboot  func() error
}

func (h *hardware) close() error { return h.handset.Close() }

// openHardware initialises periph's host drivers, finds the board's pins and opens its sound
// device.
func openHardware(name, file string, log *slog.Logger) (*hardware, error) {
	var def board.Definition
	var err error
	if file != "" {
		def, err = board.Load(file)
	} else {
		def, err = board.Lookup(name)
	}
	if err != nil {
		return nil, err
	}
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("GPIO drivers: %w", err)
	}
	devs, err := board.Open(def, gpioreg.ByName, log)
	if err != nil {
		return nil, err
	}
	hs, err := openHandset(def, log)
	if err != nil {
		return nil, err
	}
	return &hardware{def: def, devs: devs, handset: hs,
		board:   device.Board{Name: def.Name, Keypad: devs.Keypad, Hook: devs.Hook, Handset: hs},
		cmdline: readCmdline(),
		reboot:  func() error { return rebootBoard(os.Getpid(), sysReboot) }}, nil
}

// runBoard is the agent on a real board: the GPIO drivers and the call loop, ticking every
// 20 ms on the wall clock, until SIGTERM.
func runBoard(ctx context.Context, cfg config, hw *hardware, stdout io.Writer) error {
	log := newLogger(cfg.logMode, stdout)
	prompts, err := audio.LoadPrompts()
	if err != nil {
		return fmt.Errorf("prompts: %w", err)
	}
	sim := func() trunk.Trunk {
		log.Warn("calls go to the simulated called party: a bench test, not a phone in service", "event", "trunk_sim")
		voice := prompts.Clip(audio.PromptSimFarEnd, audio.English)
		return simtrunk.New(simtrunk.Options{Auto: true, Voice: voice.Source, VoiceText: voice.Text(), Logger: log})
	}
	lights := agent.Lights{}
	// A board without one of the lights has a nil output, which must stay a nil interface.
	if o := hw.devs.Outputs["in_call"]; o != nil {
		lights.InCall = o
	}
	if o := hw.devs.Outputs["recording"]; o != nil {
		lights.Recording = o
	}
	slots, err := boardSlots(hw.def.Firmware, hw.cmdline)
	if err != nil {
		// The phone still serves calls with the firmware it has.
		log.Error("firmware updates off", "event", "firmware_error", "err", err)
	}
	cfg.boardSlots = slots
	err = runPhone(ctx, cfg, log, hw.board, prompts, sim, agent.RealClock{}, hw.drive, lights)
	if errors.Is(err, agent.ErrReboot) && hw.reboot != nil {
		return hw.reboot()
	}
	return err
}

// drive runs the board's drivers and ticks the call loop every 20 ms on the wall clock,
// feeding systemd's watchdog from the loop itself: a loop that hangs stops feeding it, and
// systemd restarts the agent.
func (hw *hardware) drive(ctx context.Context, tick func(time.Time)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drivers := make(chan error, 1)
	go func() { drivers <- hw.devs.Run(ctx) }()
	notify := sdnotify.FromEnv()
	notify.Send(sdnotify.Ready)
	defer notify.Send(sdnotify.Stopping)
	feed := time.NewTicker(notify.WatchdogInterval(time.Minute))
	defer feed.Stop()
	frames := time.NewTicker(audio.FrameDuration)
	defer frames.Stop()
	for {
		select {
		case <-ctx.Done():
			cancel()
			return <-drivers
		case now := <-frames.C:
			tick(now)
		case <-feed.C:
			notify.Send(sdnotify.Watchdog)
		case err := <-drivers:
			if ctx.Err() != nil {
				// Cancelled: the drivers stopped because they were asked to, and the select
				// happened to see them before ctx.Done.
				return err
			}
			return fmt.Errorf("board drivers stopped: %w", err)
		}
	}
}
