package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wallphone/wallphone/dialplan"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/registry"
)

const registryUsage = `  wallphonectl registry build --csv FILE --version N [--prev OLD.reg --removed FILE.csv]
                              [--country US] [--area-code NXX] --out FILE.reg
                                   build the compact registry from the back office's CSV; with --prev,
                                   every entry of OLD that the CSV lacks must be listed in --removed
  wallphonectl registry lookup --registry FILE.reg [--country US] [--area-code NXX] [--outside-digit D] NUMBER...
                                   one line per number: input, E.164 or -, privileged:KIND, not-privileged
                                   or invalid:REASON
  wallphonectl registry delta --from OLD.reg --to NEW.reg --out FILE
                                   what a phone holding OLD downloads to rebuild NEW
  wallphonectl registry apply --from OLD.reg --delta FILE --out NEW.reg
                                   rebuild NEW from OLD and a delta, as a phone does
  wallphonectl registry info FILE.reg
                                   check a registry file and summarise it`

func registryCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: registry needs build, lookup, delta, apply or info", errUsage)
	}
	switch args[0] {
	case "build":
		return registryBuild(args[1:], stdout)
	case "lookup":
		return registryLookup(args[1:], stdout)
	case "delta":
		return registryDelta(args[1:], stdout)
	case "apply":
		return registryApply(args[1:], stdout)
	case "info":
		if len(args) != 2 {
			return fmt.Errorf("%w: registry info needs one FILE", errUsage)
		}
		return registryInfo(args[1], stdout)
	}
	return fmt.Errorf("%w: unknown registry command %q", errUsage, args[0])
}

// planFlags adds the dialing-plan flags; numbers in lists and on the command line are read
// under it.
func planFlags(fs *flag.FlagSet, outside bool) *dialplan.Plan {
	p := &dialplan.Plan{}
	fs.StringVar(&p.Country, "country", "US", "the facility's region (a NANP region)")
	fs.StringVar(&p.AreaCode, "area-code", "", "home area code for seven-digit numbers")
	if outside {
		fs.StringVar(&p.OutsideDigit, "outside-digit", "", "the digit dialed for an outside line, if any")
	}
	return p
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: registry %s: %v", errUsage, fs.Name(), err)
	}
	return nil
}

// readCSVFile reads a registry CSV and prints what was read other than as written, one
// line a note, so that no row changes or disappears unseen.
func readCSVFile(path string, plan dialplan.Plan, stdout io.Writer) ([]registry.Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	items, notes, err := registry.ReadCSV(f, plan)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, n := range notes {
		fmt.Fprintf(stdout, "%s: %s\n", path, n)
	}
	return items, nil
}

func registryBuild(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	csvPath := fs.String("csv", "", "the CSV of privileged numbers")
	version := fs.Uint64("version", 0, "the new registry's version")
	prevPath := fs.String("prev", "", "the previous registry")
	removedPath := fs.String("removed", "", "CSV of the previous registry's entries this version removes")
	out := fs.String("out", "", "the registry file to write")
	plan := planFlags(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *csvPath == "" || *version == 0 || *out == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: registry build needs --csv FILE, --version N and --out FILE", errUsage)
	}
	if *removedPath != "" && *prevPath == "" {
		return fmt.Errorf("%w: registry build: --removed needs --prev", errUsage)
	}
	if err := plan.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	items, err := readCSVFile(*csvPath, *plan, stdout)
	if err != nil {
		return err
	}
	var removed []registry.Item
	if *removedPath != "" {
		if removed, err = readCSVFile(*removedPath, *plan, stdout); err != nil {
			return err
		}
	}
	var prev *registry.Set
	if *prevPath != "" {
		if prev, err = registry.Open(*prevPath); err != nil {
			return err
		}
		defer prev.Close()
	}
	var b bytes.Buffer
	if err := registry.Build(&b, *version, items, prev, removed); err != nil {
		return err
	}
	if err := atomicfile.Write(*out, b.Bytes(), 0o644); err != nil {
		return err
	}
	s, err := registry.Parse(b.Bytes())
	if err != nil {
		return err
	}
	st := s.Stats()
	fmt.Fprintf(stdout, "wrote %s: version %d, %d entries (%d prefixes), %d removals listed, %d bytes\n",
		*out, st.Version, s.Len(), st.Prefixes, len(removed), st.Bytes)
	return nil
}

func registryLookup(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
	path := fs.String("registry", "", "the registry file")
	plan := planFlags(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() == 0 {
		return fmt.Errorf("%w: registry lookup needs --registry FILE and at least one NUMBER", errUsage)
	}
	if err := plan.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	s, err := registry.Open(*path)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, in := range fs.Args() {
		e164, err := normalise(*plan, in)
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "%s\t-\tinvalid:%s\n", in, invalidReason(err))
		default:
			if e, ok := s.Lookup(e164); ok {
				fmt.Fprintf(stdout, "%s\t%s\tprivileged:%s\n", in, e164, e.Kind)
			} else {
				fmt.Fprintf(stdout, "%s\t%s\tnot-privileged\n", in, e164)
			}
		}
	}
	return nil
}

// normalise reads digits alone as keyed on the phone (outside digit, seven digits) and
// anything else as written.
func normalise(plan dialplan.Plan, in string) (string, error) {
	keyed := in != "" && strings.Trim(strings.TrimSuffix(in, "#"), "0123456789") == ""
	if keyed {
		return plan.Dialed(in)
	}
	return plan.Written(in)
}

// invalidReason is the error without the input it quotes, which is already on the line.
func invalidReason(err error) string {
	msg := err.Error()
	for _, p := range []string{"dialed ", "written "} {
		if strings.HasPrefix(msg, p) {
			if i := strings.Index(msg, ": "); i >= 0 {
				msg = msg[i+2:]
			}
		}
	}
	return strings.ReplaceAll(strings.TrimPrefix(msg, "dialplan: "), "\t", " ")
}

func openPair(fs *flag.FlagSet, args []string, second string) (*registry.Set, string, string, error) {
	from := fs.String("from", "", "the registry the phone holds")
	other := fs.String(second, "", "")
	out := fs.String("out", "", "the file to write")
	if err := parseFlags(fs, args); err != nil {
		return nil, "", "", err
	}
	if *from == "" || *other == "" || *out == "" || fs.NArg() != 0 {
		return nil, "", "", fmt.Errorf("%w: registry %s needs --from FILE, --%s FILE and --out FILE", errUsage, fs.Name(), second)
	}
	old, err := registry.Open(*from)
	return old, *other, *out, err
}

func registryDelta(args []string, stdout io.Writer) error {
	old, toPath, out, err := openPair(flag.NewFlagSet("delta", flag.ContinueOnError), args, "to")
	if err != nil {
		return err
	}
	defer old.Close()
	next, err := registry.Open(toPath)
	if err != nil {
		return err
	}
	defer next.Close()
	if err := registry.CheckRemovals(old, next); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := registry.WriteDelta(&b, old, next); err != nil {
		return err
	}
	if err := atomicfile.Write(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: version %d to %d, %d bytes (%.1f%% of the full %d bytes)\n",
		out, old.Version(), next.Version(), b.Len(), 100*float64(b.Len())/float64(next.Size()), next.Size())
	return nil
}

func registryApply(args []string, stdout io.Writer) error {
	old, deltaPath, out, err := openPair(flag.NewFlagSet("apply", flag.ContinueOnError), args, "delta")
	if err != nil {
		return err
	}
	defer old.Close()
	d, err := os.ReadFile(deltaPath)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := registry.ApplyDelta(&b, old, d); err != nil {
		return fmt.Errorf("%s: %w", deltaPath, err)
	}
	next, err := registry.Parse(b.Bytes())
	if err != nil {
		return err
	}
	if err := registry.CheckRemovals(old, next); err != nil {
		return err
	}
	if err := atomicfile.Write(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: version %d, sha256 %x\n", out, next.Version(), sha256.Sum256(b.Bytes()))
	return nil
}

func registryInfo(path string, stdout io.Writer) error {
	s, err := registry.Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	st := s.Stats()
	exact := s.Len() - st.Prefixes
	fmt.Fprintf(stdout, "%s: ok\nversion: %d\nremovals logged since: version %d (%d groups, %d entries)\nbytes: %d\nsha256: %x\n",
		path, st.Version, st.LogFrom, st.LogGroups, st.LoggedRemovals, st.Bytes, sha256.Sum256(b))
	fmt.Fprintf(stdout, "exact numbers: %d", exact)
	if exact > 0 {
		fmt.Fprintf(stdout, " (%.2f bytes each on disk)", float64(st.Bytes)/float64(exact))
	}
	fmt.Fprintln(stdout)
	for _, k := range []registry.Kind{registry.Attorney, registry.PublicDefender, registry.Court, registry.Consulate, registry.Hotline, registry.Other} {
		fmt.Fprintf(stdout, "  %s: %d\n", k, st.Exact[k])
	}
	fmt.Fprintf(stdout, "prefixes: %d\n", st.Prefixes)
	return nil
}
