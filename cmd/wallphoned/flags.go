package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wallphone/wallphone/agent"
	"github.com/wallphone/wallphone/device/board"
)

// usageError is a command line that was not understood: main prints it with where to read
// the usage (help names the command, wallphoned or wallphoned selftest) and exits 2.
type usageError struct {
	help string
	err  error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parse parses args into fs; help, asked for, goes to stdout with the flags' defaults
// (flag.ErrHelp is returned: exit status 0), and anything else not understood is a
// usageError for the command help names.
func parse(fs *flag.FlagSet, args []string, help string, stdout io.Writer, usage string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return err
	case err != nil:
		return &usageError{help, err}
	case fs.NArg() > 0:
		return &usageError{help, fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

type config struct {
	board     string
	dataDir   string
	logMode   string
	clock     string
	callee    string
	policy    string
	registry  string
	earpiece  string
	demoKeys  string
	boardFile string
	trunk     string

	updateInterval  time.Duration
	demo            bool
	console         string
	consoleBaud     int
	provisioningPub string
	vault           string
	sipFile         string
	version         bool
	// slots boots the simulated phone from its two firmware slots (<data>/slots), as a board's
	// bootloader does.
	slots bool
	// runningSlot is the slot the simulated phone booted from (with slots).
	runningSlot string
	// boardSlots are a real board's firmware slots (from its board file), if it updates.
	boardSlots *agent.Slots
	// firmwareFile gives the simulated phone a real board's firmware layout (a board file's
	// firmware section): its slots are block devices, as on a board booted by U-Boot.
	firmwareFile string
}

const agentUsage = `usage: wallphoned [flags]
       wallphoned selftest [flags]   the technician's walk through the hardware (selftest --help)
       wallphoned --version

The wall phone agent. flags:
`

// parseFlags reads the command line; help goes to stdout.
func parseFlags(args []string, stdout io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("wallphoned", flag.ContinueOnError)
	fs.StringVar(&c.board, "board", "sim", "board `name`: sim (the simulated phone, worked from standard input), "+strings.Join(board.Names(), ", "))
	fs.StringVar(&c.boardFile, "board-file", "", "board definition `file`, for a board that is not built in")
	fs.StringVar(&c.trunk, "trunk", "sim", "where calls go: sim (the simulated called party, for bench tests) or sip (the facility's SIP server, from --sip)")
	fs.StringVar(&c.sipFile, "sip", "", "the SIP account `file` for --trunk sip (default: conf/sip.json in the data directory)")
	fs.StringVar(&c.dataDir, "data", "", "data `directory` (default: $XDG_STATE_HOME/wallphone-sim for the sim board)")
	fs.StringVar(&c.logMode, "log", "text", "event log format: text (captions for a person) or json (one object per line)")
	fs.StringVar(&c.clock, "clock", "real", "sim board: real (wall clock) or virtual (time passes only with wait)")
	fs.StringVar(&c.callee, "callee", "manual", "sim board: the called party is manual (callee commands) or auto (answers and accepts by itself)")
	fs.StringVar(&c.policy, "policy", "", "sim board: a local facility policy `file` instead of the one from the repository (tests and bench work only)")
	fs.StringVar(&c.registry, "registry", "", "sim board: a local registry `file` (wallphonectl registry build) instead of the one from the repository, or none for no registry (tests and bench work only)")
	fs.BoolVar(&c.demo, "demo", true, "sim board: enrol a new data directory in the demo facility of --demo-keys (false: it waits for a technician on the console)")
	fs.DurationVar(&c.updateInterval, "update-interval", time.Hour, "how often to ask the repository for a new registry and policy (with jitter; sooner after a failure)")
	fs.StringVar(&c.demoKeys, "demo-keys", "", "sim board: the demo facility's `directory`, made by wallphonectl demo init (default: the data directory's name + \"-keys\")")
	fs.StringVar(&c.earpiece, "earpiece", "", "sim board: write what the earpiece plays to this `file` (raw s16le, 8 kHz, mono)")
	fs.StringVar(&c.console, "console", "", "serial `port` of the provisioning console (e.g. /dev/ttyS0); empty: no console")
	fs.IntVar(&c.consoleBaud, "console-baud", 115200, "console serial speed")
	fs.StringVar(&c.provisioningPub, "provisioning-pub", "", "`file` of facility provisioning keys the console trusts (default: /etc/wallphone/provisioning.pub; for the sim board provisioning.pub in the demo facility)")
	fs.StringVar(&c.vault, "vault", "", "where recordings go: a local `directory` acting as the vault, or none (default: <data>/conf/vault.json; for the sim board without one, the data directory's name + \"-vault\")")
	fs.BoolVar(&c.slots, "slots", false, "sim board: boot from the two firmware slots in <data>/slots as a board's bootloader does (this build is flashed into the good slot when it is newer)")
	fs.StringVar(&c.firmwareFile, "firmware", "", "sim board: update a real board's firmware slots, named in this `file` as a board file's firmware section (JSON), booted by U-Boot with dist/boot.cmd (the boot test's virtual machine)")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	if err := parse(fs, args, "wallphoned", stdout, agentUsage); err != nil {
		return c, err
	}
	if err := c.check(); err != nil {
		return c, &usageError{"wallphoned", err}
	}
	c.defaults()
	return c, nil
}

// check refuses flags that cannot go together or values out of range.
func (c *config) check() error {
	if c.logMode != "text" && c.logMode != "json" {
		return fmt.Errorf("--log %q: want text or json", c.logMode)
	}
	if c.clock != "real" && c.clock != "virtual" {
		return fmt.Errorf("--clock %q: want real or virtual", c.clock)
	}
	if c.callee != "manual" && c.callee != "auto" {
		return fmt.Errorf("--callee %q: want manual or auto", c.callee)
	}
	if real := c.board != "sim" || c.boardFile != ""; real && c.earpiece != "" {
		return fmt.Errorf("--earpiece is for the simulated phone only: a real phone never writes call audio")
	} else if real && (c.policy != "" || c.registry != "") {
		return fmt.Errorf("--policy and --registry are for the simulated phone only: a real phone uses only what its repository signed")
	} else if real && c.slots {
		return fmt.Errorf("--slots is for the simulated phone only: a real board's bootloader picks the slot")
	} else if real && c.firmwareFile != "" {
		return fmt.Errorf("--firmware is for the simulated phone only: a real board's file has its firmware section")
	}
	if c.slots && c.firmwareFile != "" {
		return fmt.Errorf("--slots and --firmware: the simulated phone boots either from its own slot files or from a real bootloader's slots, not both")
	}
	if c.updateInterval < time.Minute {
		return fmt.Errorf("--update-interval %s: want at least 1m", c.updateInterval)
	}
	if c.trunk != "sim" && c.trunk != "sip" {
		return fmt.Errorf("--trunk %q: want sim or sip", c.trunk)
	}
	return nil
}

// defaults fills in what depends on other flags.
func (c *config) defaults() {
	if c.dataDir == "" {
		c.dataDir = defaultDataDir(c.board)
	}
	if c.sipFile == "" {
		c.sipFile = filepath.Join(c.dataDir, "conf", "sip.json")
	}
	if c.demoKeys == "" {
		c.demoKeys = filepath.Clean(c.dataDir) + "-keys"
	}
	if c.provisioningPub == "" {
		c.provisioningPub = "/etc/wallphone/provisioning.pub"
		if c.board == "sim" && c.boardFile == "" {
			c.provisioningPub = filepath.Join(c.demoKeys, "provisioning.pub")
		}
	}
}

func defaultDataDir(board string) string {
	if board != "sim" {
		return "/var/lib/wallphone"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "wallphone-sim")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "wallphone-sim")
	}
	return "wallphone-sim"
}
