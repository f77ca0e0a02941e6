package install_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/install"
	"github.com/wallphone/wallphone/firmware/slot"
	"github.com/wallphone/wallphone/internal/tmpfs"
	"github.com/wallphone/wallphone/tufclient"
)

const imageLen = 1<<20 + 3*bs + 123 // a short last block

// TestFullInstall: with nothing to reuse, every byte of the image is fetched once, the slot
// holds the image and nothing after it, and the progress record says all is done. A second
// Install of the same release fetches nothing (not even the index) and verifies the slot.
func TestFullInstall(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent snapshots %v", consistent), func(t *testing.T) {
			p := newPhone(t, consistent, randomBytes(1, imageLen), 2<<20)
			o, _ := p.options(nil)
			var reported []int64
			o.OnBatch = func(done, total int64) { reported = append(reported, done) }
			res, err := install.Install(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			p.checkSlot()
			if res.Fetched != imageLen || res.Copied != 0 || res.Resumed != 0 || !res.IndexFetched || p.served.sent() != imageLen {
				t.Fatalf("result %+v, server sent %d", res, p.served.sent())
			}
			if pr := p.progress(); pr.Next != (imageLen-1)/bs+1 {
				t.Fatalf("progress %+v", pr)
			}
			if len(reported) != (imageLen-1)/batch+1 || reported[len(reported)-1] != imageLen {
				t.Fatalf("reported %v", reported)
			}
			o, _ = p.options(nil)
			res, err = install.Install(context.Background(), o)
			if err != nil || res.Fetched != 0 || res.IndexFetched || res.Resumed != imageLen || p.served.sent() != imageLen {
				t.Fatalf("again: %+v %v", res, err)
			}
		})
	}
}

// TestDeltaInstall: with the running image beside it, only the blocks that changed are
// fetched (counted at the server), the rest is copied, and the slot holds the new image.
// A running slot that lies (a block the plan copies from that changed under it) costs a
// fetch, not a wrong block.
func TestDeltaInstall(t *testing.T) {
	old := randomBytes(2, imageLen)
	img := bytes.Clone(old)
	changed := []int{0, 7, 8, 9, 100, 200, (imageLen - 1) / bs}
	for _, b := range changed {
		img[b*bs+5] ^= 0xff
	}
	// A block moved: copied from elsewhere in the running slot.
	copy(img[50*bs:51*bs], old[120*bs:121*bs])
	p := newPhone(t, true, img, 2<<20)
	o, _ := p.options(old)
	res, err := install.Install(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	p.checkSlot()
	wantFetched := int64(len(changed)-1)*bs + (imageLen - int64(changed[len(changed)-1])*bs)
	if res.Fetched != wantFetched || p.served.sent() != wantFetched || res.Copied != imageLen-wantFetched {
		t.Fatalf("fetched %d (server sent %d), copied %d; want %d fetched", res.Fetched, p.served.sent(), res.Copied, wantFetched)
	}
	t.Logf("delta: fetched %d of %d bytes (%.2f%%)", res.Fetched, imageLen, 100*float64(res.Fetched)/imageLen)

	// The running slot changes between the plan and the copy: the block is fetched.
	p2 := newPhone(t, true, img, 2<<20)
	o, _ = p2.options(old)
	o.Running = &changing{r: bytes.NewReader(old), at: 150 * bs}
	res, err = install.Install(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	p2.checkSlot()
	if res.CopyMismatches != 1 || res.Fetched != wantFetched+bs {
		t.Fatalf("%+v", res)
	}
}

// A running slot with a bad sector (a read error) does not stop the update that may fix it:
// every block is fetched.
func TestRunningSlotUnreadable(t *testing.T) {
	old := randomBytes(2, imageLen)
	img := bytes.Clone(old)
	img[5] ^= 0xff
	p := newPhone(t, true, img, 2<<20)
	o, _ := p.options(old)
	o.Running = badSector{r: bytes.NewReader(old), at: 40 * bs}
	res, err := install.Install(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	p.checkSlot()
	if res.Fetched != imageLen || res.Copied != 0 {
		t.Fatalf("fetched %d, copied %d; want all %d fetched", res.Fetched, res.Copied, imageLen)
	}
}

// badSector reads as r, but for an I/O error at every read that covers `at`.
type badSector struct {
	r  io.ReaderAt
	at int64
}

func (b badSector) ReadAt(p []byte, off int64) (int, error) {
	if off <= b.at && b.at < off+int64(len(p)) {
		n, _ := b.r.ReadAt(p[:b.at-off], off)
		return n, syscall.EIO
	}
	return b.r.ReadAt(p, off)
}

// changing reads as r, except that the block at `at` reads differently after the first read
// of it (the plan's).
type changing struct {
	r    io.ReaderAt
	at   int64
	seen bool
}

func (c *changing) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	if off <= c.at && c.at < off+int64(n) {
		if c.seen {
			p[c.at-off] ^= 1
		}
		c.seen = true
	}
	return n, err
}

// TestResumeAfterCancel: an install cancelled at a random moment (while a range streams, or
// between writes into the slot) and run again, over and over, ends with the image in the
// slot, and no resumed run fetches again more than one block of what earlier runs fetched.
// What was fetched is counted as FetchRange hands it to the installer: bytes still in
// flight on the connection when the context is cancelled never reach it.
func TestResumeAfterCancel(t *testing.T) {
	runs := 60
	if testing.Short() {
		runs = 15
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 16))
	var maxRefetch int64
	resumes := 0
	for run := range runs {
		img := randomBytes(uint64(10+run), imageLen)
		old := randomBytes(3, imageLen)
		copy(old[200*bs:], img[200*bs:]) // the tail is reused, the head fetched
		p := newPhone(t, run%2 == 0, img, 2<<20)
		got := &received{}
		for attempt := 0; ; attempt++ {
			if attempt > 100 {
				t.Fatalf("run %d: no end after %d attempts", run, attempt)
			}
			before := got.snapshot()
			ctx, cancel := context.WithCancel(context.Background())
			o, s := p.options(old)
			cut := rng.Int64N(imageLen)
			if rng.IntN(2) == 0 {
				// Cancel once cut more bytes of the image have come.
				o.Fetcher = got.fetcher(o.Fetcher, cut, cancel)
			} else {
				o.Fetcher = got.fetcher(o.Fetcher, -1, nil)
				o.Slot = &cancelSlot{Slot: s, left: int(cut / bs), cancel: cancel}
			}
			_, err := install.Install(ctx, o)
			cancel()
			refetch := refetched(before, got.snapshot())
			maxRefetch = max(maxRefetch, refetch)
			if refetch > bs {
				t.Fatalf("run %d attempt %d: fetched %d bytes again, more than a block (%d)", run, attempt, refetch, bs)
			}
			if err == nil {
				break
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("run %d attempt %d: %v", run, attempt, err)
			}
			p.checkNothingPast()
			resumes++
		}
		p.checkSlot()
	}
	t.Logf("%d runs, %d resumes: the most one resume fetched again was %d bytes (a block is %d)", runs, resumes, maxRefetch, bs)
}

// received counts the bytes of the image FetchRange handed to the installer, block by block.
type received struct {
	mu     sync.Mutex
	blocks []int
}

// fetcher wraps f to count into r; with cut >= 0, it calls cancel once cut more bytes have
// come, and hands over no more.
func (r *received) fetcher(f install.Fetcher, cut int64, cancel context.CancelFunc) install.Fetcher {
	return &countingFetcher{Fetcher: f, r: r, left: cut, cancel: cancel}
}

func (r *received) snapshot() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.blocks...)
}

func (r *received) add(off int64, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := off; i < off+int64(n); {
		b := int(i / bs)
		for len(r.blocks) <= b {
			r.blocks = append(r.blocks, 0)
		}
		k := min(off+int64(n)-i, int64(b+1)*bs-i)
		r.blocks[b] += int(k)
		i += k
	}
}

type countingFetcher struct {
	install.Fetcher
	r      *received
	left   int64 // bytes to hand over before cancelling; < 0: no cut
	cancel context.CancelFunc
}

func (f *countingFetcher) FetchRange(ctx context.Context, t tufclient.Target, off, n int64, w io.Writer) error {
	return f.Fetcher.FetchRange(ctx, t, off, n, &handOver{f: f, off: off, w: w})
}

type handOver struct {
	f   *countingFetcher
	off int64
	w   io.Writer
}

func (c *handOver) Write(p []byte) (int, error) {
	var cut error
	if c.f.left >= 0 && int64(len(p)) >= c.f.left {
		p, cut = p[:c.f.left], context.Canceled
		c.f.cancel()
	}
	if c.f.left >= 0 {
		c.f.left -= int64(len(p))
	}
	n, err := c.w.Write(p)
	c.f.r.add(c.off, n)
	c.off += int64(n)
	if err == nil {
		err = cut
	}
	return n, err
}

// refetched is how many bytes of blocks that were sent before (some bytes at least) were
// sent again, from two snapshots of served or received.
func refetched(before, after []int) int64 {
	var n int64
	for b := range min(len(before), len(after)) {
		if before[b] > 0 {
			n += int64(after[b] - before[b])
		}
	}
	return n
}

// cancelAfter cancels once left more bytes have been sent.
type cancelAfter struct {
	http.ResponseWriter
	left   int64
	cancel context.CancelFunc
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	if w.left <= 0 {
		w.cancel()
		// Flushed first so that the client holds what was sent, as on a real link.
		http.NewResponseController(w.ResponseWriter).Flush()
		panic(http.ErrAbortHandler)
	}
	n := int(min(int64(len(p)), w.left))
	w.left -= int64(n)
	m, err := w.ResponseWriter.Write(p[:n])
	if err != nil || n == len(p) {
		return m, err
	}
	return w.Write(p[n:])
}

// cancelSlot cancels once left more blocks are written: a run is written up to there, the
// context cancelled, then the rest of the run written.
type cancelSlot struct {
	install.Slot
	left   int
	cancel context.CancelFunc
}

func (s *cancelSlot) WriteBlocks(off int64, p []byte) error {
	if s.left >= 0 && s.left*bs < len(p) {
		if err := s.Slot.WriteBlocks(off, p[:s.left*bs]); s.left > 0 && err != nil {
			return err
		}
		s.cancel()
		off, p = off+int64(s.left)*bs, p[s.left*bs:]
	}
	s.left -= (len(p) + bs - 1) / bs
	return s.Slot.WriteBlocks(off, p)
}

// TestCancelLeavesNoGoroutine: an install cancelled while a range streams returns only once
// the goroutine filling batches has ended, with an error wrapping context.Canceled, and
// nothing but the image's blocks in the slot.
func TestCancelLeavesNoGoroutine(t *testing.T) {
	p := newPhone(t, true, randomBytes(11, imageLen), 2<<20)
	for _, cut := range []int64{3*bs + 17, 40 * bs, 1} {
		ctx, cancel := context.WithCancel(context.Background())
		o, _ := p.options(nil)
		o.Fetcher = (&received{}).fetcher(o.Fetcher, cut, cancel)
		_, err := install.Install(ctx, o)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cut at %d: err = %v", cut, err)
		}
		checkNoInstallGoroutine(t)
		p.checkNothingPast()
	}
}

// checkNoInstallGoroutine says no goroutine runs the installer's code: Install waited for
// the one it started.
func checkNoInstallGoroutine(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	if st := string(buf[:runtime.Stack(buf, true)]); strings.Contains(st, "wallphone/firmware/install.") {
		t.Fatalf("a goroutine of the install outlived it:\n%s", st)
	}
}

// TestNewReleaseStartsOver: an install cut short, then a newer release published: its
// install starts over at block 0, and the slot ends with the newer image.
func TestNewReleaseStartsOver(t *testing.T) {
	p := newPhone(t, true, randomBytes(4, imageLen), 2<<20)
	o, s := p.options(nil)
	ctx, cancel := context.WithCancel(context.Background())
	o.Slot = &cancelSlot{Slot: s, left: 100, cancel: cancel}
	if _, err := install.Install(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if pr := p.progress(); pr.Next == 0 {
		t.Fatalf("no progress recorded: %+v", pr)
	}
	p.publish("3", randomBytes(5, imageLen-bs))
	o, _ = p.options(nil)
	res, err := install.Install(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 0 || res.Fetched != int64(len(p.img)) {
		t.Fatalf("%+v", res)
	}
	p.checkSlot()
}

// TestDamagedProgress: a progress record that does not parse is a fresh start, not a stuck
// phone; FileStore.Load says it is damaged.
func TestDamagedProgress(t *testing.T) {
	p := newPhone(t, true, randomBytes(6, imageLen), 2<<20)
	for _, b := range []string{"", "{", `{"version":2}`, `{"version":1,"image_sha256":"zz","index_sha256":"","length":1,"next_block":1}`, "\x00\x00"} {
		if err := os.WriteFile(p.store().Path, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := p.store().Load(); !errors.Is(err, install.ErrProgress) {
			t.Fatalf("%q: Load: %v", b, err)
		}
	}
	o, _ := p.options(nil)
	if res, err := install.Install(context.Background(), o); err != nil || res.Resumed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	p.checkSlot()
}

// TestProgressRoundTrip: what Save writes, Load reads back.
func TestProgressRoundTrip(t *testing.T) {
	s := install.FileStore{Path: filepath.Join(t.TempDir(), "p.json")}
	if pr, err := s.Load(); err != nil || pr != (install.Progress{}) {
		t.Fatalf("no file: %+v %v", pr, err)
	}
	want := install.Progress{Image: [32]byte{1, 2}, Index: [32]byte{3}, Length: 1 << 40, Next: 12345}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(); err != nil || got != want {
		t.Fatalf("%+v %v", got, err)
	}
}

// TestBadInput: each is refused with its error, and nothing is written into the slot past
// the blocks recorded as done (all of them the image's).
func TestBadInput(t *testing.T) {
	img := randomBytes(7, imageLen)
	idx := func(b []byte) []byte {
		x, err := blockindex.Build(bytes.NewReader(b), bs)
		if err != nil {
			t.Fatal(err)
		}
		var w bytes.Buffer
		x.WriteTo(&w)
		return w.Bytes()
	}
	for _, tc := range []struct {
		name     string
		capacity int64
		setup    func(p *phone, o *install.Options)
		want     []error
	}{
		{"tampered image byte", 2 << 20, func(p *phone, o *install.Options) {
			p.served.setFault(tamper(".img", 700_000))
		}, []error{install.ErrBlock, blockindex.ErrMismatch}},
		{"tampered index byte", 2 << 20, func(p *phone, o *install.Options) {
			p.served.setFault(tamper(".bidx", 100))
		}, []error{tufclient.ErrMismatch}},
		{"index not the one the release names", 2 << 20, func(p *phone, o *install.Options) {
			o.IndexSHA256[0] ^= 1
		}, []error{install.ErrIndex}},
		{"index of a shorter image (wrong length)", 2 << 20, func(p *phone, o *install.Options) {
			p.publishWith("2", img, idx(img[:imageLen-1]))
			*o, _ = p.options(nil)
		}, []error{install.ErrIndex}},
		{"index of another image of the same length", 2 << 20, func(p *phone, o *install.Options) {
			other := bytes.Clone(img)
			other[5] ^= 1
			p.publishWith("2", img, idx(other))
			*o, _ = p.options(nil)
		}, []error{install.ErrIndex}},
		{"index with trailing bytes, signed", 2 << 20, func(p *phone, o *install.Options) {
			p.publishWith("2", img, append(idx(img), 0))
			*o, _ = p.options(nil)
		}, []error{blockindex.ErrFormat}},
		{"image served with trailing bytes", 2 << 20, func(p *phone, o *install.Options) {
			p.repo.Serve(p.imagePath(), append(bytes.Clone(img), "trailing"...))
		}, []error{tufclient.ErrNoRange}},
		{"image served short", 2 << 20, func(p *phone, o *install.Options) {
			p.repo.Serve(p.imagePath(), img[:imageLen-200])
		}, []error{tufclient.ErrNoRange}},
		{"slot smaller than the image", imageLen - 1, nil, []error{install.ErrSlotTooSmall}},
		{"image target without sha256", 2 << 20, func(p *phone, o *install.Options) {
			o.Image.Hashes = map[string][]byte{"sha512": make([]byte, 64)}
		}, []error{install.ErrNoSHA256}},
		{"cancelled", 2 << 20, func(p *phone, o *install.Options) {}, []error{context.Canceled}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPhone(t, true, img, tc.capacity)
			o, _ := p.options(nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.setup != nil {
				tc.setup(p, &o)
			}
			if tc.name == "cancelled" {
				cancel()
			}
			_, err := install.Install(ctx, o)
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
			t.Logf("refused: %v", err)
			p.checkNothingPast()
			// Put right, the same phone installs the release.
			p.served.setFault(nil)
			p.repo.Serve(p.imagePath(), img)
			p.publish("2", img)
			p.img = img
			o, _ = p.options(nil)
			if tc.capacity < imageLen {
				return
			}
			if _, err := install.Install(context.Background(), o); err != nil {
				t.Fatalf("after the fault is gone: %v", err)
			}
			p.checkSlot()
		})
	}
}

// tamper flips a byte at off of the targets whose path ends in suffix, as they are sent.
func tamper(suffix string, off int64) func(w http.ResponseWriter, req *http.Request) http.ResponseWriter {
	return func(w http.ResponseWriter, req *http.Request) http.ResponseWriter {
		if filepath.Ext(req.URL.Path) != suffix {
			return w
		}
		start := int64(0)
		fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-", &start)
		return &flipWriter{ResponseWriter: w, at: off - start}
	}
}

type flipWriter struct {
	http.ResponseWriter
	at int64 // offset of the byte to flip from here
}

func (w *flipWriter) Write(p []byte) (int, error) {
	if w.at >= 0 && w.at < int64(len(p)) {
		p = bytes.Clone(p)
		p[w.at] ^= 0x01
	}
	w.at -= int64(len(p))
	return w.ResponseWriter.Write(p)
}

// TestServerDrops: the server drops the connection in the middle of the install's first
// request (the index), then of its second (the first range), and so on: each run fails with
// the dropped connection, and the next goes on from where it was, fetching again at most
// one block: the one the connection dropped in.
func TestServerDrops(t *testing.T) {
	img := randomBytes(8, imageLen)
	p := newPhone(t, true, img, 2<<20)
	for drop := 0; ; drop++ {
		n := 0
		p.served.setFault(func(w http.ResponseWriter, req *http.Request) http.ResponseWriter {
			if n++; n-1 != drop {
				return w
			}
			// Some way into the range: blocks of it come whole before the drop.
			return &cancelAfter{ResponseWriter: w, left: int64(1000 + drop%4*5*bs), cancel: func() {}}
		})
		before := p.served.snapshot(p.imagePath())
		o, _ := p.options(nil)
		_, err := install.Install(context.Background(), o)
		if refetch := refetched(before, p.served.snapshot(p.imagePath())); refetch > bs {
			t.Fatalf("drop %d: %d bytes fetched again, more than a block", drop, refetch)
		}
		if err == nil {
			p.checkSlot()
			t.Logf("done after %d dropped connections", drop)
			return
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("drop %d: %v", drop, err)
		}
		p.checkNothingPast()
		if drop > imageLen/batch+5 {
			t.Fatal("no end")
		}
	}
}

// TestSlotWriteFails: the slot's file system fills up mid-install: the write error (ENOSPC)
// is returned, and the record holds only what was written and verified.
func TestSlotWriteFails(t *testing.T) {
	dir := tmpfs.Mount(t, 512<<10)
	p := newPhone(t, true, randomBytes(9, imageLen), 2<<20)
	p.slotPath = filepath.Join(dir, "b.img")
	// A sparse slot file, so that the file system fills at a write.
	if err := os.WriteFile(p.slotPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p.slotPath, 2<<20); err != nil {
		t.Fatal(err)
	}
	o, _ := p.options(nil)
	_, err := install.Install(context.Background(), o)
	var be *slot.BlockError
	if !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &be) {
		t.Fatalf("err = %v", err)
	}
	t.Logf("refused: %v", err)
	checkNoInstallGoroutine(t)
	if pr := p.progress(); pr.Next*bs > be.Off {
		t.Fatalf("progress %d blocks, past the failed block at %d", pr.Next, be.Off)
	}
}

// TestReadBackMismatch: a slot that reads back other bytes than were written (flash gone
// bad after the per-block check) fails the whole-image check; the record starts over.
func TestReadBackMismatch(t *testing.T) {
	p := newPhone(t, true, randomBytes(10, imageLen), 2<<20)
	o, s := p.options(nil)
	o.Slot = &badReadBack{Slot: s}
	if _, err := install.Install(context.Background(), o); !errors.Is(err, install.ErrImage) || !errors.Is(err, tufclient.ErrMismatch) {
		t.Fatalf("err = %v", err)
	}
	if pr := p.progress(); pr.Next != 0 {
		t.Fatalf("progress %+v after a failed read-back", pr)
	}
}

// TestReadBackDiffers: a block that reads back from the medium other than it was written,
// once synced, stops the install with ErrReadBack naming it, and the record stays before
// it; the next install, with the medium sound again, finds the block right in the slot.
func TestReadBackDiffers(t *testing.T) {
	p := newPhone(t, true, randomBytes(12, imageLen), 2<<20)
	o, s := p.options(nil)
	const bad = 100
	o.Slot = &flipOnce{Slot: s, at: bad*bs + 9}
	_, err := install.Install(context.Background(), o)
	if !errors.Is(err, install.ErrReadBack) || !strings.Contains(err.Error(), fmt.Sprintf("block %d ", bad)) {
		t.Fatalf("err = %v", err)
	}
	if pr := p.progress(); pr.Next > bad {
		t.Fatalf("progress %+v, past the block that read back wrong", pr)
	}
	p.checkNothingPast()
	o, _ = p.options(nil)
	res, err := install.Install(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched+res.Resumed != imageLen {
		t.Fatalf("%+v", res)
	}
	p.checkSlot()
}

// flipOnce reads the byte at `at` wrong the first time it is read.
type flipOnce struct {
	install.Slot
	at   int64
	done bool
}

func (s *flipOnce) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.Slot.ReadAt(p, off)
	if !s.done && off <= s.at && s.at < off+int64(n) {
		p[s.at-off] ^= 1
		s.done = true
	}
	return n, err
}

// badReadBack reads back its first byte wrong once the image is ended: what the per-batch
// check saw was right.
type badReadBack struct {
	install.Slot
	ended bool
}

func (s *badReadBack) End() error {
	s.ended = true
	return s.Slot.End()
}

func (s *badReadBack) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.Slot.ReadAt(p, off)
	if s.ended && off == 0 && n > 0 {
		p[0] ^= 1
	}
	return n, err
}
