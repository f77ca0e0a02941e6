package tufrepo

import (
	"crypto/ed25519"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func keysFor(t *testing.T) (map[string]RoleKeys, Signers) {
	t.Helper()
	rk, s := map[string]RoleKeys{}, Signers{}
	for _, role := range roles {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		rk[role] = RoleKeys{Keys: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}, Threshold: 1}
		s[role] = []ed25519.PrivateKey{k}
	}
	return rk, s
}

func TestInitPublish(t *testing.T) {
	dir := t.TempDir()
	rk, s := keysFor(t)
	if err := Init(dir, rk, s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, rk, s, DefaultExpiry, time.Now()); err == nil {
		t.Fatal("second Init over a repository succeeded")
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(src, []byte(`{"version":3}`), 0o600)
	for _, bad := range []string{"", "/abs", "../up", "a/../../b", "a//b"} {
		if err := r.AddTarget(bad, src, nil); err == nil {
			t.Errorf("target name %q accepted", bad)
		}
	}
	if err := r.AddTarget("policy/demo.json", src, map[string]int{"version": 3}); err != nil {
		t.Fatal(err)
	}
	// Offline keys stay away: publishing needs targets, snapshot and timestamp only.
	online := Signers{Targets: s[Targets], Snapshot: s[Snapshot], Timestamp: s[Timestamp]}
	if err := r.Commit(online, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.TargetsVersion() != 2 || r.Target("policy/demo.json") == nil || strings.Join(r.TargetNames(), ",") != "policy/demo.json" {
		t.Fatalf("after publish: v%d %v", r.TargetsVersion(), r.TargetNames())
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "targets", "policy", "*.demo.json"))
	if len(matches) != 1 {
		t.Fatalf("target files %v", matches)
	}
	// TargetPath is the file phones download, bytes as published.
	if p, err := r.TargetPath("policy/demo.json"); err != nil || p != matches[0] {
		t.Fatalf("TargetPath = %q, %v; want %q", p, err, matches[0])
	}
	if _, err := r.TargetPath("registry.reg"); !errors.Is(err, ErrNoTarget) {
		t.Fatalf("TargetPath of a missing target: %v", err)
	}
	// Without the timestamp key nothing is signed.
	if err := r.Refresh(Signers{}, DefaultExpiry, time.Now()); !errors.Is(err, ErrThreshold) {
		t.Fatalf("refresh without key: %v", err)
	}
}

func TestInitChecks(t *testing.T) {
	rk, s := keysFor(t)
	bad := map[string]RoleKeys{}
	for k, v := range rk {
		bad[k] = v
	}
	bad[Targets] = RoleKeys{Keys: rk[Targets].Keys, Threshold: 2}
	if err := Init(t.TempDir(), bad, s, DefaultExpiry, time.Now()); err == nil {
		t.Fatal("threshold above key count accepted")
	}
	delete(bad, Targets)
	if err := Init(t.TempDir(), bad, s, DefaultExpiry, time.Now()); err == nil {
		t.Fatal("missing role accepted")
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotRepo) {
		t.Fatalf("open empty: %v", err)
	}
}

func TestKeyFiles(t *testing.T) {
	k, _ := GenerateKey()
	priv, err := MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := MarshalPublicKey(k.Public().(ed25519.PublicKey))
	k2, err := ParsePrivateKey(priv)
	if err != nil || !k2.Equal(k) {
		t.Fatalf("private round trip: %v", err)
	}
	for _, b := range [][]byte{pub, priv} {
		p, err := ParsePublicKey(b)
		if err != nil || !p.Equal(k.Public()) {
			t.Fatalf("public from %q: %v", b[:20], err)
		}
	}
	if _, err := ParsePrivateKey(pub); err == nil {
		t.Fatal("public key read as private")
	}
	if _, err := ParsePublicKey([]byte("junk")); err == nil {
		t.Fatal("junk read as a key")
	}
}

// A timestamp.json put back to an older one (a restore from backup, a sync from a mirror that
// fell behind) names an older snapshot than the repository holds. Publishing from it would
// write snapshot and targets versions phones have already seen, with other contents: they
// refuse them and take no update again until the versions pass what they saw. Open refuses,
// naming the versions, and nothing is written.
func TestTimestampPutBack(t *testing.T) {
	dir := t.TempDir()
	rk, s := keysFor(t)
	if err := Init(dir, rk, s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "p.json")
	ts := filepath.Join(dir, "metadata", "timestamp.json")
	var old []byte
	for v := range 3 {
		if v == 1 {
			var err error
			if old, err = os.ReadFile(ts); err != nil {
				t.Fatal(err)
			}
		}
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(src, []byte(strings.Repeat("x", v)), 0o600)
		if err := r.AddTarget("policy/demo.json", src, nil); err != nil {
			t.Fatal(err)
		}
		if err := r.Commit(s, DefaultExpiry, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	newest, _ := os.ReadFile(ts)
	if err := os.WriteFile(ts, old, 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshotFiles(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrPutBack) || !strings.Contains(err.Error(), "version 2 (snapshot version 2)") || !strings.Contains(err.Error(), "version 4 (snapshot version 4)") {
		t.Fatalf("open with timestamp.json put back: %v, want ErrPutBack naming timestamp versions 2 and 4", err)
	}
	if after := snapshotFiles(t, dir); !maps.Equal(before, after) {
		t.Fatal("metadata changed by a refused open")
	}
	// The newest timestamp put back in its place, the repository publishes again.
	os.WriteFile(ts, newest, 0o644)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r, err = Open(dir); err != nil || r.timestamp.Signed.Version != 5 {
		t.Fatalf("after the refresh: %v", err)
	}
}

// A publish cut short after it wrote a role's new metadata and before the timestamp (here:
// the timestamp key missing) published nothing phones saw: the next publish goes on from it.
func TestPublishCutShort(t *testing.T) {
	dir := t.TempDir()
	rk, s := keysFor(t)
	if err := Init(dir, rk, s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(src, []byte("x"), 0o600)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget("policy/demo.json", src, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(Signers{Targets: s[Targets], Snapshot: s[Snapshot]}, DefaultExpiry, time.Now()); !errors.Is(err, ErrThreshold) {
		t.Fatalf("commit without the timestamp key: %v", err)
	}
	if r, err = Open(dir); err != nil {
		t.Fatalf("open after a publish cut short: %v", err)
	}
	if err := r.AddTarget("policy/demo.json", src, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r, err = Open(dir); err != nil || r.TargetsVersion() != 2 || r.Target("policy/demo.json") == nil {
		t.Fatalf("after the publish: %v", err)
	}
}

// snapshotFiles is every metadata file of the repository with its contents.
func snapshotFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	names, _ := filepath.Glob(filepath.Join(dir, "metadata", "*"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(n)] = string(b)
	}
	return m
}
