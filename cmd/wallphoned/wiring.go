package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/wallphone/wallphone/agent"
	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/siptrunk"
)

// runPhone wires the agent to a board's devices and runs it until ctx is done or drive
// stops. The trunk is the facility's SIP server with --trunk sip, else what sim makes; it is
// closed after the agent, whose shutdown releases a call still going.
func runPhone(ctx context.Context, cfg config, log *slog.Logger, board device.Board, prompts *audio.Prompts,
	sim func() trunk.Trunk, clock agent.Clock, drive func(context.Context, func(time.Time)) error, lights func(inCall, recording bool)) error {
	calls, stopTrunk := sim, func() {}
	if cfg.trunk == "sip" {
		t, stop := openSIPTrunk(cfg, log)
		calls, stopTrunk = func() trunk.Trunk { return t }, stop
	}
	defer stopTrunk()
	simulated := cfg.board == "sim" && cfg.boardFile == ""
	ac := agent.Config{
		DataDir: cfg.dataDir, Devices: board, Trunk: calls(), Drive: drive, Lights: lights,
		LocalPolicy: cfg.policy, LocalRegistry: cfg.registry,
		UpdateInterval: cfg.updateInterval,
		Console:        cfg.console, ConsoleBaud: cfg.consoleBaud, ProvisioningPub: cfg.provisioningPub,
		Firmware: firmwareVersion(), Vault: cfg.vault,
		Prompts: prompts, Clock: clock, Logger: log,
	}
	if cfg.clock == "virtual" {
		// On the virtual clock only what the script does happens: the one check at start.
		ac.UpdateInterval, ac.CheckAtStart = 0, true
	}
	if simulated {
		ac.DefaultVault = filepath.Clean(mustAbs(cfg.dataDir)) + "-vault"
	}
	a, err := agent.New(ac)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// errNoSIP is what a call gets when the phone has no usable SIP account: the caller hears that
// the call failed, and the log says why, once at start.
var errNoSIP = errors.New("no SIP account configured (sip.json)")

// noTrunk places no calls: the phone keeps running without a SIP account, as with any item of
// its configuration that is not installed.
type noTrunk struct{}

func (noTrunk) Dial(string) (trunk.Leg, error) { return nil, errNoSIP }

// openSIPTrunk starts the SIP trunk from the account in cfg.sipFile. A missing or bad file is
// logged and leaves the phone running with a trunk that fails every call; the returned
// function stops the trunk (hanging up a call still going).
func openSIPTrunk(cfg config, log *slog.Logger) (trunk.Trunk, func()) {
	b, err := os.ReadFile(cfg.sipFile)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no SIP account: calls cannot be placed until sip.json is installed",
			"event", "sip_not_configured", "file", cfg.sipFile)
		return noTrunk{}, func() {}
	}
	var c siptrunk.Config
	if err == nil {
		c, err = siptrunk.Parse(b)
	}
	var t *siptrunk.Trunk
	if err == nil {
		t, err = siptrunk.New(c, siptrunk.Options{Logger: log})
	}
	if err != nil {
		log.Error("SIP trunk not started: calls cannot be placed", "event", "sip_error",
			"file", cfg.sipFile, "err", fmt.Sprint(err))
		return noTrunk{}, func() {}
	}
	return t, func() {
		if err := t.Close(); err != nil {
			log.Error("closing the SIP trunk", "event", "sip_error", "err", err)
		}
	}
}

// enrolDemo enrols a new simulated phone in the demo facility that wallphonectl demo init
// made in cfg.demoKeys, as a technician would: each file of the enrolment checked by the
// parser that reads it, then installed in conf/, the facility file last. The phone then
// fetches and verifies its rules from the demo's repository like any phone.
func enrolDemo(cfg config, log *slog.Logger) error {
	if cfg.board != "sim" || cfg.boardFile != "" || !cfg.demo {
		// A phone in a facility is enrolled by a technician, never with demo keys.
		return nil
	}
	conf := filepath.Join(cfg.dataDir, "conf")
	if _, err := os.Stat(filepath.Join(conf, provisioning.FacilityFile)); err == nil {
		return nil
	}
	files, names, err := readDemoEnrolment(cfg.demoKeys)
	if err != nil {
		return err
	}
	valid := agent.ConfValidators()
	for _, name := range names {
		if check := valid[name]; check != nil {
			if err := check(files[name]); err != nil {
				return fmt.Errorf("demo enrolment %s: %w", name, err)
			}
		}
	}
	if err := os.MkdirAll(conf, 0o700); err != nil {
		return err
	}
	for _, name := range names {
		if err := atomicfile.Write(filepath.Join(conf, name), files[name], 0o600); err != nil {
			return err
		}
	}
	facility := string(files[provisioning.FacilityFile])
	log.Info("enrolled in the demo facility", "event", "demo_written", "dir", conf, "facility", trimLine(facility))
	return nil
}

func readDemoEnrolment(dir string) (map[string][]byte, []string, error) {
	files := map[string][]byte{}
	for _, name := range provisioning.EnrolmentFiles {
		// The layout of wallphonectl demo init (backoffice/demo), which the phone may not link.
		b, err := os.ReadFile(filepath.Join(dir, "enrol", name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no demo facility in %s to enrol this phone in: make one with `wallphonectl demo init %s` (make run does), or run with --demo=false", dir, dir)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("demo enrolment: %w", err)
		}
		files[name] = b
	}
	return files, provisioning.EnrolmentFiles, nil
}

func trimLine(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func firmwareVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
