package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wallphone/wallphone/agent"
	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/internal/version"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/siptrunk"
)

// runPhone wires the agent to a board's devices and runs it until ctx is done or drive
// stops. The trunk is the facility's SIP server with --trunk sip, else what sim makes; it is
// closed after the agent, whose shutdown releases a call still going.
func runPhone(ctx context.Context, cfg config, log *slog.Logger, board device.Board, prompts *audio.Prompts,
	sim func() trunk.Trunk, clock agent.Clock, drive func(context.Context, func(time.Time)) error, lights agent.Lights) error {
	calls, stopTrunk := sim, func() {}
	if cfg.trunk == "sip" {
		t, stop := siptrunk.OpenFile(cfg.sipFile, log)
		calls, stopTrunk = func() trunk.Trunk { return t }, stop
	}
	defer stopTrunk()
	simulated := cfg.board == "sim" && cfg.boardFile == ""
	ac := agent.Config{
		DataDir: cfg.dataDir, Devices: board, Trunk: calls(), Drive: drive, Lights: lights,
		LocalPolicy: cfg.policy, LocalRegistry: cfg.registry,
		UpdateInterval: cfg.updateInterval,
		Console:        cfg.console, ConsoleBaud: cfg.consoleBaud, ProvisioningPub: cfg.provisioningPub,
		Firmware: version.String(), Vault: cfg.vault,
		Prompts: prompts, Clock: clock, Logger: log,
	}
	if cfg.clock == "virtual" {
		// On the virtual clock only what the script does happens: the one check at start.
		ac.UpdateInterval, ac.CheckAtStart = 0, true
	}
	if simulated {
		ac.DefaultVault = filepath.Clean(mustAbs(cfg.dataDir)) + "-vault"
	}
	if cfg.runningSlot != "" {
		ac.Slots = &agent.Slots{Hardware: simHardware, Running: cfg.runningSlot, Env: simEnv(cfg.dataDir),
			Image: func(s string) string { return slotImage(cfg.dataDir, s) }, Capacity: simSlotCapacity}
	} else if cfg.boardSlots != nil {
		ac.Slots = cfg.boardSlots
	}
	a, err := agent.New(ac)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// enrolDemo enrols a new simulated phone in the demo facility that wallphonectl demo init
// made in cfg.demoKeys, as a technician would: each file checked by the parser that reads
// it, the facility last. The phone then fetches and verifies its rules from the demo's
// repository like any phone.
func enrolDemo(cfg config, log *slog.Logger) error {
	if cfg.board != "sim" || cfg.boardFile != "" || !cfg.demo {
		// A phone in a facility is enrolled by a technician, never with demo keys.
		return nil
	}
	conf := filepath.Join(cfg.dataDir, "conf")
	if _, err := os.Stat(filepath.Join(conf, provisioning.FacilityFile)); err == nil {
		return nil
	}
	items, valid := map[string][]byte{}, agent.ConfValidators()
	for _, name := range provisioning.EnrolmentFiles {
		// The layout of wallphonectl demo init (backoffice/demo), which the phone may not link.
		b, err := os.ReadFile(filepath.Join(cfg.demoKeys, "enrol", name))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no demo facility in %s to enrol this phone in: make one with `wallphonectl demo init %s` (make run does), or run with --demo=false", cfg.demoKeys, cfg.demoKeys)
		}
		if err == nil && valid[name] != nil {
			err = valid[name](b)
		}
		if err != nil {
			return fmt.Errorf("demo enrolment %s: %w", name, err)
		}
		items[name] = b
	}
	facility := strings.TrimSpace(string(items[provisioning.FacilityFile]))
	if err := provisioning.WriteEnrolment(cfg.dataDir, items, facility, nil); err != nil {
		return err
	}
	log.Info("enrolled in the demo facility", "event", "demo_written", "dir", conf, "facility", facility)
	return nil
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
