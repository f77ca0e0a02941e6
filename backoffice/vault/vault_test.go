package vault_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wallphone/wallphone/backoffice/vault"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/uplink"
	"github.com/wallphone/wallphone/uplink/s3test"
)

const (
	fac  = "fac1"
	dev  = "wp-0123456789abcdef"
	dev2 = "wp-fedcba9876543210"
	good = "20260314T101500Z-000000000001"
	bad  = "20260314T111500Z-000000000002"
	keep = "20260314T121500Z-000000000003"
)

// backend is a vault as the tests see it: put writes an object as a phone does, objects
// reads back everything stored, admin is the back office's vault.json.
type backend struct {
	put func(t *testing.T, key string, b []byte)
	// phone is the vault as the phone's uplink writes to it.
	phone   func(t *testing.T) uplink.Vault
	objects func(t *testing.T) map[string][]byte
	admin   uplink.Config
}

// backends are the two kinds of vault: a real S3 server reached with the phone's write-only
// credentials, and a directory written by the phone's own uplink.DirVault.
var backends = []struct {
	name  string
	start func(t *testing.T) backend
}{
	{"s3", func(t *testing.T) backend {
		srv := s3test.Start(t)
		phone := srv.Phone(t)
		return backend{
			put: func(t *testing.T, key string, b []byte) {
				t.Helper()
				if _, err := phone.PutObject(context.Background(), s3test.Bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
					t.Fatalf("put %s: %v", key, err)
				}
			},
			phone: func(t *testing.T) uplink.Vault {
				state, err := uplink.OpenState(filepath.Join(t.TempDir(), "uplink.db"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { state.Close() })
				v, err := uplink.NewS3(s3test.PhoneConfig(srv.Endpoint()), state, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				return v
			},
			objects: func(t *testing.T) map[string][]byte { return srv.Objects(t) },
			admin:   srv.AdminConfig(),
		}
	}},
	{"dir", func(t *testing.T) backend {
		dir := t.TempDir()
		phone := uplink.NewDir(dir, 0)
		return backend{
			put: func(t *testing.T, key string, b []byte) {
				t.Helper()
				if err := phone.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), sha256.Sum256(b)); err != nil {
					t.Fatalf("put %s: %v", key, err)
				}
			},
			phone:   func(*testing.T) uplink.Vault { return phone },
			objects: func(t *testing.T) map[string][]byte { return dirObjects(t, dir) },
			admin:   uplink.Config{Dir: dir},
		}
	}},
}

// dirObjects is every file under dir by its key.
func dirObjects(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	objs := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		objs[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { test(t, be.start(t)) })
	}
}

// TestPurge puts three calls of a phone in the vault with the phone's credentials, a
// purge request for the first signed by the phone's enrolled key, one for the second signed
// by another key, and one for a call of another device that names the wrong device; only the
// first call goes, with a receipt.
func TestPurge(t *testing.T) { forEachBackend(t, testPurge) }

func testPurge(t *testing.T, be backend) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []string{good, bad, keep} {
		for _, name := range []string{"000000.age", "000001.age", "manifest.age", "record.age"} {
			be.put(t, uplink.CallPrefix(fac, dev, c)+name, []byte("age-encryption.org/v1\n"+c+name))
		}
	}
	req := func(device, call string, k ed25519.PrivateKey) []byte {
		b, err := purge.Sign(purge.Request{DeviceID: device, CallID: call, Reason: purge.ReasonPrivileged, RegistryVersion: 7, Requested: time.Now()}, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	be.put(t, uplink.PurgeKey(fac, dev, good), req(dev, good, key))
	be.put(t, uplink.PurgeKey(fac, dev, bad), req(dev, bad, forger))
	be.put(t, uplink.PurgeKey(fac, dev2, keep), req(dev, keep, key)) // a request moved to another device's prefix
	be.put(t, uplink.PurgePrefix+"junk.json", []byte("{}"))

	enrolled := vault.Enrolled{dev: identity.Fingerprint(key.Public().(ed25519.PublicKey)), dev2: strings.Repeat("ab", 16)}
	v, err := vault.New(be.admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	var receipts []*vault.Receipt
	refused := map[string]error{}
	now := time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC)
	err = v.Purge(context.Background(), enrolled, func() time.Time { return now }, func(o vault.Outcome) {
		if o.Err != nil {
			refused[o.Key] = o.Err
			return
		}
		receipts = append(receipts, o.Receipt)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(receipts) != 1 || receipts[0].CallID != good || len(receipts[0].Deleted) != 4 || !receipts[0].Purged.Equal(now) {
		t.Fatalf("receipts %+v", receipts)
	}
	if len(refused) != 3 {
		t.Fatalf("refused %v, want the forged, the misplaced and the junk request", refused)
	}
	for k, err := range refused {
		if !errors.Is(err, vault.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", k, err)
		}
	}
	if !errors.Is(refused[uplink.PurgeKey(fac, dev, bad)], purge.ErrSignature) && !strings.Contains(refused[uplink.PurgeKey(fac, dev, bad)].Error(), "enrolled") {
		t.Errorf("forged request: %v", refused[uplink.PurgeKey(fac, dev, bad)])
	}

	objs := be.objects(t)
	for k := range objs {
		if strings.Contains(k, good) && !strings.HasPrefix(k, uplink.ReceiptPrefix) {
			t.Errorf("%s survived its purge", k)
		}
	}
	for _, c := range []string{bad, keep} {
		if _, ok := objs[uplink.CallPrefix(fac, dev, c)+"000000.age"]; !ok {
			t.Errorf("call %s lost objects on a refused request", c)
		}
	}
	for _, k := range []string{uplink.PurgeKey(fac, dev, bad), uplink.PurgeKey(fac, dev2, keep)} {
		if _, ok := objs[k]; !ok {
			t.Errorf("refused request %s was removed; it must stay for inspection", k)
		}
	}
	var rc vault.Receipt
	if err := json.Unmarshal(objs[uplink.ReceiptKey(fac, dev, good)], &rc); err != nil || rc.Format != vault.ReceiptFormat || len(rc.Deleted) != 4 {
		t.Errorf("receipt object: %v %+v", err, rc)
	}

	// The phone sends the same request again (a crash before it removed its copy): the
	// receipt keeps what the first run deleted.
	be.put(t, uplink.PurgeKey(fac, dev, good), req(dev, good, key))
	receipts = nil
	if err := v.Purge(context.Background(), enrolled, time.Now, func(o vault.Outcome) {
		if o.Err == nil {
			receipts = append(receipts, o.Receipt)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(receipts) != 1 || len(receipts[0].Deleted) != 4 {
		t.Errorf("second run: %+v", receipts)
	}
}

// TestFetch fetches one call's objects and nothing of its neighbours, where recordings
// decrypt reads them.
func TestFetch(t *testing.T) { forEachBackend(t, testFetch) }

func testFetch(t *testing.T, be backend) {
	for _, c := range []string{good, keep} {
		for _, name := range []string{"000000.age", "000001.age", "manifest.age", "record.age"} {
			be.put(t, uplink.CallPrefix(fac, dev, c)+name, []byte(c+name))
		}
	}
	v, err := vault.New(be.admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	n, err := v.Fetch(context.Background(), fac, dev, good, out)
	if err != nil || n != 4 {
		t.Fatalf("Fetch: %d %v, want 4 objects", n, err)
	}
	local := spool.FetchedPaths(out)
	for p, want := range map[string]string{
		local.Manifest: good + "manifest.age", local.Record: good + "record.age",
		filepath.Join(local.SegmentDir, "000001.age"): good + "000001.age",
	} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	if _, err := v.Fetch(context.Background(), fac, dev, bad, t.TempDir()); err == nil {
		t.Error("Fetch of a call the vault does not hold succeeded")
	}
	// Names from the command line are not paths: nothing outside the vault is read.
	for _, f := range []string{"..", "a/b", ""} {
		if _, err := v.Fetch(context.Background(), f, dev, good, t.TempDir()); !errors.Is(err, spool.ErrBadID) {
			t.Errorf("Fetch with facility %q: %v, want ErrBadID", f, err)
		}
	}
}

// TestDirVault covers what only a directory has: a phone's half-written temporary file is
// not an object, and a purged call leaves no empty directory naming it.
func TestDirVault(t *testing.T) {
	dir := t.TempDir()
	phone := uplink.NewDir(dir, 0)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	put := func(k string, b []byte) {
		if err := phone.Put(context.Background(), k, bytes.NewReader(b), int64(len(b)), sha256.Sum256(b)); err != nil {
			t.Fatal(err)
		}
	}
	req, err := purge.Sign(purge.Request{DeviceID: dev, CallID: good, Reason: purge.ReasonPrivileged, RegistryVersion: 7, Requested: time.Now()}, key)
	if err != nil {
		t.Fatal(err)
	}
	put(uplink.ManifestKey(fac, dev, good), []byte("m"))
	put(uplink.PurgeKey(fac, dev, good), req)
	callDir := filepath.Join(dir, filepath.FromSlash(uplink.CallPrefix(fac, dev, good)))
	tmp := filepath.Join(callDir, ".000000.age.tmp123")
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(uplink.Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := v.Fetch(context.Background(), fac, dev, good, t.TempDir()); err != nil || n != 1 {
		t.Errorf("Fetch: %d %v, want the manifest alone", n, err)
	}
	os.Remove(tmp) // the phone's write finished or was cut short and cleaned
	var got []vault.Outcome
	if err := v.Purge(context.Background(), vault.Enrolled{dev: identity.Fingerprint(key.Public().(ed25519.PublicKey))}, time.Now,
		func(o vault.Outcome) { got = append(got, o) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Err != nil || len(got[0].Receipt.Deleted) != 1 {
		t.Fatalf("purge: %+v", got)
	}
	if _, err := os.Stat(callDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the purged call's directory is left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(uplink.ReceiptKey(fac, dev, good)))); err != nil {
		t.Errorf("no receipt: %v", err)
	}
	// A vault directory that is not there is an error, not an empty vault: a typo in
	// vault.json must not read as "nothing to purge".
	v, err = vault.New(uplink.Config{Dir: filepath.Join(dir, "nowhere")}, nil)
	if err == nil {
		err = v.Purge(context.Background(), nil, time.Now, func(vault.Outcome) {})
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a vault directory that does not exist: %v, want fs.ErrNotExist", err)
	}
}

var enrolledCases = []struct {
	text string
	ok   bool
}{
	{"# devices of fac1\nwp-0123456789abcdef 0123456789abcdef0123456789abcdef\n\nwp-1 ABCDEF0123456789abcdef0123456789\n", true},
	{"", true},
	{"wp-1\n", false},
	{"wp-1 0123\n", false},
	{"wp-1 0123456789abcdef0123456789abcdeg\n", false},
	{"wp/1 0123456789abcdef0123456789abcdef\n", false},
	{"wp-1 0123456789abcdef0123456789abcdef\nwp-1 0123456789abcdef0123456789abcdef\n", false},
}

func TestParseEnrolled(t *testing.T) {
	for _, tc := range enrolledCases {
		e, err := vault.ParseEnrolled([]byte(tc.text))
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.text, err)
		}
		if err != nil && !errors.Is(err, vault.ErrEnrolled) {
			t.Errorf("%q: error not ErrEnrolled: %v", tc.text, err)
		}
		if tc.ok && len(tc.text) > 10 && e["wp-1"] != "abcdef0123456789abcdef0123456789" {
			t.Errorf("fingerprints are not kept in lower case: %v", e)
		}
	}
}

func FuzzParseEnrolled(f *testing.F) {
	for _, tc := range enrolledCases {
		f.Add([]byte(tc.text))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := vault.ParseEnrolled(b)
		if err != nil {
			return
		}
		for d, fp := range e {
			if d == "" || len(fp) != 32 || strings.ToLower(fp) != fp {
				t.Fatalf("accepted %q %q", d, fp)
			}
		}
	})
}
