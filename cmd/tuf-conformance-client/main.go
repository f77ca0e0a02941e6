// Command tuf-conformance-client puts the phone's TUF client (package tufclient, the code
// wallphoned runs) behind the client-under-test protocol of the public TUF conformance suite
// (theupdateframework/tuf-conformance, CLIENT-CLI.md), so that anyone can check the client
// that keeps promise 6 against TUF's own tests. It is a tool for that check, never linked into
// the phone.
//
//	tuf-conformance-client --metadata-dir DIR init TRUSTED_ROOT
//	tuf-conformance-client --metadata-dir DIR --metadata-url URL refresh
//	tuf-conformance-client --metadata-dir DIR --metadata-url URL --target-name NAME [--target-name NAME...] \
//		--target-base-url URL --target-dir DIR download
//
// Flags may come before or after the command. The exit status is 0 on success, 1 otherwise.
//
// The suite fakes the time with faketime, which a Go program does not see, so the reference
// time for expiry is what `date +%s` prints: date is a C program, and faketime reaches it.
//
// The client is the phone's, with one option the phone will turn on and this command keeps
// off: TopLevelOnlyDelegates, since the suite's repositories list targets in the top-level
// targets role. The phone refuses delegated role names unsafe in a file name or URL, which
// the suite's test_unusual_role_name expects fetched: tuf-conformance-client.xfails, beside
// the binary, lists those tests for the suite.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/tufclient"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, dateNow))
}

// enrolledRoot keeps the trusted root given to init, as the phone keeps the root it was
// enrolled with beside its cache: not a .json file, which the suite would read as a role.
const enrolledRoot = "enrolled-root"

type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(s string) error { *n = append(*n, s); return nil }

// run is the command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, now func() (time.Time, error)) int {
	fs := flag.NewFlagSet("tuf-conformance-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	metaDir := fs.String("metadata-dir", "", "directory of the trusted metadata")
	metaURL := fs.String("metadata-url", "", "URL of the repository's metadata")
	targetURL := fs.String("target-base-url", "", "URL of the repository's targets")
	targetDir := fs.String("target-dir", "", "directory for the downloaded targets")
	var targets names
	fs.Var(&targets, "target-name", "target to download (repeatable, in order)")
	fs.Bool("verbose", false, "accepted for the suite; the output is the same")
	// The suite puts the command after the flags, the examples before: take both.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return 1
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	err := errors.New("usage: tuf-conformance-client [flags] init TRUSTED_ROOT | refresh | download")
	switch {
	case len(pos) == 0:
	case *metaDir == "":
		err = errors.New("--metadata-dir is required")
	case pos[0] == "init" && len(pos) == 2:
		err = initialize(*metaDir, pos[1])
	case pos[0] == "refresh" && len(pos) == 1:
		_, err = refresh(ctx, *metaDir, *metaURL, *targetURL, now)
	case pos[0] == "download" && len(pos) == 1:
		err = download(ctx, *metaDir, *metaURL, *targetURL, *targetDir, targets, stdout, now)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tuf-conformance-client:", err)
		return 1
	}
	return 0
}

// initialize trusts root: nothing is fetched, and the root is checked at the first refresh,
// as the suite expects.
func initialize(dir, root string) error {
	b, err := os.ReadFile(root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, enrolledRoot), b, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "root.json"), b, 0o600)
}

func refresh(ctx context.Context, dir, metaURL, targetURL string, now func() (time.Time, error)) (*tufclient.Client, error) {
	if metaURL == "" {
		return nil, errors.New("--metadata-url is required")
	}
	root, err := os.ReadFile(filepath.Join(dir, enrolledRoot))
	if err != nil {
		return nil, fmt.Errorf("not initialised: %w", err)
	}
	t, err := now()
	if err != nil {
		return nil, err
	}
	if targetURL == "" {
		// Refresh fetches no target; the client wants a URL all the same.
		targetURL = metaURL
	}
	c, err := tufclient.New(tufclient.Options{Dir: dir, Root: root, MetadataURL: metaURL, TargetsURL: targetURL,
		Now: func() time.Time { return t }})
	if err != nil {
		return nil, err
	}
	if _, err := c.Refresh(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// download fetches each target in turn, stopping at the first that fails; a target already
// in dir with the signed length and hashes is not fetched again.
func download(ctx context.Context, dir, metaURL, targetURL, targetDir string, targets []string, stdout io.Writer, now func() (time.Time, error)) error {
	if targetURL == "" || targetDir == "" || len(targets) == 0 {
		return errors.New("download needs --target-name, --target-base-url and --target-dir")
	}
	c, err := refresh(ctx, dir, metaURL, targetURL, now)
	if err != nil {
		return err
	}
	for _, name := range targets {
		t, err := c.Target(name)
		if err != nil {
			return err
		}
		path := filepath.Join(targetDir, url.QueryEscape(name))
		if have(path, t) {
			fmt.Fprintf(stdout, "%s: already downloaded\n", name)
			continue
		}
		if err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error { return c.Fetch(ctx, t, w) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: downloaded from role %s\n", name, t.Role)
	}
	return nil
}

// have says whether path holds exactly the target.
func have(path string, t tufclient.Target) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	v := t.Verifier()
	if _, err := io.Copy(v, io.LimitReader(f, t.Length+1)); err != nil {
		return false
	}
	return v.Verify() == nil
}

// dateNow is the time as `date +%s` says it, the clock faketime fakes.
func dateNow() (time.Time, error) {
	out, err := exec.Command("date", "+%s").Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the time from date: %w", err)
	}
	s, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the time from date: %w", err)
	}
	return time.Unix(s, 0), nil
}
