package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/release"
)

// go-tuf's updater, the phone's library, resolves a published firmware release and its index
// through the firmware role from the repository served over HTTP; the index matches the
// image, and the metadata is what release.Pick chooses from.
func TestFirmwareThroughTheUpdater(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	images := map[uint64][]byte{}
	for v := uint64(1); v <= 2; v++ {
		b := bytes.Repeat([]byte{byte(v), 0xa5, byte(v * 3)}, 5000) // 15000 bytes: 4 blocks
		images[v] = b
		p := filepath.Join(t.TempDir(), "sim.img")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := PublishFirmware(dir, "sim", v, p, Firmware{MinVersion: v - 1, Floor: v - 1}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "repo"))))
	t.Cleanup(srv.Close)
	r, _, err := Repo(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.New(srv.URL+"/metadata", root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = srv.URL + "/targets"
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatal(err)
	}
	var targets []release.Target
	for v := uint64(1); v <= 2; v++ {
		ti, err := up.GetTargetInfo(release.ImageTarget("sim", v))
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, release.Target{Name: release.ImageTarget("sim", v), Custom: *ti.Custom})
	}
	c := release.Pick(release.Phone{DeviceID: "dev-1", Hardware: "sim", Committed: 1}, targets)
	if c.Target != "firmware/sim_2.img" || c.Floor != 1 {
		t.Fatalf("picked %+v", c)
	}
	img, err := up.GetTargetInfo(c.Target)
	if err != nil {
		t.Fatal(err)
	}
	idxInfo, err := up.GetTargetInfo(c.Release.Index)
	if err != nil {
		t.Fatal(err)
	}
	_, idxBytes, err := up.DownloadTarget(idxInfo, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(idxBytes); hex.EncodeToString(s[:]) != c.Release.IndexSHA256 {
		t.Fatal("the index's bytes do not match index_sha256")
	}
	idx, err := blockindex.Open(bytes.NewReader(idxBytes), int64(len(idxBytes)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(images[2])
	if s := idx.Sum(); s != sum || !bytes.Equal(img.Hashes["sha256"], sum[:]) || idx.Len() != img.Length || idx.Blocks() != 4 {
		t.Fatalf("index of %d bytes, %d blocks; image target %d bytes", idx.Len(), idx.Blocks(), img.Length)
	}
	_, b, err := up.DownloadTarget(img, "", "")
	if err != nil || !bytes.Equal(b, images[2]) {
		t.Fatalf("image: %v", err)
	}
}
