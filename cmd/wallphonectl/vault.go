package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wallphone/wallphone/backoffice/vault"
	"github.com/wallphone/wallphone/uplink"
)

// errRefused: some purge request was refused; exit status 1 after the others were done.
var errRefused = errors.New("some purge requests were refused (left in the vault, nothing of theirs deleted)")

func vaultCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: vault needs purge or fetch", errUsage)
	}
	fs := flag.NewFlagSet("vault "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conf := fs.String("config", "", "vault.json with the vault's admin credentials")
	devices := fs.String("devices", "", "enrolled devices file: DEVICE-ID FINGERPRINT per line")
	facility := fs.String("facility", "", "facility id")
	device := fs.String("device", "", "device id")
	call := fs.String("call", "", "call id")
	out := fs.String("out", "", "directory to write the call's objects to")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: vault %s: %v", errUsage, args[0], err)
	}
	if *conf == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: vault %s needs --config FILE", errUsage, args[0])
	}
	b, err := os.ReadFile(*conf)
	if err != nil {
		return err
	}
	c, err := uplink.ParseConfig(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *conf, err)
	}
	v, err := vault.New(c, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch args[0] {
	case "purge":
		if *devices == "" {
			return fmt.Errorf("%w: vault purge needs --devices FILE", errUsage)
		}
		db, err := os.ReadFile(*devices)
		if err != nil {
			return err
		}
		enrolled, err := vault.ParseEnrolled(db)
		if err != nil {
			return fmt.Errorf("%s: %w", *devices, err)
		}
		refused, failed := 0, 0
		err = v.Purge(ctx, enrolled, time.Now, func(o vault.Outcome) {
			switch {
			case o.Err != nil:
				if errors.Is(o.Err, vault.ErrRefused) {
					refused++
				} else {
					failed++
				}
				fmt.Fprintf(os.Stderr, "wallphonectl: %s: %v\n", o.Key, o.Err)
			default:
				j, _ := json.Marshal(o.Receipt)
				fmt.Fprintf(stdout, "%s\n", j)
			}
		})
		switch {
		case err != nil:
			return err
		case failed > 0:
			return fmt.Errorf("%d purge requests failed; run again to finish them", failed)
		case refused > 0:
			return errRefused
		}
		return nil
	case "fetch":
		if *facility == "" || *device == "" || *call == "" || *out == "" {
			return fmt.Errorf("%w: vault fetch needs --facility, --device, --call and --out", errUsage)
		}
		n, err := v.Fetch(ctx, *facility, *device, *call, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d objects of call %s in %s\n", n, *call, *out)
		return nil
	}
	return fmt.Errorf("%w: vault %s: want purge or fetch", errUsage, args[0])
}
