package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"text/tabwriter"
	"time"

	"github.com/wallphone/wallphone/backoffice/vault"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/uplink"
)

// errRefused: some purge request was refused; exit status 1 after the others were done.
var errRefused = errors.New("some purge requests were refused (left in the vault, nothing of theirs deleted)")

func vaultCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: vault needs list, purge, fetch or sweep", errUsage)
	}
	if args[0] == "sweep" {
		return vaultSweep(args[1:], stdout, stderr)
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
	v, err := openVault(*conf)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch args[0] {
	case "list":
		if *device != "" && *facility == "" {
			return fmt.Errorf("%w: vault list --device needs --facility", errUsage)
		}
		return vaultList(ctx, v, *facility, *device, stdout)
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
		refused, failed, done := 0, 0, 0
		err = v.Purge(ctx, enrolled, time.Now, func(o vault.Outcome) {
			switch {
			case o.Err != nil:
				if errors.Is(o.Err, vault.ErrRefused) {
					refused++
				} else {
					failed++
				}
				fmt.Fprintf(stderr, "wallphonectl: %s: %v\n", o.Key, o.Err)
			default:
				done++
				j, _ := json.Marshal(o.Receipt)
				fmt.Fprintf(stdout, "%s\n", j)
			}
		})
		// The summary is for the person at the terminal; standard output stays receipts only.
		if n := done + refused + failed; err == nil && n == 0 {
			fmt.Fprintln(stderr, "vault purge: no purge requests in the vault")
		} else if err == nil {
			fmt.Fprintf(stderr, "vault purge: %s: %d carried out, %d refused, %d failed\n", plural(n, "request"), done, refused, failed)
		}
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
	return fmt.Errorf("%w: vault %s: want purge, fetch or sweep", errUsage, args[0])
}

// openVault opens the vault an admin vault.json names.
func openVault(conf string) (*vault.Vault, error) {
	b, err := os.ReadFile(conf)
	if err != nil {
		return nil, err
	}
	c, err := uplink.ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", conf, err)
	}
	return vault.New(c, nil)
}

// errUnchecked: some calls could not be checked against the registry; exit status 1 after
// the others were done.
var errUnchecked = errors.New("some calls could not be checked against the registry (named above); they are left as they are")

// vaultSweep is destroy on discovery for the calls in the vault, run after every registry
// release. What it prints names calls, never a number: the numbers it finds privileged are
// exactly the ones that must not be written down.
func vaultSweep(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vault sweep", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conf := fs.String("config", "", "vault.json with the vault's admin credentials")
	var keyFiles listFlag
	fs.Var(&keyFiles, "identity", "an age identity file (repeatable)")
	regFile := fs.String("registry", "", "the registry file to check the numbers against")
	dryRun := fs.Bool("dry-run", false, "list the calls that would be destroyed; delete nothing")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: vault sweep: %v", errUsage, err)
	}
	if *conf == "" || len(keyFiles) == 0 || *regFile == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: vault sweep needs --config FILE, --identity KEYFILE and --registry FILE.reg", errUsage)
	}
	ids, err := readIdentities(keyFiles)
	if err != nil {
		return err
	}
	reg, err := registry.Open(*regFile)
	if err != nil {
		return err
	}
	defer reg.Close()
	v, err := openVault(*conf)
	if err != nil {
		return err
	}
	sum, err := v.Sweep(context.Background(), vault.SweepOptions{Identities: ids, Registry: reg, DryRun: *dryRun},
		func(o vault.SweepOutcome) {
			switch {
			case o.Err != nil:
				fmt.Fprintf(stderr, "wallphonectl: %s: %v\n", o.Call, o.Err)
			case o.Receipt != nil:
				fmt.Fprintf(stdout, "destroyed %s: %s deleted, receipt %s\n", o.Call, plural(len(o.Receipt.Deleted), "object"),
					uplink.ReceiptKey(o.Call.Facility, o.Call.Device, o.Call.ID))
			case o.Privileged:
				fmt.Fprintf(stdout, "would destroy %s\n", o.Call)
			}
		})
	if err != nil {
		return err
	}
	dry := ""
	if *dryRun {
		dry = " (dry run: nothing deleted)"
	}
	fmt.Fprintf(stdout, "registry version %d: %s checked, %d privileged, %s deleted%s, %d unreadable, %s without a manifest\n",
		reg.Version(), plural(sum.Checked, "call"), sum.Privileged, plural(sum.Deleted, "object"), dry, sum.Unreadable, plural(sum.NoManifest, "call"))
	switch {
	case sum.Failed > 0:
		return fmt.Errorf("%s failed; run again to finish them", plural(sum.Failed, "call"))
	case sum.Unreadable > 0:
		return errUnchecked
	}
	return nil
}

// vaultList prints the calls in the vault, one line each: what an investigator needs to pick
// a call for vault fetch and recordings decrypt. It opens nothing, so it shows no number.
func vaultList(ctx context.Context, v *vault.Vault, facility, device string, stdout io.Writer) error {
	calls, err := v.List(ctx, facility, device)
	if err != nil {
		return err
	}
	if len(calls) == 0 {
		where := "the vault"
		if facility != "" {
			where += " for " + path.Join(facility, device)
		}
		fmt.Fprintf(stdout, "no calls in %s\n", where)
		return nil
	}
	yes := map[bool]string{true: "yes", false: "no"}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FACILITY\tDEVICE\tCALL\tSEGMENTS\tBYTES\tMANIFEST\tRECORD")
	for _, c := range calls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", c.Facility, c.Device, c.ID, c.Segments, c.Bytes, yes[c.Manifest], yes[c.Record])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, plural(len(calls), "call"))
	return nil
}
