// Command wallphonectl is the people's tool: for the facility's staff who write the policy,
// for technicians and testers who read what a phone recorded in its state database, and for
// investigators who open recorded calls.
//
//	wallphonectl pin hash            PINs on standard input, one per line → argon2id verifiers
//	wallphonectl policy check FILE   validate a facility policy and summarise it
//	wallphonectl calls --data DIR    the call records a phone keeps, one JSON object per line
//	wallphonectl keys recipient --out FILE
//	                                 a new age identity in FILE (0600); prints its recipient
//	wallphonectl console --port DEV --cert FILE --key FILE COMMAND
//	                                 the serial provisioning console (exit statuses in console.go)
//	wallphonectl keys provisioning|technician --out PREFIX
//	                                 Ed25519 key pairs for the console
//	wallphonectl recordings list --spool DIR
//	                                 the calls in a spool: segments, bytes, manifest
//	wallphonectl recordings decrypt --identity KEYFILE... (--device-key FP | --devices FILE | --any-signer)
//	                                 (--spool DIR --call ID | --manifest FILE --segments DIR) --out FILE.wav
//	                                 check a call's segments against its manifest and write one WAV
//	wallphonectl keys tuf|audit      the keys of the TUF repository's roles; the facility's audit key
//	wallphonectl repo init|publish|timestamp|root|list
//	                                 the TUF repository that carries the registry and the policies
//	wallphonectl audit verify|match  check a phone's audit log; match numbers to its keyed hashes
//	wallphonectl firmware publish    a firmware image and its block index, for the firmware role to sign
//	wallphonectl registry build|lookup|delta|apply|info
//	                                 the compact registry of privileged numbers (see usage)
//	wallphonectl vault purge --config FILE --devices FILE
//	                                 carry out the phones' signed purge requests in the vault
//	wallphonectl vault list --config FILE [--facility ID [--device ID]]
//	                                 the calls in the vault, without opening any
//	wallphonectl vault fetch --config FILE --facility ID --device ID --call ID --out DIR
//	                                 download a call's sealed objects
//	wallphonectl vault sweep --config FILE --identity KEYFILE... --registry FILE.reg [--dry-run]
//	                                 destroy the calls in the vault whose number the registry names
//	wallphonectl demo init DIR       a demo facility for the simulated phone (make run uses it)
//
// recordings decrypt exits 0 when every segment checked out and 1 when one is missing,
// altered, or present but not in a complete manifest (the WAV is written all the same); 1
// with nothing written when the manifest is not the enrolled phone's or not the call's.
package main

import (
	"bufio"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/store"
)

// errUsage marks a command line that could not be understood: exit status 2.
var errUsage = errors.New("usage")

const usage = `usage:
  wallphonectl pin hash            read PINs from standard input, one per line; print a verifier for each
  wallphonectl policy check FILE   check a facility policy file and summarise it
  wallphonectl calls --data DIR    print the call records in a phone's data directory (the agent must be stopped)
  wallphonectl keys recipient --out FILE
                                   make an age identity in FILE (mode 0600, never overwritten) and print
                                   its recipient (age1...) for the policy's recording.recipients
  wallphonectl recordings list --spool DIR
                                   list the calls in a spool: segments, bytes, whether a manifest is there
  wallphonectl recordings decrypt --identity KEYFILE [--identity KEYFILE...] --out FILE.wav [--force]
                                   (--device-key FINGERPRINT | --devices FILE | --any-signer)
                                   (--spool DIR --call CALLID | --manifest FILE --segments DIR)
                                   check a call against its manifest and write it as one WAV (0600);
                                   the manifest must be signed by the phone's enrolled key (--device-key, or
                                   the device's line in the enrolled devices FILE), or --any-signer says
                                   that who made the call is not checked (the output says which);
                                   exit status 1 if a segment is missing, altered, or not in a complete manifest;
                                   nothing is written if another key signed it or it is another call,
                                   nor over an existing FILE.wav without --force
` + registryUsage + repoUsage + `
  wallphonectl keys provisioning --facility ID --out PREFIX
                                   a facility's provisioning key: PREFIX.key (0600) and PREFIX.pub, the line
                                   for the phones' /etc/wallphone/provisioning.pub
  wallphonectl keys technician --out PREFIX
                                   a technician's key: PREFIX.key (0600) and PREFIX.pub
  wallphonectl console ...         the serial provisioning console; wallphonectl console --help for more
  wallphonectl vault purge --config ADMIN-VAULT.json --devices FILE
                                   carry out the phones' signed purge requests in the vault: delete the
                                   calls named, write a receipt for each (printed); a request whose
                                   signature is not the enrolled device key's is refused (exit status 1)
  wallphonectl vault list --config ADMIN-VAULT.json [--facility ID [--device ID]]
                                   the calls in the vault: facility, device, call id, segments and their
                                   bytes, whether the manifest and the call record are there; needs no key
  wallphonectl vault fetch --config ADMIN-VAULT.json --facility ID --device ID --call ID --out DIR
                                   download a call's sealed objects for recordings decrypt
                                   (--manifest DIR/manifest.age --segments DIR/segments)
  wallphonectl vault sweep --config ADMIN-VAULT.json --identity KEYFILE [--identity KEYFILE...] --registry FILE.reg [--dry-run]
                                   after every registry release: open every call's manifest in the vault,
                                   and destroy the calls whose number the registry names, with a receipt
                                   each, as vault purge does; prints call ids and counts, never a number;
                                   --dry-run lists the calls it would destroy; exit status 1 if a call
                                   could not be checked (named on standard error)` + firmwareUsage + demoUsage

func main() {
	args := os.Args[1:]
	err := run(args, os.Stdin, os.Stdout)
	var exit *exitError
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeHelp(os.Stdout, args)
	case errors.As(err, &exit):
		fmt.Fprintln(os.Stderr, "wallphonectl:", err)
		os.Exit(exit.code)
	case errors.Is(err, errUsage):
		// Short: what was wrong and where to read more, not every command's usage.
		fmt.Fprintf(os.Stderr, "wallphonectl: %v\n%s\n", err, seeHelp(args))
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "wallphonectl:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	if about, ok := helpRequested(args); ok {
		writeHelp(stdout, about)
		return nil
	}
	switch cmd := args[0]; {
	case cmd == "--version" || cmd == "-version" || cmd == "version":
		writeVersion(stdout)
		return nil
	case cmd == "pin" && len(args) == 2 && args[1] == "hash":
		return pinHash(stdin, stdout)
	case cmd == "policy" && len(args) == 3 && args[1] == "check":
		return policyCheck(args[2], stdout)
	case cmd == "calls":
		return calls(args[1:], stdout)
	case cmd == "keys" && len(args) >= 2 && args[1] == "recipient":
		return keysRecipient(args[2:], stdout)
	case cmd == "keys" && len(args) >= 2 && args[1] == "tuf":
		return keysTUF(args[2:], stdout)
	case cmd == "keys" && len(args) >= 2 && args[1] == "audit":
		return keysAudit(args[2:], stdout)
	case cmd == "repo":
		return repo(args[1:], stdout)
	case cmd == "audit":
		return auditCmd(args[1:], stdin, stdout)
	case cmd == "recordings":
		return recordings(args[1:], stdout)
	case cmd == "registry":
		return registryCmd(args[1:], stdout)
	case cmd == "console":
		return consoleMain(args[1:], stdin, stdout, os.Stderr)
	case cmd == "keys" && len(args) >= 2 && (args[1] == "provisioning" || args[1] == "technician"):
		return keysPair(args[1], args[2:], stdout)
	case cmd == "vault":
		return vaultCmd(args[1:], stdout, os.Stderr)
	case cmd == "demo":
		return demoCmd(args[1:], stdout)
	case cmd == "firmware":
		return firmwareCmd(args[1:], stdout)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, strings.Join(commandWords(args), " "))
}

// pinHash makes verifiers with the parameters the phones use; a PIN must be keyable on a
// wall phone, or nobody could ever enter it.
func pinHash(stdin io.Reader, stdout io.Writer) error {
	sc := bufio.NewScanner(stdin)
	n := 0
	for sc.Scan() {
		n++
		p := sc.Text()
		if err := pin.Check(p); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		v, err := pin.Hash(p, pin.DefaultParams(), rand.Reader)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, v)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no PIN on standard input")
	}
	return nil
}

func policyCheck(path string, stdout io.Writer) error {
	p, err := policy.Load(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\nfacility: %s\nversion: %d\ncallers: %d\nblocked numbers: %d\nfree numbers: %d\n",
		path, p.Facility, p.Version, len(p.Callers()), len(p.Blocked()), len(p.Free()))
	l := p.Limits
	fmt.Fprintf(stdout, "limits: %d PIN attempts, lockout %s, call %s, privileged call %s\n",
		l.MaxPINAttempts, l.Lockout, l.CallLimit, l.PrivilegedCallLimit)
	return nil
}

func calls(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("calls", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := fs.String("data", "", "the phone's data directory")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: calls: %v", errUsage, err)
	}
	if *data == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: calls needs --data DIR and nothing else", errUsage)
	}
	path := filepath.Join(*data, "state.db")
	if _, err := os.Stat(path); err != nil {
		// Opening would create an empty database; a typo in the path must not do that.
		return fmt.Errorf("no state database: %w", err)
	}
	db, err := store.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	w := bufio.NewWriter(stdout)
	err = db.Calls(func(_ string, rec []byte) error {
		w.Write(rec)
		return w.WriteByte('\n')
	})
	if err != nil {
		return err
	}
	return w.Flush()
}
