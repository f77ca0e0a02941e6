package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/wallphone/wallphone/backoffice/demo"
)

const demoUsage = `
  wallphonectl demo init DIR       a demo facility for the simulated phone in DIR (kept if it is there):
                                   the vendor's repository and keys with the demo registry and policy,
                                   the recording identities, the audit key, a console provisioning key
                                   and technician certificate, and DIR/enrol, the enrolment that
                                   wallphoned --board sim --demo-keys DIR installs at its first run`

// demoCmd is wallphonectl demo init: the back office's side of the simulated phone, so that
// the phone binary itself never makes a key that signs anything.
func demoCmd(args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "init" || args[1] == "" {
		return fmt.Errorf("%w: demo init needs the facility's directory and nothing else", errUsage)
	}
	dir := args[1]
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
			return slog.Attr{}
		}
		return a
	}}))
	if err := demo.Init(dir, log); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo facility %s ready in %s\n", demo.Facility, dir)
	return nil
}
