package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wallphone/wallphone/agent"
	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device/sim"
	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/simtrunk"
)

// runSim is the agent on the simulated phone, worked from lines of commands on stdin, with
// the simulated called party (or the facility's SIP server with --trunk sip).
func runSim(ctx context.Context, cfg config, stdin io.Reader, stdout, stderr io.Writer) error {
	log := newLogger(cfg.logMode, stdout)
	if cfg.slots {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("firmware slots: %w", err)
		}
		slot, err := simBoot(cfg.dataDir, self, log, execImage)
		if err != nil {
			return err
		}
		log.Info("running from a firmware slot", "event", "firmware_running", "slot", slot)
		cfg.runningSlot = slot
	}
	if cfg.firmwareFile != "" {
		fw, err := loadFirmware(cfg.firmwareFile)
		if err != nil {
			return err
		}
		slots, err := boardSlots(fw, readCmdline())
		if err != nil {
			// As on a board: the phone still serves calls with the firmware it has.
			log.Error("firmware updates off", "event", "firmware_error", "err", err)
		}
		cfg.boardSlots = slots
	}
	if err := enrolDemo(cfg, log); err != nil {
		return err
	}
	prompts, err := audio.LoadPrompts()
	if err != nil {
		return fmt.Errorf("prompts: %w", err)
	}
	opts := sim.Options{Mic: audio.Tone(0.1, 440)}
	if cfg.earpiece != "" {
		ear, err := os.Create(cfg.earpiece)
		if err != nil {
			return fmt.Errorf("earpiece file: %w", err)
		}
		defer ear.Close()
		w := bufio.NewWriterSize(ear, 64<<10)
		defer w.Flush()
		opts.Earpiece = w
	}
	board := sim.New(opts)
	dopts := sim.DriverOptions{Board: board, Virtual: cfg.clock == "virtual", Stderr: stderr, Logger: log}
	var driver *sim.Driver
	voice, lang := audio.PromptSimFarEnd, audio.English
	callee := simtrunk.New(simtrunk.Options{
		Now:       func() time.Time { return driver.Now() },
		Auto:      cfg.callee == "auto",
		Voice:     func() audio.Source { return prompts.Clip(voice, lang).Source() },
		VoiceText: prompts.Clip(voice, lang).Text(),
		Logger:    log,
	})
	if cfg.trunk != "sip" {
		// With --trunk sip the called party is a real one, out of reach of callee commands.
		dopts.Callee = callee
	}
	driver = sim.NewDriver(dopts)
	drive := func(ctx context.Context, tick func(time.Time)) error {
		if cfg.logMode == "text" {
			fmt.Fprintln(stderr, "Simulated wall phone ready; type help for the commands, quit to stop.")
		}
		err := driver.Run(ctx, stdin, tick)
		// One last look at the phone, so that an onhook given just before quit counts as one.
		tick(driver.Now())
		return err
	}
	var clock agent.Clock = agent.RealClock{}
	if cfg.clock == "virtual" {
		clock = driver
	}
	err = runPhone(ctx, cfg, log, board.Device(), prompts, func() trunk.Trunk { return callee }, clock, drive, agent.Lights{})
	if errors.Is(err, agent.ErrReboot) && cfg.slots {
		// The simulated board reboots: its bootloader picks the slot again.
		os.Unsetenv(bootedSlotEnv)
		self, err := os.Executable()
		if err != nil {
			return err
		}
		_, err = simBoot(cfg.dataDir, self, log, execImage)
		return err
	}
	if errors.Is(err, agent.ErrReboot) && cfg.boardSlots != nil {
		// A real bootloader's slots: the board reboots as a real board does.
		return rebootBoard(os.Getpid(), sysReboot)
	}
	return err
}
