package install_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDeltaExt4 installs an ext4 image in which one file changed since the running one
// (both built by Debian's mke2fs from a directory, as a firmware build would), with the
// running image to copy from (/delta) and without (/full), and reports the bytes of the
// image fetched over HTTP (fetched-B) and their share of the image (fetched-%; the goal for
// a delta is under 5%).
func BenchmarkDeltaExt4(b *testing.B) {
	mkfs := findMke2fs(b)
	work := b.TempDir()
	tree := filepath.Join(work, "root")
	// A root file system of 48 files, from 4 KiB to about 700 KiB (11 MiB in all).
	for i := range 48 {
		name := filepath.Join(tree, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(name, randomBytes(uint64(100+i), 4096+(i*i*331)%(700<<10)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	running := mkExt4(b, mkfs, tree, filepath.Join(work, "running.img"))
	// One file of 300 KiB rewritten in place, as an update of one program would.
	changed := filepath.Join(tree, "d0", "f30")
	fi, err := os.Stat(changed)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(changed, randomBytes(999, int(fi.Size())), 0o644); err != nil {
		b.Fatal(err)
	}
	r := releaseOf(b, mkExt4(b, mkfs, tree, filepath.Join(work, "new.img")))
	for _, delta := range []bool{true, false} {
		name := map[bool]string{true: "delta", false: "full"}[delta]
		b.Run(name, func(b *testing.B) {
			var from io.ReaderAt // the running slot; none for /full
			var fromLen int64
			if delta {
				f, err := os.Open(running)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					b.Fatal(err)
				}
				from, fromLen = f, fi.Size()
			}
			var fetched int64
			for b.Loop() {
				r.fresh(b)
				r.wipeSlot(b)
				r.served.reset()
				res, err := r.install(b, context.Background(), from, fromLen)
				if err != nil {
					b.Fatal(err)
				}
				if sent := r.served.sent(); sent != res.Fetched {
					b.Fatalf("the server sent %d bytes of the image, the install says it fetched %d", sent, res.Fetched)
				}
				fetched = res.Fetched
			}
			b.ReportMetric(float64(fetched), "fetched-B")
			b.ReportMetric(100*float64(fetched)/float64(r.size), "fetched-%")
		})
	}
}

// findMke2fs finds Debian's mke2fs (e2fsprogs), which lives in /usr/sbin, outside a user's
// PATH; without it the benchmark is skipped.
func findMke2fs(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{"mke2fs", "/usr/sbin/mke2fs", "/sbin/mke2fs"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	tb.Skip("no mke2fs: install Debian's e2fsprogs (make deps does)")
	return ""
}

// mkExt4 builds a 32 MiB ext4 image of dir into out, with everything mke2fs would pick at
// random (UUID, hash seed, times) fixed, so that two builds differ only where the trees do.
func mkExt4(tb testing.TB, mkfs, dir, out string) string {
	tb.Helper()
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Chtimes(p, when, when)
		}
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-b", "4096", "-U", "6c1b2a4e-2f0e-4c59-9d43-0f6b3f6f1a10",
		"-E", "hash_seed=0e8f6d3a-5b1c-4f27-a7e9-2d4c6b8a0f13,root_owner=0:0", "-d", dir, out, "32M")
	cmd.Env = append(os.Environ(), fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", when.Unix()), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", when.Unix()))
	if o, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%v: %v\n%s", cmd, err, o)
	}
	return out
}
