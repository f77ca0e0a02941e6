package uplink_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/uplink"
	"github.com/wallphone/wallphone/uplink/s3test"
)

// benchSegments is the larger backlog of BenchmarkDrain: UPLINK_BENCH_SEGMENTS, default
// 2000 (10000 takes about a minute per side and 800 MB of disk).
func benchSegments(b *testing.B) int {
	if s := os.Getenv("UPLINK_BENCH_SEGMENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("UPLINK_BENCH_SEGMENTS=%q", s)
		}
		return n
	}
	return 2000
}

// BenchmarkDrain drains a backlog of sealed 5 s segments (about 80 KB each) to a local
// versitygw, side by side with a bare minio-go PutObject loop over the same files, and
// reports each one's throughput and the heap's high-water mark while it runs, for a 1,000
// segment backlog and a larger one: the uplink's memory must not grow with the backlog.
func BenchmarkDrain(b *testing.B) {
	srv := s3test.Start(b)
	k := newKeys(b)
	blobs := make([][]byte, 8)
	for i := range blobs {
		blobs[i] = sealedBlob(b, k, 80<<10)
	}
	for _, n := range []int{1000, benchSegments(b)} {
		for _, side := range []string{"wallphone", "baseline"} {
			b.Run(fmt.Sprintf("backlog=%d/%s", n, side), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					dir := b.TempDir()
					sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), MaxBytes: 4 << 30})
					if err != nil {
						b.Fatal(err)
					}
					for i := range n {
						call := callID(i / 1000)
						if _, err := sp.CommitSegment(call, i%1000, blobs[i%len(blobs)]); err != nil {
							b.Fatal(err)
						}
					}
					bytes := sp.Usage().Bytes
					runtime.GC()
					rssReset := resetRSSPeak()
					peak := watchHeap()
					b.StartTimer()
					start := time.Now()
					if side == "wallphone" {
						drainBench(b, srv, sp, dir)
					} else {
						bareLoop(b, srv, sp, side)
					}
					took := time.Since(start)
					b.StopTimer()
					b.ReportMetric(float64(bytes)/took.Seconds()/1e6, "MB/s")
					b.ReportMetric(float64(n)/took.Seconds(), "segments/s")
					b.ReportMetric(float64(peak())/(1<<20), "heap-peak-MiB")
					if rss, ok := rssPeak(); ok && rssReset {
						b.ReportMetric(float64(rss)/(1<<20), "rss-peak-MiB")
					}
					sp.Close()
					os.RemoveAll(dir)
					b.StartTimer()
				}
			})
		}
	}
}

func drainBench(b *testing.B, srv *s3test.Server, sp *spool.Spool, dir string) {
	state := must(uplink.OpenState(filepath.Join(dir, "uplink.db")))
	defer state.Close()
	v := must(uplink.NewS3(s3test.PhoneConfig(srv.Endpoint()), state, nil, nil))
	u := must(uplink.New(uplink.Options{Vault: v, Spool: sp, Facility: facility, DeviceID: device}))
	if err := u.Drain(context.Background()); err != nil {
		b.Fatal(err)
	}
	if sp.Usage().Segments != 0 {
		b.Fatal("spool not drained")
	}
}

// bareLoop puts the same files with minio-go's PutObject and nothing else: no checksum of
// its own, no confirmation, no removal.
func bareLoop(b *testing.B, srv *s3test.Server, sp *spool.Spool, prefix string) {
	phone := srv.Phone(b)
	ctx := context.Background()
	for {
		es := must(sp.Oldest(64, nil))
		if len(es) == 0 {
			return
		}
		for _, e := range es {
			f := must(os.Open(sp.Path(e)))
			key := prefix + "/" + uplink.SegmentKey(facility, device, e.CallID, e.Seq)
			if _, err := phone.PutObject(ctx, s3test.Bucket, key, f, e.Size, minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
			f.Close()
			// The spool must shrink for the loop to go on; its removal is the one step the
			// bare loop shares with the uplink.
			if err := sp.Remove(e); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// resetRSSPeak resets the process's resident-set high-water mark (Linux: clear_refs 5).
func resetRSSPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// rssPeak is the process's resident-set high-water mark (VmHWM) in bytes.
func rssPeak() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// watchHeap samples the heap in use every 5 ms until the returned function is called, which
// returns the highest sample.
func watchHeap() func() uint64 {
	var mu sync.Mutex
	var top uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			top = max(top, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return top
	}
}
