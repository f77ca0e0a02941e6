package uplink_test

import (
	"context"
	"errors"
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
// versitygw, side by side with a bare minio-go PutObject loop over the same files from a
// spool of the same size, for a 1,000 segment backlog and a larger one. The two sides take
// turns, a round of 200 segments each (the first turn alternating), so that the load of the
// machine weighs on both alike; each reports its throughput, and wallphone the heap's and the process's resident
// high-water marks while it drains: its memory must not grow with the backlog.
func BenchmarkDrain(b *testing.B) {
	srv := s3test.Start(b)
	k := newKeys(b)
	blobs := make([][]byte, 8)
	for i := range blobs {
		blobs[i] = sealedBlob(b, k, 80<<10)
	}
	for _, n := range []int{1000, benchSegments(b)} {
		b.Run(fmt.Sprintf("backlog=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				var sides [2]*spool.Spool
				for i := range sides {
					sides[i] = must(spool.Open(spool.Options{Dir: filepath.Join(dir, fmt.Sprint("spool", i)), MaxBytes: 8 << 30}))
					for j := range n {
						if _, err := sides[i].CommitSegment(callID(j/1000), j%1000, blobs[j%len(blobs)]); err != nil {
							b.Fatal(err)
						}
					}
				}
				bytes := sides[0].Usage().Bytes
				state := must(uplink.OpenState(filepath.Join(dir, "uplink.db")))
				v := must(uplink.NewS3(s3test.PhoneConfig(srv.Endpoint()), state, nil, nil))
				var took [2]time.Duration
				var heap uint64
				runtime.GC()
				rssReset := resetRSSPeak()
				b.StartTimer()
				// Each goes first in every other round, so that neither gains from the order.
				for round := 0; sides[0].Usage().Segments > 0 || sides[1].Usage().Segments > 0; round++ {
					for i := range 2 {
						side := (round + i) % 2
						t0 := time.Now()
						if side == 0 {
							peak := watchHeap()
							drainRound(b, v, sides[0], 200)
							heap = max(heap, peak())
						} else {
							bareLoop(b, srv, sides[1], "baseline", 200)
						}
						took[side] += time.Since(t0)
					}
				}
				b.StopTimer()
				rss, rssOK := rssPeak()
				for i, side := range []string{"wallphone", "baseline"} {
					b.ReportMetric(float64(bytes)/took[i].Seconds()/1e6, side+"-MB/s")
				}
				b.ReportMetric(100*took[1].Seconds()/took[0].Seconds(), "wallphone-%-of-baseline")
				b.ReportMetric(float64(heap)/(1<<20), "heap-peak-MiB")
				if rssOK && rssReset {
					b.ReportMetric(float64(rss)/(1<<20), "rss-peak-MiB")
				}
				state.Close()
				for _, sp := range sides {
					sp.Close()
				}
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
	}
}

// drainRound runs the uplink until it has uploaded max segments or the spool is empty.
func drainRound(b *testing.B, v uplink.Vault, sp *spool.Spool, max int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := uplink.Options{Vault: v, Spool: sp, Facility: facility, DeviceID: device, StatusEvery: time.Hour}
	n := 0
	uplink.SetAfterPut(&o, func(string) {
		if n++; n >= max {
			cancel()
		}
	})
	u := must(uplink.New(o))
	if err := u.Drain(ctx); err != nil && !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
}

// bareLoop puts the same files with minio-go's PutObject and nothing else: no checksum of
// its own, no confirmation, no removal.
func bareLoop(b *testing.B, srv *s3test.Server, sp *spool.Spool, prefix string, max int) {
	phone := srv.Phone(b)
	ctx := context.Background()
	for n := 0; n < max; {
		es := must(sp.Oldest(min(64, max-n), nil))
		if len(es) == 0 {
			return
		}
		n += len(es)
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
