package main

import (
	"strings"

	"flag"
	"fmt"
	"github.com/wallphone/wallphone/device/board"
	"io"
	"os"
	"path/filepath"
)

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
	sipFile   string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("wallphoned", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.board, "board", "sim", "board `name`: sim (the simulated phone, worked from standard input), "+strings.Join(board.Names(), ", "))
	fs.StringVar(&c.boardFile, "board-file", "", "board definition `file`, for a board that is not built in")
	fs.StringVar(&c.trunk, "trunk", "sim", "where calls go: sim (the simulated called party, for bench tests) or sip (the facility's SIP server, from --sip)")
	fs.StringVar(&c.sipFile, "sip", "", "the SIP account `file` for --trunk sip (default: conf/sip.json in the data directory)")
	fs.StringVar(&c.dataDir, "data", "", "data `directory` (default: $XDG_STATE_HOME/wallphone-sim for the sim board)")
	fs.StringVar(&c.logMode, "log", "text", "event log format: text (captions for a person) or json (one object per line)")
	fs.StringVar(&c.clock, "clock", "real", "sim board: real (wall clock) or virtual (time passes only with wait)")
	fs.StringVar(&c.callee, "callee", "manual", "sim board: the called party is manual (callee commands) or auto (answers and accepts by itself)")
	fs.StringVar(&c.policy, "policy", "", "facility policy `file` (default: /etc/wallphone/policy.json; for the sim board policy.json in the data directory, a demo written on first run)")
	fs.StringVar(&c.registry, "registry", "", "privileged-number registry `file` (default: /etc/wallphone/registry.json; for the sim board registry.json in the data directory, a demo written on first run); none runs with no registry")
	fs.StringVar(&c.demoKeys, "demo-keys", "", "sim board: `directory` for the demo's recording identities, made with the demo policy (default: the data directory's name + \"-keys\")")
	fs.StringVar(&c.earpiece, "earpiece", "", "sim board: write what the earpiece plays to this `file` (raw s16le, 8 kHz, mono)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wallphoned [flags]\n\nThe wall phone agent. flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.logMode != "text" && c.logMode != "json" {
		return c, fmt.Errorf("--log %q: want text or json", c.logMode)
	}
	if c.clock != "real" && c.clock != "virtual" {
		return c, fmt.Errorf("--clock %q: want real or virtual", c.clock)
	}
	if c.callee != "manual" && c.callee != "auto" {
		return c, fmt.Errorf("--callee %q: want manual or auto", c.callee)
	}
	if real := c.board != "sim" || c.boardFile != ""; real && c.earpiece != "" {
		return c, fmt.Errorf("--earpiece is for the simulated phone only: a real phone never writes call audio")
	}
	if c.trunk != "sim" && c.trunk != "sip" {
		return c, fmt.Errorf("--trunk %q: want sim or sip", c.trunk)
	}
	if c.dataDir == "" {
		c.dataDir = defaultDataDir(c.board)
	}
	if c.sipFile == "" {
		c.sipFile = filepath.Join(c.dataDir, "conf", "sip.json")
	}
	if c.demoKeys == "" {
		c.demoKeys = filepath.Clean(c.dataDir) + "-keys"
	}
	// The simulated phone keeps everything in its data directory; a real phone reads what the
	// facility gave it from /etc/wallphone.
	confDir := c.dataDir
	if c.board != "sim" || c.boardFile != "" {
		confDir = "/etc/wallphone"
	}
	if c.policy == "" {
		c.policy = filepath.Join(confDir, "policy.json")
	}
	if c.registry == "" {
		c.registry = filepath.Join(confDir, "registry.json")
	}
	return c, nil
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
