package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/uplink"
	"github.com/wallphone/wallphone/uplink/s3test"
)

// The phone of the vault tests.
const fac, dev = "fac1", "wp-0123456789abcdef"

// s3Phone is a phone that records calls with the real recorder into a real spool and ships
// them with its write-only credentials to a real S3 server, beside the back office's admin
// vault.json and an investigator's identity file.
type s3Phone struct {
	srv                    *s3test.Server
	dir, idFile, adminConf string
	id                     *age.X25519Identity
	key                    ed25519.PrivateKey
	sp                     *spool.Spool
}

func newS3Phone(t *testing.T) *s3Phone {
	p := &s3Phone{srv: s3test.Start(t), dir: t.TempDir()}
	var err error
	if p.id, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	p.idFile = filepath.Join(p.dir, "investigator.key")
	if err := os.WriteFile(p.idFile, []byte(p.id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, p.key, _ = ed25519.GenerateKey(rand.Reader)
	if p.sp, err = spool.Open(spool.Options{Dir: filepath.Join(p.dir, "spool"), MaxBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.sp.Close() })
	p.adminConf = filepath.Join(p.dir, "admin-vault.json")
	b, _ := json.Marshal(p.srv.AdminConfig())
	if err := os.WriteFile(p.adminConf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// record records a call of frames silent frames to number into the spool.
func (p *s3Phone) record(t *testing.T, callID, number string, frames int) {
	// The same recipient twice: the phone seals once to each distinct recipient.
	rec, err := recording.New(recording.Options{Spool: p.sp, Recipients: []string{p.id.Recipient().String(), p.id.Recipient().String()},
		Segment: time.Second, DeviceID: dev, DeviceKey: p.key})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rec.Start(recording.CallInfo{CallID: callID, CallerID: "1001", E164: number,
		Decision: "recorded", Reason: "default_recorded", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var a, b audio.Frame
	for range frames {
		if err := r.Write(&a, &b); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
}

// drain ships the spool to the vault.
func (p *s3Phone) drain(t *testing.T) {
	state, err := uplink.OpenState(filepath.Join(p.dir, "uplink.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	v, err := uplink.NewS3(s3test.PhoneConfig(p.srv.Endpoint()), state, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uplink.New(uplink.Options{Vault: v, Spool: p.sp, Facility: fac, DeviceID: dev})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestVaultFetchAndPurge ships two recorded calls from a phone's spool to a real S3 server
// with the phone's write-only credentials, fetches one with wallphonectl vault fetch and
// opens it with recordings decrypt, then purges the other through vault purge: a request
// signed with the enrolled key is carried out and receipted, a forged one refused.
func TestVaultFetchAndPurge(t *testing.T) {
	const (
		kept   = "20260102T090000Z-aa"
		purged = "20260102T093000Z-bb"
	)
	p := newS3Phone(t)
	dir, idFile, devKey, adminConf := p.dir, p.idFile, p.key, p.adminConf
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	p.record(t, kept, "+15125550123", 100)
	p.record(t, purged, "+15125550123", 100)
	sign := func(c string, k ed25519.PrivateKey) []byte {
		b, err := purge.Sign(purge.Request{DeviceID: dev, CallID: c, Reason: purge.ReasonPrivileged, RegistryVersion: 3, Requested: time.Now()}, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := p.sp.CommitPurge(purged, sign(purged, devKey)); err != nil {
		t.Fatal(err)
	}
	if err := p.sp.CommitPurge(kept, sign(kept, forger)); err != nil {
		t.Fatal(err)
	}
	p.drain(t)
	srv := p.srv

	var out bytes.Buffer
	callDir := filepath.Join(dir, "call")
	if err := run([]string{"vault", "fetch", "--config", adminConf, "--facility", fac, "--device", dev, "--call", kept, "--out", callDir}, nil, &out); err != nil {
		t.Fatalf("vault fetch: %v", err)
	}
	wav := filepath.Join(dir, "call.wav")
	if err := run([]string{"recordings", "decrypt", "--identity", idFile, "--device-key", identity.Fingerprint(devKey.Public().(ed25519.PublicKey)),
		"--manifest", spool.FetchedPaths(callDir).Manifest, "--segments", spool.FetchedPaths(callDir).SegmentDir, "--out", wav}, nil, &out); err != nil {
		t.Fatalf("recordings decrypt of the fetched call: %v\n%s", err, out.String())
	}
	if st, err := os.Stat(wav); err != nil || st.Size() != recording.WAVSize(100) {
		t.Errorf("the fetched call's WAV: %v %v, want %d bytes", st, err, recording.WAVSize(100))
	}

	devices := filepath.Join(dir, "enrolled.txt")
	if err := os.WriteFile(devices, []byte("# fac1\n"+dev+" "+identity.Fingerprint(devKey.Public().(ed25519.PublicKey))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run([]string{"vault", "purge", "--config", adminConf, "--devices", devices}, nil, &out)
	if !errors.Is(err, errRefused) {
		t.Fatalf("vault purge with a forged request: %v, want the refusal (exit status 1)", err)
	}
	var rc struct {
		CallID  string   `json:"call_id"`
		Deleted []string `json:"deleted"`
	}
	if err := json.Unmarshal(out.Bytes(), &rc); err != nil || rc.CallID != purged || len(rc.Deleted) != 3 {
		t.Fatalf("printed receipt %q: %v, want call %s with 2 segments and the manifest deleted", out.String(), err, purged)
	}
	objs := srv.Objects(t)
	for k := range objs {
		if strings.Contains(k, purged) && !strings.HasPrefix(k, uplink.ReceiptPrefix) {
			t.Errorf("%s survived the purge", k)
		}
	}
	if _, ok := objs[uplink.ManifestKey(fac, dev, kept)]; !ok {
		t.Error("the forged request deleted the call it named")
	}
	if _, ok := objs[uplink.PurgeKey(fac, dev, kept)]; !ok {
		t.Error("the forged request is gone; it must stay for inspection")
	}
	if _, ok := objs[uplink.ReceiptKey(fac, dev, purged)]; !ok {
		t.Error("no receipt object")
	}
}

// capture VAR REGEXP sets VAR to the first group of REGEXP's first match in the last
// command's standard output: the device and call ids the agent logged.
func capture(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: capture VAR REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) != 2 {
		ts.Fatalf("no match for %s (with one group) in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

// waitfile TIMEOUT GLOB waits until a file matches GLOB: what a background agent ships
// arrives when it arrives, and polling the condition is what a test can do without a hook.
func waitfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: waitfile TIMEOUT GLOB")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	deadline := time.Now().Add(d)
	for {
		m, err := filepath.Glob(ts.MkAbs(args[1]))
		ts.Check(err)
		if len(m) > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no file matches %s after %s", args[1], d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signpurge KEYFILE|- DEVICE CALL OUT writes a purge request for the call, signed with the
// phone's device key or, with -, with a key nobody enrolled: a forgery.
func signpurge(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 || neg {
		ts.Fatalf("usage: signpurge KEYFILE|- DEVICE CALL OUT")
	}
	var key ed25519.PrivateKey
	if args[0] == "-" {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	} else {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		ts.Check(err)
		key, err = identity.ParsePrivateKey(b)
		ts.Check(err)
	}
	req, err := purge.Sign(purge.Request{DeviceID: args[1], CallID: args[2], Reason: purge.ReasonPrivileged,
		RegistryVersion: 2, Requested: time.Now()}, key)
	ts.Check(err)
	out := ts.MkAbs(args[3])
	ts.Check(os.MkdirAll(filepath.Dir(out), 0o700))
	ts.Check(os.WriteFile(out, req, 0o600))
}

// ship SPOOL VAULT FACILITY DEVICE puts the calls of a spool into a directory vault under the
// keys the phone's uplink gives them.
func ship(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 || neg {
		ts.Fatalf("usage: ship SPOOL VAULT FACILITY DEVICE")
	}
	calls, err := spool.List(ts.MkAbs(args[0]))
	ts.Check(err)
	v := uplink.NewDir(ts.MkAbs(args[1]), 0)
	fac, dev := args[2], args[3]
	put := func(key, file string) {
		b, err := os.ReadFile(file)
		ts.Check(err)
		ts.Check(v.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), sha256.Sum256(b)))
	}
	for _, c := range calls {
		for _, seg := range c.Segments {
			put(uplink.SegmentKey(fac, dev, c.CallID, seg.Seq), seg.Path)
		}
		if c.Manifest != "" {
			put(uplink.ManifestKey(fac, dev, c.CallID), c.Manifest)
		}
	}
}

// TestVaultSweepS3 records two calls with the real recorder, ships them with the phone's
// write-only credentials to a real S3 server, and runs vault sweep against a registry that
// names one of the numbers: that call goes, with a receipt, and no form of either number
// appears on standard output or standard error.
func TestVaultSweepS3(t *testing.T) {
	const (
		privileged    = "20260102T090000Z-aa"
		kept          = "20260102T093000Z-bb"
		attorney, pal = "+15125550142", "+15125550123"
	)
	p := newS3Phone(t)
	dir, idFile, adminConf, srv := p.dir, p.idFile, p.adminConf, p.srv
	p.record(t, privileged, attorney, 60)
	p.record(t, kept, pal, 60)
	p.drain(t)

	csv := filepath.Join(dir, "v3.csv")
	if err := os.WriteFile(csv, []byte("number,kind,label\n(512) 555-0142,attorney,Doe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := filepath.Join(dir, "v3.reg")
	var out, stderr bytes.Buffer
	if err := run([]string{"registry", "build", "--csv", csv, "--version", "3", "--out", reg}, nil, &out); err != nil {
		t.Fatal(err)
	}
	numbers := regexp.MustCompile(`5550142|555-0142|555 0142|5550123|555-0123|555 0123`)
	for _, dry := range []bool{true, false} {
		args := []string{"--config", adminConf, "--identity", idFile, "--registry", reg}
		if dry {
			args = append(args, "--dry-run")
		}
		out.Reset()
		stderr.Reset()
		if err := vaultSweep(args, &out, &stderr); err != nil {
			t.Fatalf("vault sweep %v: %v\n%s%s", args, err, out.String(), stderr.String())
		}
		if m := numbers.FindString(out.String() + stderr.String()); m != "" {
			t.Errorf("vault sweep printed a number (%s):\n%s%s", m, out.String(), stderr.String())
		}
		if !strings.Contains(out.String(), fac+"/"+dev+"/"+privileged) || strings.Contains(out.String(), kept) {
			t.Errorf("vault sweep (dry run %v) printed:\n%s", dry, out.String())
		}
	}
	objs := srv.Objects(t)
	for k, b := range objs {
		if strings.Contains(k, privileged) && !strings.HasPrefix(k, uplink.ReceiptPrefix) {
			t.Errorf("%s survived the sweep", k)
		}
		if numbers.Match(b) {
			t.Errorf("%s holds a number in the clear", k)
		}
	}
	if _, ok := objs[uplink.ManifestKey(fac, dev, kept)]; !ok {
		t.Error("the sweep deleted a call to a number the registry does not name")
	}
	if _, ok := objs[uplink.ReceiptKey(fac, dev, privileged)]; !ok {
		t.Error("no receipt")
	}
}
