package tufrepo

import (
	"crypto/ed25519"
	"errors"
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
