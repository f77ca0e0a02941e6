package blockindex_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wallphone/wallphone/firmware/blockindex"
)

// mke2fs finds Debian's mke2fs (e2fsprogs), which lives in /usr/sbin, outside a user's PATH.
func mke2fs(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mke2fs"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mke2fs", "/sbin/mke2fs"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no mke2fs: install Debian's e2fsprogs (make deps does)")
	return ""
}

// ext4Image builds an ext4 image of dir the way a firmware build would, with everything
// that mke2fs would otherwise pick at random fixed, so that two builds differ only where
// the trees differ.
func ext4Image(t *testing.T, mkfs, dir, out string) []byte {
	t.Helper()
	cmd := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-b", "4096",
		"-U", "6c1b2a4e-2f0e-4c59-9d43-0f6b3f6f1a10",
		"-E", "hash_seed=0e8f6d3a-5b1c-4f27-a7e9-2d4c6b8a0f13,root_owner=0:0",
		"-d", dir, out, "32M")
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=1767225600", "SOURCE_DATE_EPOCH=1767225600")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, b)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// rootfs writes a small root file system: 48 files from 4 KiB to about 700 KiB (11 MiB in
// all) in three directories, with fixed times.
func rootfs(t *testing.T, dir string) {
	t.Helper()
	for i := range 48 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%3))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		size := 4096 + (i*i*331)%(700<<10)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d", i)), randomBytes(uint64(100+i), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc.conf"), []byte("version=1\nlevel=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fixTimes(t, dir)
}

func fixTimes(t *testing.T, dir string) {
	t.Helper()
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// One file changed between two builds of an ext4 image: the delta fetches a small part of
// the image (the goal: under 5%), and the plan rebuilds the new image exactly.
func TestExt4OneFileChanged(t *testing.T) {
	mkfs := mke2fs(t)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"a 300 KiB file rewritten in place", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "d0", "f30")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, randomBytes(999, int(fi.Size())), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file grown by 64 KiB", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "d2", "f11")
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(randomBytes(998, 64<<10)); err != nil {
				t.Fatal(err)
			}
		}},
		{"a line of a config file edited", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "etc.conf"), []byte("version=2\nlevel=3\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file added", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "d0", "new"), randomBytes(997, 100<<10), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "a line of a config file edited" {
				t.Skip("one case in -short mode (emulated ARM runs): each builds two 32 MiB images")
			}
			work := t.TempDir()
			tree := filepath.Join(work, "root")
			rootfs(t, tree)
			oldImg := ext4Image(t, mkfs, tree, filepath.Join(work, "old.img"))
			tc.change(t, tree)
			fixTimes(t, tree)
			newImg := ext4Image(t, mkfs, tree, filepath.Join(work, "new.img"))

			x, err := blockindex.Build(bytes.NewReader(newImg), blockindex.DefaultBlockSize)
			if err != nil {
				t.Fatal(err)
			}
			d, err := blockindex.Plan(bytes.NewReader(oldImg), int64(len(oldImg)), x, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			checkDelta(t, d, oldImg, newImg, x)
			frac := float64(d.FetchBytes) / float64(len(newImg))
			t.Logf("fetch %d of %d bytes (%.2f%%, %d blocks in %d ranges), copy %d",
				d.FetchBytes, len(newImg), 100*frac, d.FetchBytes/blockindex.DefaultBlockSize, len(d.Fetches), d.CopyBytes)
			if frac >= 0.05 {
				t.Errorf("the delta fetches %.2f%% of the image, the goal is under 5%%", 100*frac)
			}
		})
	}
}
