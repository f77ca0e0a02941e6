package firmware_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/backoffice/firmware"
	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/release"
)

// image writes n bytes of a pattern to a file.
func image(t *testing.T, n int, seed byte) string {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	p := filepath.Join(t.TempDir(), "fw.img")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func demoFacility(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := demo.Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// What is published is what phones read: the image with metadata that parses, and an index
// whose bytes match the metadata's hash and whose whole-image hash is the image target's.
func TestAddPublishes(t *testing.T) {
	dir := demoFacility(t)
	img := image(t, 3*4096+100, 1)
	r, signers, err := demo.Repo(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := firmware.Add(r, firmware.Release{Image: img, Hardware: "sim", Version: 3, MinVersion: 1, Floor: 2, Rollout: 40})
	if err != nil {
		t.Fatal(err)
	}
	if a.Blocks != 4 || a.ImageLength != 3*4096+100 || a.IndexLength != blockindex.HeaderSize+4*32 {
		t.Fatalf("%+v", a)
	}
	if firmware.Highest(r, "sim") != 3 {
		t.Fatal("a pending release is not counted")
	}
	if err := r.Commit(signers, demo.Expiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, _, err = demo.Repo(dir)
	if err != nil {
		t.Fatal(err)
	}
	it := r.Target("firmware/sim_3.img")
	if it == nil || it.Custom == nil {
		t.Fatal("image not published")
	}
	rel, err := release.Parse("firmware/sim_3.img", *it.Custom)
	want := release.Release{Version: 3, Hardware: "sim", MinVersion: 1, Floor: 2, Index: "firmware/sim_3.bidx", IndexSHA256: rel.IndexSHA256, Rollout: 40}
	if err != nil || rel != want || rel != a.Release {
		t.Fatalf("%+v %v", rel, err)
	}
	p, err := r.TargetPath(rel.Index)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != rel.IndexSHA256 {
		t.Fatal("index bytes do not match index_sha256")
	}
	idx, err := blockindex.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s := idx.Sum(); !bytes.Equal(s[:], it.Hashes["sha256"]) || idx.Len() != it.Length {
		t.Fatal("the index's image hash is not the image target's")
	}
	if firmware.Highest(r, "sim") != 3 || firmware.Highest(r, "rpi4") != 0 {
		t.Fatal("Highest")
	}
}

func TestAddRefuses(t *testing.T) {
	dir := demoFacility(t)
	img := image(t, 5000, 2)
	if err := demo.PublishFirmware(dir, "sim", 5, img, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.img")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		rel  firmware.Release
		want error
	}{
		{"the same version", firmware.Release{Image: img, Hardware: "sim", Version: 5, Rollout: 100}, firmware.ErrNotNewer},
		{"an older version", firmware.Release{Image: img, Hardware: "sim", Version: 4, Rollout: 100}, firmware.ErrNotNewer},
		{"floor above the version", firmware.Release{Image: img, Hardware: "sim", Version: 6, Floor: 7, Rollout: 100}, release.ErrMetadata},
		{"min_version above the version", firmware.Release{Image: img, Hardware: "sim", Version: 6, MinVersion: 7, Rollout: 100}, release.ErrMetadata},
		{"bad hardware", firmware.Release{Image: img, Hardware: "Sim_1", Version: 6, Rollout: 100}, release.ErrHardware},
		{"version 0", firmware.Release{Image: img, Hardware: "sim", Version: 0, Rollout: 100}, release.ErrVersion},
		{"rollout 0", firmware.Release{Image: img, Hardware: "sim", Version: 6}, release.ErrMetadata},
		{"empty image", firmware.Release{Image: empty, Hardware: "sim", Version: 6, Rollout: 100}, firmware.ErrEmptyImage},
		{"no image", firmware.Release{Image: empty + ".gone", Hardware: "sim", Version: 6, Rollout: 100}, os.ErrNotExist},
	}
	for _, c := range cases {
		r, _, err := demo.Repo(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := firmware.Add(r, c.rel); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Each board has its own versions.
	if err := demo.PublishFirmware(dir, "rpi4", 1, img, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	r, _, _ := demo.Repo(dir)
	if firmware.Highest(r, "sim") != 5 || firmware.Highest(r, "rpi4") != 1 {
		t.Fatal("Highest per board")
	}
}

// A repository that does not delegate firmware has no one to sign it: refused, not signed
// by the targets key.
func TestAddNeedsTheRole(t *testing.T) {
	dir := t.TempDir()
	k, err := tufrepo.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, signers := map[string]tufrepo.RoleKeys{}, tufrepo.Signers{}
	for _, role := range []string{tufrepo.Root, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp} {
		keys[role] = tufrepo.RoleKeys{Keys: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}, Threshold: 1}
		signers[role] = []ed25519.PrivateKey{k}
	}
	if err := tufrepo.Init(dir, keys, signers, tufrepo.DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := tufrepo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := firmware.Add(r, firmware.Release{Image: image(t, 10, 3), Hardware: "sim", Version: 1, Rollout: 100}); !errors.Is(err, tufrepo.ErrNoRole) {
		t.Fatalf("%v", err)
	}
}
