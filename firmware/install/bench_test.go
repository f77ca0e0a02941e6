package install_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/install"
	"github.com/wallphone/wallphone/firmware/slot"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/tufclient/tuftest"
)

// bigRelease is a release whose image lives in a file (never in the test's memory), served by
// a local HTTP server as a signed target, and a file slot for it.
type bigRelease struct {
	repo         *tuftest.Repo
	served       *served
	client       *tufclient.Client
	image, index tufclient.Target
	indexSum     [sha256.Size]byte
	imgPath      string
	slotPath     string
	state        string
	size         int64
}

func newBigRelease(tb testing.TB, size int64) *bigRelease {
	tb.Helper()
	img := filepath.Join(tb.TempDir(), "image.img")
	writeRandomFile(tb, img, size, 42)
	return releaseOf(tb, img)
}

// releaseOf publishes the image in the file at path as a release (its index beside it) and
// makes an empty file slot of its size.
func releaseOf(tb testing.TB, path string) *bigRelease {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	r := &bigRelease{repo: tuftest.New(tb, true), served: &served{}, imgPath: path,
		slotPath: filepath.Join(dir, "b.img"), state: filepath.Join(dir, "state"), size: fi.Size()}
	size := r.size
	f, err := os.Open(r.imgPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	x, err := blockindex.Build(bufio.NewReaderSize(f, 1<<20), bs)
	if err != nil {
		tb.Fatal(err)
	}
	var ib bytes.Buffer
	x.WriteTo(&ib)
	r.indexSum = sha256.Sum256(ib.Bytes())
	r.repo.Delegate(metadata.TARGETS, "firmware", []tuftest.Key{tuftest.NewKey(tb)}, 1, true, "firmware/*")
	r.repo.AddTarget("firmware", "firmware/phone_2.bidx", ib.Bytes(), nil)
	r.repo.AddTargetFile("firmware", "firmware/phone_2.img", r.imgPath, nil)
	r.repo.Intercept(r.served.count)
	r.repo.Publish()
	c, err := tufclient.New(tufclient.Options{Dir: filepath.Join(r.state, "tuf"), Root: r.repo.RootJSON(), URL: r.repo.Srv.URL})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	r.client = c
	if r.image, err = c.Target("firmware/phone_2.img"); err != nil {
		tb.Fatal(err)
	}
	if r.index, err = c.Target("firmware/phone_2.bidx"); err != nil {
		tb.Fatal(err)
	}
	s, err := slot.CreateFile(r.slotPath, size, bs)
	if err != nil {
		tb.Fatal(err)
	}
	s.Close()
	return r
}

// fresh forgets any progress and the kept index, so that the next install starts over.
func (r *bigRelease) fresh(tb testing.TB) {
	tb.Helper()
	if err := os.RemoveAll(filepath.Join(r.state, "firmware")); err != nil {
		tb.Fatal(err)
	}
	os.Remove(filepath.Join(r.state, "progress.json"))
}

func (r *bigRelease) install(tb testing.TB, ctx context.Context, running io.ReaderAt, runningLen int64) (install.Result, error) {
	tb.Helper()
	s, err := slot.OpenFile(r.slotPath, bs)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	return install.Install(ctx, install.Options{
		Fetcher: r.client, Image: r.image, Index: r.index, IndexSHA256: r.indexSum, Slot: s,
		Running: running, RunningLen: runningLen,
		Progress: install.FileStore{Path: filepath.Join(r.state, "progress.json")}, Dir: filepath.Join(r.state, "firmware"),
	})
}

func writeRandomFile(tb testing.TB, path string, size int64, seed uint64) {
	tb.Helper()
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rng := rand.NewChaCha8(key)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		chunk := buf[:min(left, int64(len(buf)))]
		rng.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			tb.Fatal(err)
		}
	}
}

// heapPeak samples the live heap while it runs; stop returns the highest seen above the
// heap at the start. Its goroutine is waited for by stop.
func heapPeak() (stop func() int64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() int64 { metrics.Read(sample); return int64(sample[0].Value.Uint64()) }
	base := read()
	done := make(chan struct{})
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			peak = max(peak, read())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() int64 {
		close(done)
		wg.Wait()
		return max(peak-base, 0)
	}
}

// cpuTime is the CPU time (user and system) of this process, or with children of the
// processes it waited for.
func cpuTime(children bool) time.Duration {
	who := syscall.RUSAGE_SELF
	if children {
		who = syscall.RUSAGE_CHILDREN
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU seconds per op since cpu0, as cpuTime(children) counts them.
func reportCPU(b *testing.B, cpu0 time.Duration, children bool) {
	b.ReportMetric((cpuTime(children)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// resetHWM resets the process's peak resident set (VmHWM), and hwm reads it. It first
// returns to the system the heap the runtime no longer uses (the setup's, building a large
// image and its index), so that the peak that follows is what is live then, and what the
// install adds.
func resetHWM() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func hwm() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestMemoryBounded: the live heap an install adds stays within its two buffers and the
// plan's per-block cost, whatever the image's or the batch's size: a 16 MiB and a 64 MiB
// install, each with a running image to plan against, differ by no more than the plan's
// per-block bytes.
func TestMemoryBounded(t *testing.T) {
	sizes := []int64{16 << 20, 64 << 20}
	if testing.Short() {
		sizes = []int64{8 << 20, 24 << 20}
	}
	for _, size := range sizes {
		r := newBigRelease(t, size)
		running := filepath.Join(t.TempDir(), "a.img")
		writeRandomFile(t, running, size, 7)
		f, err := os.Open(running)
		if err != nil {
			t.Fatal(err)
		}
		stop := heapPeak()
		_, err = r.install(t, context.Background(), f, size)
		peak := stop()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d MiB image: peak live heap added %.2f MiB", size>>20, float64(peak)/(1<<20))
		// Two buffers (one receiving, one reading back), the plan (8 bytes and a map entry
		// per running block: under 48 bytes) and the CRC-32C of the blocks in flight (4 bytes
		// each, for about three batches) are what the install keeps live. The metric also
		// counts garbage not yet collected (the HTTP client's and server's buffers), and with
		// GOGC=100 the heap grows to twice the live heap before a collection: so twice that,
		// and 2 MiB for the test's own server. Holding a batch (16 MiB) or the image is over.
		live := 2*int64(install.BufferSize) + 48*size/bs + 12*install.DefaultBatchSize/bs
		if limit := 2*live + 2<<20; peak > limit {
			t.Errorf("%d MiB image: peak heap %d, over %d", size>>20, peak, limit)
		}
	}
}

// BenchmarkInstall installs a 512 MiB image (32 MiB with -short) from a local HTTP server
// into a file slot, fetched whole (no running image), beside, in the same run: sha256sum plus
// dd of the same bytes into a file (conv=fdatasync), and a Go baseline fetching the image
// whole over the same server while hashing it and writing it to a file, then fdatasync.
// It reports the live heap the install added and the process's peak RSS during it.
func BenchmarkInstall(b *testing.B) {
	size := int64(512 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	r := newBigRelease(b, size)
	b.Run("install", func(b *testing.B) {
		b.SetBytes(size)
		var peak, rss int64
		cpu0 := cpuTime(false)
		for b.Loop() {
			b.StopTimer()
			r.fresh(b)
			resetHWM()
			stop := heapPeak()
			b.StartTimer()
			if _, err := r.install(b, context.Background(), nil, 0); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			peak = max(peak, stop())
			rss = max(rss, hwm())
			b.StartTimer()
		}
		b.ReportMetric(float64(peak)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
		reportCPU(b, cpu0, false)
	})
	b.Run("sha256sum+dd", func(b *testing.B) {
		if _, err := exec.LookPath("dd"); err != nil {
			b.Skip("no dd")
		}
		out := filepath.Join(b.TempDir(), "dd.img")
		b.SetBytes(size)
		cpu0 := cpuTime(true)
		for b.Loop() {
			if o, err := exec.Command("sha256sum", r.imgPath).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, o)
			}
			if o, err := exec.Command("dd", "if="+r.imgPath, "of="+out, "bs=1M", "conv=fdatasync", "status=none").CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, o)
			}
		}
		reportCPU(b, cpu0, true)
	})
	b.Run("go-get+sha256+write", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "go.img")
		url := fmt.Sprintf("%s/targets/firmware/%x.phone_2.img", r.repo.Srv.URL, r.image.Hashes["sha256"])
		b.SetBytes(size)
		cpu0 := cpuTime(false)
		for b.Loop() {
			res, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(out)
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(io.MultiWriter(f, h), res.Body); err != nil {
				b.Fatal(err)
			}
			res.Body.Close()
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if !bytes.Equal(h.Sum(nil), r.image.Hashes["sha256"]) {
				b.Fatal("baseline read other bytes")
			}
		}
		reportCPU(b, cpu0, false)
	})
}

// BenchmarkResume stops an install at a random point of the image and resumes it, and
// reports the bytes of the image the server sent twice (goal: at most a block, 4 KiB):
// /cancel cancels the install's context, as a dropped connection or a shutdown does;
// /kill-9 kills the process installing (a child process, this test binary run again) with
// SIGKILL while it waits for more of the image, and resumes in this one.
func BenchmarkResume(b *testing.B) {
	size := int64(512 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	r := newBigRelease(b, size)
	path := r.imagePath()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	b.Run("cancel", func(b *testing.B) {
		var worst, total int64
		n := 0
		for b.Loop() {
			r.fresh(b)
			r.served.reset()
			ctx, cancel := context.WithCancel(context.Background())
			cut := rng.Int64N(size)
			r.served.setFault(func(w http.ResponseWriter, req *http.Request) http.ResponseWriter {
				return &cancelAfter{ResponseWriter: w, left: cut - r.served.sent(), cancel: cancel}
			})
			_, err := r.install(b, ctx, nil, 0)
			cancel()
			if err == nil {
				b.Fatal("not cancelled")
			}
			r.served.setFault(nil)
			mid := r.served.snapshot(path)
			if _, err := r.install(b, context.Background(), nil, 0); err != nil {
				b.Fatal(err)
			}
			again := refetched(mid, r.served.snapshot(path))
			worst = max(worst, again)
			total += again
			n++
		}
		b.ReportMetric(float64(worst), "max-refetched-B")
		b.ReportMetric(float64(total)/float64(n), "refetched-B/op")
	})
	b.Run("kill-9", func(b *testing.B) {
		var worst, total int64
		n := 0
		for b.Loop() {
			again, _ := r.killAndResume(b, rng.Int64N(size))
			worst = max(worst, again)
			total += again
			n++
		}
		b.ReportMetric(float64(worst), "max-refetched-B")
		b.ReportMetric(float64(total)/float64(n), "refetched-B/op")
	})
}
