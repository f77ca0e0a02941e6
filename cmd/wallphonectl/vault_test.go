package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
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

// TestVaultFetchAndPurge ships two recorded calls from a phone's spool to a real S3 server
// with the phone's write-only credentials, fetches one with wallphonectl vault fetch and
// opens it with recordings decrypt, then purges the other through vault purge: a request
// signed with the enrolled key is carried out and receipted, a forged one refused.
func TestVaultFetchAndPurge(t *testing.T) {
	srv := s3test.Start(t)
	dir := t.TempDir()
	const (
		fac, dev = "fac1", "wp-0123456789abcdef"
		kept     = "20260102T090000Z-aa"
		purged   = "20260102T093000Z-bb"
	)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(dir, "investigator.key")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rec, err := recording.New(recording.Options{Spool: sp, Recipients: []string{id.Recipient().String(), id.Recipient().String()},
		Segment: time.Second, DeviceID: dev, DeviceKey: devKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{kept, purged} {
		r, err := rec.Start(recording.CallInfo{CallID: c, CallerID: "1001", E164: "+15125550123",
			Decision: "recorded", Reason: "default_recorded", Started: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		var a, b audio.Frame
		for range 100 {
			if err := r.Write(&a, &b); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	sign := func(c string, k ed25519.PrivateKey) []byte {
		b, err := purge.Sign(purge.Request{DeviceID: dev, CallID: c, Reason: purge.ReasonPrivileged, RegistryVersion: 3, Requested: time.Now()}, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := sp.CommitPurge(purged, sign(purged, devKey)); err != nil {
		t.Fatal(err)
	}
	if err := sp.CommitPurge(kept, sign(kept, forger)); err != nil {
		t.Fatal(err)
	}
	state, err := uplink.OpenState(filepath.Join(dir, "uplink.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	v, err := uplink.NewS3(s3test.PhoneConfig(srv.Endpoint()), state, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uplink.New(uplink.Options{Vault: v, Spool: sp, Facility: fac, DeviceID: dev})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}

	adminConf := filepath.Join(dir, "admin-vault.json")
	b, _ := json.Marshal(srv.AdminConfig())
	if err := os.WriteFile(adminConf, b, 0o600); err != nil {
		t.Fatal(err)
	}
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
	err = run([]string{"vault", "purge", "--config", adminConf, "--devices", devices}, nil, &out)
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
