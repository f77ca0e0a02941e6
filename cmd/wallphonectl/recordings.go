package main

// The investigator's side of promise 3: making the key the phones seal to, and opening what
// they sealed. Nothing here runs on a phone.

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/backoffice/vault"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/uplink"
)

// keysRecipient makes an investigator's identity: the private key stays in the file, the
// recipient goes into the facility policy's recording.recipients.
func keysRecipient(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("keys recipient", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	out := flags.String("out", "", "the identity file to create")
	if err := flags.Parse(args); err != nil {
		return fmt.Errorf("%w: keys recipient: %v", errUsage, err)
	}
	if *out == "" || flags.NArg() != 0 {
		return fmt.Errorf("%w: keys recipient needs --out FILE and nothing else", errUsage)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	// The layout age-keygen writes, so that the stock age tool reads it.
	text := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().Format(time.RFC3339), id.Recipient(), id)
	if err := writeNew(*out, []byte(text), 0o600); err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.Recipient())
	return nil
}

// writeNew creates path with data, and refuses if it exists: a key is never overwritten.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting it", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

func recordings(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: recordings needs list or decrypt", errUsage)
	}
	switch args[0] {
	case "list":
		return recordingsList(args[1:], stdout)
	case "decrypt":
		return recordingsDecrypt(args[1:], stdout)
	}
	return fmt.Errorf("%w: unknown command recordings %q", errUsage, args[0])
}

// recordingsList reads only names and sizes: it needs no key.
func recordingsList(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("recordings list", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	spoolDir := flags.String("spool", "", "the spool directory")
	if err := flags.Parse(args); err != nil {
		return fmt.Errorf("%w: recordings list: %v", errUsage, err)
	}
	if *spoolDir == "" || flags.NArg() != 0 {
		return fmt.Errorf("%w: recordings list needs --spool DIR and nothing else", errUsage)
	}
	calls, err := spool.List(*spoolDir)
	if err != nil {
		return err
	}
	if len(calls) == 0 {
		// An empty table would read as "nothing was recorded"; a phone's spool is emptied by
		// its uplink, so say where the calls went.
		fmt.Fprintf(stdout, "no calls in the spool %s: a call stays there only until the uplink has it in the vault.\n", *spoolDir)
		if where := vaultOf(*spoolDir); where != "" {
			fmt.Fprintf(stdout, "This phone's uplink sends its calls to %s.\n", where)
		} else {
			fmt.Fprintln(stdout, "Where they went is the phone's conf/vault.json (a bucket, or a directory vault; the simulated phone's is DATA-vault).")
		}
		fmt.Fprintln(stdout, "To see them: wallphonectl vault list --config VAULT.json; to fetch one for recordings decrypt: wallphonectl vault fetch --config VAULT.json --facility ID --device ID --call CALLID --out DIR.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CALL\tSEGMENTS\tBYTES\tMANIFEST")
	for _, c := range calls {
		var bytes int64
		for _, seg := range c.Segments {
			bytes += seg.Size
		}
		man := "yes"
		if c.Manifest == "" {
			man = "no"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", c.CallID, len(c.Segments), bytes, man)
	}
	return tw.Flush()
}

// vaultOf says which vault the uplink of the phone whose spool this is sends to, read as
// the agent reads it: the data directory's conf/vault.json, else the simulated phone's
// default, the data directory's name + "-vault". "" when neither is there, or the spool is
// not a data directory's (a copy).
func vaultOf(spoolDir string) string {
	spoolDir = filepath.Clean(spoolDir)
	if filepath.Base(spoolDir) != "spool" {
		return ""
	}
	data := filepath.Dir(spoolDir)
	b, err := os.ReadFile(filepath.Join(data, "conf", provisioning.VaultFile))
	if err != nil {
		if fi, err := os.Stat(data + "-vault"); err == nil && fi.IsDir() {
			return "the directory vault " + data + "-vault"
		}
		return ""
	}
	c, err := uplink.ParseConfig(b)
	switch {
	case err != nil:
		return ""
	case c.Dir != "":
		return "the directory vault " + c.Dir
	}
	return fmt.Sprintf("the bucket %s at %s", c.Bucket, c.Endpoint)
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// Errors of recordings decrypt.
var (
	// errNotClean: the WAV was written but some segment did not check out.
	errNotClean = errors.New("the recording did not check out")
	// errOrigin: the manifest is not of the phone or the call asked for; nothing is written.
	errOrigin = errors.New("the recording is not the one asked for")
)

func recordingsDecrypt(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("recordings decrypt", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	var keyFiles listFlag
	flags.Var(&keyFiles, "identity", "an age identity file (repeatable)")
	spoolDir := flags.String("spool", "", "the spool directory")
	callID := flags.String("call", "", "the call id")
	manPath := flags.String("manifest", "", "the call's sealed manifest")
	segDir := flags.String("segments", "", "the directory of the call's sealed segments")
	out := flags.String("out", "", "the WAV file to write")
	deviceKey := flags.String("device-key", "", "the fingerprint of the phone's enrolled device key; the manifest must be signed with it")
	devices := flags.String("devices", "", "enrolled devices file (DEVICE-ID FINGERPRINT per line); the manifest must be signed with its device's key")
	anySigner := flags.Bool("any-signer", false, "accept a manifest signed by any key: who made the call is not checked")
	force := flags.Bool("force", false, "replace --out if it exists")
	if err := flags.Parse(args); err != nil {
		return fmt.Errorf("%w: recordings decrypt: %v", errUsage, err)
	}
	fromSpool := *spoolDir != "" || *callID != ""
	fromFiles := *manPath != "" || *segDir != ""
	switch {
	case flags.NArg() != 0 || len(keyFiles) == 0 || *out == "" || fromSpool == fromFiles:
		return fmt.Errorf("%w: recordings decrypt needs --identity KEYFILE, --out FILE.wav, and either --spool DIR --call ID or --manifest FILE --segments DIR", errUsage)
	case fromSpool && (*spoolDir == "" || *callID == ""):
		return fmt.Errorf("%w: recordings decrypt needs both --spool DIR and --call ID", errUsage)
	case fromFiles && (*manPath == "" || *segDir == ""):
		return fmt.Errorf("%w: recordings decrypt needs both --manifest FILE and --segments DIR", errUsage)
	case fromSpool && !spool.ValidCallID(*callID):
		return fmt.Errorf("%w: %q is not a call id", errUsage, *callID)
	case countSet(*deviceKey != "", *devices != "", *anySigner) != 1:
		// The signature alone says only that nobody changed the manifest after it was signed,
		// not who signed it: anyone holding a recipient key could have made the call. So the
		// investigator says whose key to expect, or says in so many words that it is not checked.
		return fmt.Errorf("%w: recordings decrypt needs one of --device-key FINGERPRINT (the key the phone showed at enrolment), "+
			"--devices FILE (the enrolled devices, as for vault purge) or --any-signer (who made the call is not checked)", errUsage)
	case *deviceKey != "" && !isFingerprint(*deviceKey):
		// A typo here must not read as "another phone made this call".
		return fmt.Errorf("%w: --device-key %q is not a fingerprint: want the 32 hex digits the phone showed at enrolment (device_key in its start-up line)",
			errUsage, *deviceKey)
	}
	// Refused before any work, so that nothing is decrypted for nothing. A file made between
	// this check and the end is still replaced: only the investigator writes there.
	if _, err := os.Lstat(*out); err == nil && !*force {
		return fmt.Errorf("%s exists; not overwriting it (--force replaces it): %w", *out, fs.ErrExist)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--out: %w", err)
	}
	var enrolled vault.Enrolled
	if *devices != "" {
		b, err := os.ReadFile(*devices)
		if err != nil {
			return err
		}
		if enrolled, err = vault.ParseEnrolled(b); err != nil {
			return fmt.Errorf("%s: %w", *devices, err)
		}
	}
	ids, err := readIdentities(keyFiles)
	if err != nil {
		return err
	}
	name := "the call"
	if fromSpool {
		name = "call " + *callID
		p, err := spool.CallPaths(*spoolDir, *callID)
		if err != nil {
			return err
		}
		*manPath, *segDir = p.Manifest, p.SegmentDir
	}
	manifest, err := os.ReadFile(*manPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has no manifest (%s): without it nothing can be checked", name, *manPath)
	} else if err != nil {
		return err
	}
	segs, ignored, err := readSegments(*segDir, !fromSpool)
	if err != nil {
		return err
	}
	for _, n := range ignored {
		why := "not a segment's name"
		if strings.HasPrefix(n, ".tmp-") {
			why = "a file the spool was writing"
		}
		fmt.Fprintf(stdout, "ignored: %s (%s)\n", filepath.Join(*segDir, n), why)
	}

	manifestErr := func(err error) error {
		switch {
		case errors.Is(err, recording.ErrNoIdentity):
			return fmt.Errorf("manifest of %s: none of the identities in %s opens it: it was sealed to other recipients",
				name, strings.Join(keyFiles, ", "))
		case errors.Is(err, recording.ErrTampered):
			return fmt.Errorf("manifest of %s is damaged or altered: %w", name, err)
		case errors.Is(err, recording.ErrSignature):
			return fmt.Errorf("manifest of %s: its signature does not verify: it was altered after the phone signed it: %w", name, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	// Who made the call, and which call it is, are settled before a byte is written:
	// Assemble writes as it goes, and a WAV whose origin does not check out must not exist,
	// not even for a moment. Missing or altered segments are another matter: the manifest
	// vouches for the rest, which is written with silence in their place.
	plain, err := recording.Decrypt(manifest, ids...)
	if err != nil {
		return manifestErr(err)
	}
	m, key, err := recording.OpenManifest(plain)
	clear(plain)
	if err != nil {
		return manifestErr(err)
	}
	signer := identity.Fingerprint(key)
	fmt.Fprintf(stdout, "manifest signed by device %s, key %s\n", m.DeviceID, signer)
	switch {
	case *deviceKey != "" && !strings.EqualFold(*deviceKey, signer):
		return fmt.Errorf("%w: the manifest is signed by key %s, not by the enrolled key %s: this call was not made by that phone; nothing was written",
			errOrigin, signer, *deviceKey)
	case enrolled != nil && enrolled[m.DeviceID] == "":
		return fmt.Errorf("%w: the manifest names device %s, which is not enrolled in %s: nothing was written", errOrigin, m.DeviceID, *devices)
	case enrolled != nil && enrolled[m.DeviceID] != signer:
		return fmt.Errorf("%w: the manifest is signed by key %s, but device %s is enrolled in %s with %s: this call was not made by that phone; nothing was written",
			errOrigin, signer, m.DeviceID, *devices, enrolled[m.DeviceID])
	case fromSpool && m.CallID != *callID:
		return fmt.Errorf("%w: the manifest in %s is of call %s, not %s: nothing was written", errOrigin, *manPath, m.CallID, *callID)
	}
	switch {
	case *deviceKey != "":
		fmt.Fprintln(stdout, "origin: checked: signed by the enrolled key given with --device-key")
	case enrolled != nil:
		fmt.Fprintf(stdout, "origin: checked: signed by the key enrolled for device %s in %s\n", m.DeviceID, *devices)
	default:
		fmt.Fprintln(stdout, "origin: NOT checked (--any-signer): anyone holding a recipient key could have made this manifest")
	}

	var rep recording.Report
	err = atomicfile.WriteFunc(*out, 0o600, func(w io.Writer) error {
		var err error
		rep, err = recording.Assemble(manifest, segs, ids, w)
		return err
	})
	if err != nil {
		return manifestErr(err)
	}
	printReport(stdout, rep, *out)
	if !rep.OK() {
		var what []string
		if n := len(rep.Lost); n > 0 {
			what = append(what, fmt.Sprintf("%d lost on the phone", n))
		}
		if n := len(rep.Missing); n > 0 {
			what = append(what, fmt.Sprintf("%d missing", n))
		}
		if n := len(rep.Altered); n > 0 {
			what = append(what, fmt.Sprintf("%d altered", n))
		}
		if n := len(rep.Unlisted); n > 0 && rep.Complete {
			what = append(what, fmt.Sprintf("%d not in the manifest", n))
		}
		return fmt.Errorf("%w: %s (of %s listed); %s was written, with silence for what is lost, missing or altered",
			errNotClean, strings.Join(what, ", "), plural(rep.Listed, "segment"), *out)
	}
	return nil
}

// countSet is how many of the flags are set.
func countSet(set ...bool) int {
	n := 0
	for _, b := range set {
		if b {
			n++
		}
	}
	return n
}

// isFingerprint says whether s has the form of identity.Fingerprint's (either case).
func isFingerprint(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 32 && err == nil
}

func readIdentities(files []string) ([]age.Identity, error) {
	var ids []age.Identity
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		got, err := age.ParseIdentities(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: not an age identity file: %w", f, err)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// readSegments reads a call's sealed segments by seq. Other files are returned by name: a
// spool may hold a half-written temporary file, and an investigator should see anything else.
func readSegments(dir string, mustExist bool) (map[int][]byte, []string, error) {
	files, ignored, err := spool.ListSegments(dir)
	if errors.Is(err, fs.ErrNotExist) && !mustExist {
		return map[int][]byte{}, nil, nil // every listed segment will show as missing
	}
	if err != nil {
		return nil, nil, err
	}
	segs := make(map[int][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			return nil, nil, err
		}
		segs[f.Seq] = b
	}
	return segs, ignored, nil
}

func printReport(w io.Writer, rep recording.Report, out string) {
	state := "complete"
	if !rep.Complete {
		state = "incomplete"
	}
	fmt.Fprintf(w, "call %s: %s listed, manifest %s\n", rep.CallID, plural(rep.Listed, "segment"), state)
	type line struct {
		seq  int
		text string
	}
	var lines []line
	for _, s := range rep.Lost {
		lines = append(lines, line{s, "lost on the phone (" + rep.LostReasons[s] + ")"})
	}
	for _, s := range rep.Missing {
		lines = append(lines, line{s, "missing"})
	}
	for _, s := range rep.Altered {
		lines = append(lines, line{s, "altered (" + reason(rep.Reasons[s]) + ")"})
	}
	for _, s := range rep.Unlisted {
		text := "not in the manifest, included"
		if rep.Complete {
			text = "not in the manifest, not used: the manifest says the call ended"
		}
		lines = append(lines, line{s, text})
	}
	slices.SortFunc(lines, func(a, b line) int { return a.seq - b.seq })
	for _, l := range lines {
		fmt.Fprintf(w, "segment %d: %s\n", l.seq, l.text)
	}
	if !rep.Complete {
		fmt.Fprintf(w, "manifest incomplete: the phone stopped during the call; %s after the last manifest entry included\n",
			plural(len(rep.Unlisted), "segment"))
	}
	d := time.Duration(rep.Frames) * audio.FrameDuration
	fmt.Fprintf(w, "wrote %s: %s of audio (%d frames)\n", out, d, rep.Frames)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// reason says in a few words why a segment was refused.
func reason(err error) string {
	switch {
	case err == nil:
		return "no reason given"
	case errors.Is(err, recording.ErrHash):
		return "hash does not match the manifest"
	case errors.Is(err, recording.ErrNoIdentity):
		return "sealed to other recipients: none of the identities opens it"
	case errors.Is(err, recording.ErrTampered):
		return "does not decrypt: damaged or altered"
	}
	return strings.TrimPrefix(err.Error(), "recording: ")
}
