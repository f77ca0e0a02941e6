package blockindex_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/wallphone/wallphone/firmware/blockindex"
)

const benchImage = 64 << 20

// cpuTime reports, beside the wall clock, the CPU time the process spent per operation: on a
// loaded machine the wall clock of a benchmark and of its baseline can drift apart, the CPU
// time they cost does not. Call it before the loop and call what it returns after.
func cpuTime(b *testing.B) func() {
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := used()
	return func() {
		b.ReportMetric(float64(used()-start)/float64(b.N)/1e6, "cpu-ms/op")
	}
}

// BenchmarkBuild indexes a 64 MiB image in 4 KiB blocks. Build hashes every byte twice (its
// block's hash and the whole image's); the baseline is one plain SHA-256 of the same bytes
// in the same run.
func BenchmarkBuild(b *testing.B) {
	img := randomBytes(1, benchImage)
	b.Run("blockindex", func(b *testing.B) {
		b.SetBytes(benchImage)
		defer cpuTime(b)()
		for b.Loop() {
			if _, err := blockindex.Build(bytes.NewReader(img), blockindex.DefaultBlockSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sha256-baseline", func(b *testing.B) { sha256Baseline(b, img) })
}

// BenchmarkPlan plans the update of a 64 MiB running image to one with 1% of its blocks
// changed, scattered. Plan has to hash the running image once, so the baseline is a plain
// SHA-256 of the running image's bytes in the same run.
func BenchmarkPlan(b *testing.B) {
	old := randomBytes(2, benchImage)
	img := bytes.Clone(old)
	patch := randomBytes(3, blockindex.DefaultBlockSize)
	for off := 0; off < len(img); off += 100 * blockindex.DefaultBlockSize {
		copy(img[off:], patch)
		patch[0]++
	}
	x, err := blockindex.Build(bytes.NewReader(img), blockindex.DefaultBlockSize)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("plan", func(b *testing.B) {
		b.SetBytes(benchImage)
		var d *blockindex.Delta
		defer cpuTime(b)()
		for b.Loop() {
			if d, err = blockindex.Plan(bytes.NewReader(old), int64(len(old)), x, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(d.FetchBytes)/benchImage*100, "%fetched")
	})
	b.Run("sha256-baseline", func(b *testing.B) { sha256Baseline(b, old) })
}

// sha256Baseline is one plain SHA-256 of data, streamed.
func sha256Baseline(b *testing.B, data []byte) {
	b.SetBytes(int64(len(data)))
	defer cpuTime(b)()
	for b.Loop() {
		h := sha256.New()
		if _, err := io.Copy(h, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
	}
}
