// Command wallphoned is the agent that runs on the wall phone. With --board sim it runs the
// same call logic on any computer, on a simulated phone worked from standard input.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wallphone/wallphone/internal/caption"
	"github.com/wallphone/wallphone/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	var usage *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &usage):
		// Short: what was wrong and where to read more, not every flag.
		fmt.Fprintf(os.Stderr, "wallphoned: %v\nsee '%s --help'\n", err, usage.help)
		os.Exit(2)
	case errors.Is(err, errSelftest):
		os.Exit(1)
	case errors.Is(err, errRebootExit):
		fmt.Fprintln(os.Stderr, "wallphoned:", err)
		os.Exit(rebootExit)
	case err != nil:
		fmt.Fprintln(os.Stderr, "wallphoned:", err)
		os.Exit(1)
	}
}

// newLogger is the event log: captions for a person at a terminal, or JSON.
func newLogger(mode string, w io.Writer) *slog.Logger {
	if mode == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(caption.NewHandler(w))
}

// run is the whole agent; only main exits.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "selftest" {
		return runSelftest(ctx, args[1:], stdin, stdout, stderr)
	}
	cfg, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	if cfg.version {
		fmt.Fprintln(stdout, "wallphoned", version.String())
		return nil
	}
	if cfg.board == "sim" && cfg.boardFile == "" {
		return runSim(ctx, cfg, stdin, stdout, stderr)
	}
	hw, err := openHardware(cfg.board, cfg.boardFile, newLogger(cfg.logMode, stderr))
	if err != nil {
		return err
	}
	defer hw.close()
	return runBoard(ctx, cfg, hw, stdout)
}
