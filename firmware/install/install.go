package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/tufclient"
)

// Errors. Each is returned wrapped, with what was being checked.
var (
	// ErrNoSHA256: the image target's signed metadata has no SHA-256, which the block index's
	// whole-image hash must equal.
	ErrNoSHA256 = errors.New("install: image target has no sha256")
	// ErrIndex: the block index is not the one the release names (its SHA-256 differs from
	// the one in the image target's signed metadata) or does not describe the image target
	// (another length or whole-image SHA-256).
	ErrIndex = errors.New("install: block index does not match the image target")
	// ErrBlockSize: the index's block size is not the slot's.
	ErrBlockSize = errors.New("install: block index and slot differ in block size")
	// ErrSlotTooSmall: the image is larger than the inactive slot; nothing was written.
	ErrSlotTooSmall = errors.New("install: image larger than the slot")
	// ErrBlock: a fetched block does not match the index (the server's image is not the
	// signed one); neither it nor anything after it was written. It comes joined with
	// blockindex.ErrMismatch.
	ErrBlock = errors.New("install: fetched block does not match the signed index")
	// ErrImage: the image read back from the slot is not the signed image. The progress
	// record is reset, so the next Install writes the slot anew.
	ErrImage = errors.New("install: image in the slot does not match the signed image")
	// ErrReadBack: a block read back from the slot after it was written and synced is not
	// what was written: the medium did not keep it. The progress record stays before it.
	ErrReadBack = errors.New("install: block read back from the slot differs from what was written")
	// ErrProgress: a progress record is damaged (returned by ProgressStore.Load; Install
	// then starts over).
	ErrProgress = errors.New("install: progress record damaged")
)

// Fetcher gets targets of the trusted repository (*tufclient.Client is one).
type Fetcher interface {
	// Fetch streams a whole target, verified against its signed length and hashes.
	Fetch(ctx context.Context, t tufclient.Target, w io.Writer) error
	// FetchRange streams n bytes of a target from off, unverified.
	FetchRange(ctx context.Context, t tufclient.Target, off, n int64, w io.Writer) error
}

// Slot is the inactive slot, as firmware/slot's *Slot provides it. The installer writes
// from one goroutine (WriteBlocks) while another syncs and reads back (Sync, DropCache,
// ReadAt); the slot must allow that.
type Slot interface {
	// Begin declares the image's length; it writes nothing.
	Begin(imageLen int64) error
	// WriteBlock writes a whole block (or the image's last) at a block offset.
	WriteBlock(off int64, p []byte) error
	// WriteBlocks writes a run of whole blocks (the last may be the image's last) at a
	// block offset, in one write.
	WriteBlocks(off int64, p []byte) error
	// Sync puts what was written on the medium and drops it from the page cache, so that
	// a read-back reads the medium.
	Sync() error
	// DropCache drops a range from the page cache, so that the next read of it reads the
	// medium (for blocks an earlier process wrote).
	DropCache(off, n int64)
	ReadAt(p []byte, off int64) (int, error)
	// End syncs and closes the image to writes.
	End() error
	// Size is the slot's capacity, BlockSize the block WriteBlock takes.
	Size() int64
	BlockSize() int
}

// DefaultBatchSize is how much of the image is written between two syncs of the slot, each
// followed by a read-back of what it synced. Blocks are written as they come, so it costs
// no memory; it bounds what a power cut can lose (what was written but not yet synced: at
// most two batches), and more syncs would slow the install down.
const DefaultBatchSize = 16 << 20

// BufferSize is the size of each of the install's two buffers, the bulk of its memory: one
// receives from the server or the running slot, the other reads back from the slot.
const BufferSize = 256 << 10

// Options say what to install where.
type Options struct {
	Fetcher Fetcher
	// Image and Index are the release's image target and block index target;
	// IndexSHA256 is the index's SHA-256 as the image target's signed metadata names it.
	Image, Index tufclient.Target
	IndexSHA256  [sha256.Size]byte
	// Slot is the inactive slot.
	Slot Slot
	// Running is the running slot and RunningLen the length of the image in it: blocks the
	// new image shares with it are copied rather than fetched. Nil (or 0) fetches all.
	Running    io.ReaderAt
	RunningLen int64
	// Progress keeps how far the install came, across restarts.
	Progress ProgressStore
	// Dir keeps the block index between runs (in a file of its own, index.bidx), so that a
	// resumed install need not fetch it again.
	Dir string
	// BatchSize is how much is written between two syncs and read-backs: rounded down to
	// whole blocks (at least one); 0 means DefaultBatchSize.
	BatchSize int64
	// Log receives a line per stage; nil discards.
	Log *slog.Logger
	// OnBatch, if set, is called after each batch is written, synced and read back, with the
	// bytes of the image done and in all (for a progress bar and the status).
	OnBatch func(done, total int64)
}

// Result says what the install did.
type Result struct {
	// Length is the image's length.
	Length int64
	// Resumed is the bytes found done by an earlier run; Copied the bytes copied from the
	// running slot, Fetched the bytes fetched with Range requests by this run.
	Resumed, Copied, Fetched int64
	// CopyMismatches counts blocks the plan meant to copy that did not match the index and
	// were fetched instead.
	CopyMismatches int64
	// IndexFetched says whether the block index was fetched (false: the copy in Dir was
	// still the signed one).
	IndexFetched bool
}

// indexName is the block index's file in Options.Dir.
const indexName = "index.bidx"

// Install writes the release into the inactive slot and returns success only once the whole
// image, read back from the slot, is the signed one. Any error leaves the running slot as it
// was and the inactive slot unbootable until a later Install succeeds; the progress store
// records what is done, and a later Install of the same release goes on from there. A
// cancelled ctx returns an error wrapping ctx.Err().
func Install(ctx context.Context, o Options) (Result, error) {
	res := Result{Length: o.Image.Length}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	imageSum, ok := o.Image.Hashes["sha256"]
	if !ok || len(imageSum) != sha256.Size {
		return res, fmt.Errorf("%w: %s", ErrNoSHA256, o.Image.Name)
	}
	if o.Image.Length > o.Slot.Size() {
		return res, fmt.Errorf("%w: %s is %d bytes, the slot %d", ErrSlotTooSmall, o.Image.Name, o.Image.Length, o.Slot.Size())
	}
	xf, idx, fetched, err := openIndex(ctx, o)
	if err != nil {
		return res, err
	}
	defer xf.f.Close()
	res.IndexFetched = fetched
	switch sum := idx.Sum(); {
	case idx.Len() != o.Image.Length:
		return res, fmt.Errorf("%w: the index is of %d bytes, %s of %d", ErrIndex, idx.Len(), o.Image.Name, o.Image.Length)
	case !bytes.Equal(sum[:], imageSum):
		return res, fmt.Errorf("%w: the index's whole-image sha256 is %x, %s's signed one %x", ErrIndex, sum, o.Image.Name, imageSum)
	case idx.BlockSize() != o.Slot.BlockSize():
		return res, fmt.Errorf("%w: the index's blocks are %d bytes, the slot's %d", ErrBlockSize, idx.BlockSize(), o.Slot.BlockSize())
	}
	if err := o.Slot.Begin(o.Image.Length); err != nil {
		return res, fmt.Errorf("install: %w", err)
	}

	want := Progress{Index: o.IndexSHA256, Length: o.Image.Length}
	copy(want.Image[:], imageSum)
	p, err := o.Progress.Load()
	switch {
	case errors.Is(err, ErrProgress):
		log.Warn("firmware install: progress record damaged, starting over", "err", err)
		p = Progress{}
	case err != nil:
		return res, fmt.Errorf("install: %w", err)
	}
	resuming := true
	if p.Image != want.Image || p.Index != want.Index || p.Length != want.Length || p.Next > idx.Blocks() {
		resuming = false
		if p != (Progress{}) {
			log.Info("firmware install: progress of another release dropped", "image", o.Image.Name)
		}
		// Before the first write: from here on, no block of an earlier release in the slot
		// counts as done.
		if err := o.Progress.Save(want); err != nil {
			return res, fmt.Errorf("install: %w", err)
		}
		p = want
	}
	in := &installer{o: o, idx: idx, xf: xf, res: &res, log: log}
	if err := in.run(ctx, p, want, resuming); err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// Cancelled while a request was under way: the request's own error (a dropped
			// connection) is the symptom, the cancellation the cause.
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return res, err
	}
	log.Info("firmware install: image in the slot verified", "image", o.Image.Name,
		"copied", res.Copied, "fetched", res.Fetched, "resumed", res.Resumed)
	return res, nil
}

func (in *installer) run(ctx context.Context, p, want Progress, resuming bool) error {
	o, idx, res, log := in.o, in.idx, in.res, in.log
	if p.Next > 0 {
		res.Resumed = min(p.Next*int64(idx.BlockSize()), o.Image.Length)
		log.Info("firmware install: resuming", "image", o.Image.Name, "done", res.Resumed, "length", o.Image.Length)
	}
	if err := in.write(ctx, p, resuming); err != nil {
		return err
	}
	return in.checkImage(ctx, want)
}

// indexFile is the block index kept in Dir, checked against the signed one.
type indexFile struct {
	f *os.File
	n int64
}

// view is an Index over the file with a reader of its own (see chunkReader): one for each
// goroutine that reads hashes.
func (x indexFile) view() (*blockindex.Index, error) {
	return blockindex.Open(&chunkReader{r: x.f, buf: make([]byte, 0, hashChunk)}, x.n)
}

// openIndex opens the block index kept in Dir if it is still the signed one, or fetches it
// there first. Its bytes are checked against the index target's signed length and hashes and
// against the SHA-256 the release names, read from the very file the Index will read.
func openIndex(ctx context.Context, o Options) (indexFile, *blockindex.Index, bool, error) {
	path := filepath.Join(o.Dir, indexName)
	fetched := false
	for {
		f, err := os.Open(path)
		if err == nil {
			x := indexFile{f: f}
			var idx *blockindex.Index
			if x.n, idx, err = checkIndex(x, o); err == nil {
				return x, idx, fetched, nil
			}
			f.Close()
		}
		if fetched {
			return indexFile{}, nil, fetched, err
		}
		if err := fetchIndex(ctx, o, path); err != nil {
			return indexFile{}, nil, fetched, err
		}
		fetched = true
	}
}

func checkIndex(x indexFile, o Options) (int64, *blockindex.Index, error) {
	v := o.Index.Verifier()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(v, h), x.f)
	if err != nil {
		return 0, nil, fmt.Errorf("install: read block index: %w", err)
	}
	if err := v.Verify(); err != nil {
		return 0, nil, fmt.Errorf("install: block index: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), o.IndexSHA256[:]) {
		return 0, nil, fmt.Errorf("%w: %s's sha256 is %x, the image's metadata names %x", ErrIndex, o.Index.Name, h.Sum(nil), o.IndexSHA256)
	}
	x.n = n
	idx, err := x.view()
	if err != nil {
		return 0, nil, fmt.Errorf("install: %s: %w", o.Index.Name, err)
	}
	return n, idx, nil
}

// fetchIndex fetches the index into path; a fetch that does not verify leaves no file.
func fetchIndex(ctx context.Context, o Options, path string) error {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	err := atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error {
		h := sha256.New()
		if err := o.Fetcher.Fetch(ctx, o.Index, io.MultiWriter(w, h)); err != nil {
			return err
		}
		if !bytes.Equal(h.Sum(nil), o.IndexSHA256[:]) {
			return fmt.Errorf("%w: %s's sha256 is %x, the image's metadata names %x", ErrIndex, o.Index.Name, h.Sum(nil), o.IndexSHA256)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("install: fetch block index: %w", err)
	}
	return nil
}

// installer is one Install under way.
type installer struct {
	o   Options
	idx *blockindex.Index // Install's goroutine's: the scan, the plan, the read-backs
	xf  indexFile
	res *Result
	log *slog.Logger
	// batchBlocks is how many blocks are written between two syncs.
	batchBlocks int64
	buf         []byte // BufferSize: the scan's and the read-backs'
}

// rangeSize bounds a Range request. Blocks are written as they come, so a request cut short
// costs the installer at most the block it was cut in, whatever its length; but what the
// server had sent and the connection still held when the install stopped (cancelled,
// killed) is lost with it, and a range bounds that too.
const rangeSize = 1 << 20

// saveBytes is how far the record may fall behind what is verified in the slot, in bytes.
// More often buys little: a resumed install checks the blocks in the slot past the record
// against the index (local reads), so a record behind costs a re-read, not a fetch; and each
// record costs two fsyncs.
const saveBytes = 64 << 20

// write makes the blocks past p.Next: it finds those a cut-short run left in the slot, then
// has a filler goroutine copy and fetch the others, each written as soon as it is checked,
// while a syncer goroutine syncs the slot every batch and this one reads back what each
// sync put on the medium. It records progress every saveBytes and when it stops.
func (in *installer) write(ctx context.Context, p Progress, resuming bool) error {
	idx := in.idx
	bs := int64(idx.BlockSize())
	batchBytes := max(in.o.BatchSize, 0)
	if batchBytes == 0 {
		batchBytes = DefaultBatchSize
	}
	in.batchBlocks = max(batchBytes/bs, 1)
	in.buf = make([]byte, bufferLen(bs))
	if resuming && p.Next < idx.Blocks() {
		next, err := in.scan(ctx, p.Next)
		if err != nil {
			return err
		}
		if next > p.Next {
			in.log.Info("firmware install: blocks past the record found in the slot", "image", in.o.Image.Name, "from", p.Next, "to", next)
			in.res.Resumed = min(next*bs, idx.Len())
		}
		p.Next = next
	}
	if p.Next >= idx.Blocks() {
		return in.save(p)
	}
	runningLen := in.o.RunningLen
	if in.o.Running == nil {
		runningLen = 0
	}
	plan, err := blockindex.Plan(in.o.Running, runningLen, idx, rangeSize)
	if errors.Is(err, blockindex.ErrRunning) {
		// A running slot that cannot be read whole is when a phone most needs an update:
		// every block is fetched instead.
		in.log.Warn("firmware install: running slot unreadable, fetching every block", "err", err)
		plan, err = blockindex.Plan(nil, 0, idx, rangeSize)
	}
	if err != nil {
		return fmt.Errorf("install: plan: %w", err)
	}
	in.log.Info("firmware install: planned", "image", in.o.Image.Name, "copy", plan.CopyBytes, "fetch", plan.FetchBytes)
	fidx, err := in.xf.view()
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}

	// Three stages, each waiting for the next to take what it hands on, so that the filler
	// runs at most about two batches ahead of the one being read back: the filler writes
	// blocks and says how far it has written at each batch boundary it passes, and where it
	// stopped; a syncer syncs the slot that far; this goroutine reads back and checks what
	// was synced, and records it.
	marks := make(chan written)
	synced := make(chan written)
	f := &filler{in: in, idx: fidx, buf: make([]byte, bufferLen(bs)), from: p.Next, next: p.Next, marked: p.Next, marks: marks}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var fillErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(marks)
		fillErr = f.run(fctx, plan)
		if f.next > f.marked {
			f.mark(f.next)
		}
	})
	wg.Go(func() {
		defer close(synced)
		var err error
		for w := range marks {
			if err == nil {
				if err = in.o.Slot.Sync(); err != nil {
					err = fmt.Errorf("install: %w", err)
				}
				w.err = err
				synced <- w
			}
		}
	})
	var writeErr error
	saved := p.Next
	for s := range synced {
		if writeErr != nil {
			continue // draining, so that the others end
		}
		if writeErr = s.err; writeErr == nil {
			writeErr = in.verify(&p, f.from, s)
		}
		if writeErr != nil {
			stop()
			continue
		}
		if p.Next-saved >= saveBytes/bs && p.Next < idx.Blocks() {
			if writeErr = in.save(p); writeErr != nil {
				stop()
				continue
			}
			saved = p.Next
		}
	}
	wg.Wait()
	in.res.Copied += f.copied
	in.res.Fetched += f.fetched
	in.res.CopyMismatches += f.mismatches
	// Whatever stopped the run, what was written and verified is recorded, so that the
	// next run need not even check it again.
	if p.Next > saved {
		if err := in.save(p); err != nil {
			return errors.Join(writeErr, fillErr, err)
		}
	}
	if writeErr != nil {
		return writeErr
	}
	return fillErr
}

// bufferLen is BufferSize in whole blocks, at least one.
func bufferLen(bs int64) int64 { return max(BufferSize/bs, 1) * bs }

func (in *installer) save(p Progress) error {
	if err := in.o.Progress.Save(p); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

// written is a run of blocks the filler wrote: those before to, from where the previous run
// ended, with the CRC-32C of each as it was written; and, once synced, whether the sync
// failed.
type written struct {
	to   int64
	sums []uint32
	err  error
}

// castagnoli is the CRC-32C table: the read-back compares what the medium gives back with
// what was written, block by block, by CRC-32C, which hardware computes (SSE 4.2, ARMv8)
// at a small fraction of a SHA-256's cost. Each block was checked against the signed index
// before it was written, and the image is checked whole against its signed SHA-256 at the
// end, so the read-back looks for what a medium does to bytes, not for an adversary.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verify reads blocks [p.Next, w.to), synced, back from the medium and compares each with
// what was written, a batch (counted from block `from`) at a time; p.Next moves past each
// batch that reads back whole and the same.
func (in *installer) verify(p *Progress, from int64, w written) error {
	b0 := p.Next
	if int64(len(w.sums)) != w.to-b0 {
		return fmt.Errorf("install: %d sums for blocks %d to %d", len(w.sums), b0, w.to) // a bug
	}
	for p.Next < w.to {
		b1 := min(w.to, p.Next+in.batchBlocks-(p.Next-from)%in.batchBlocks)
		if err := in.readBack(p.Next, b1, w.sums[p.Next-b0:]); err != nil {
			return err
		}
		p.Next = b1
		if in.o.OnBatch != nil {
			bs := int64(in.idx.BlockSize())
			in.o.OnBatch(min(b1*bs, in.idx.Len()), in.idx.Len())
		}
	}
	return nil
}

// readBack reads blocks [b0, b1) from the slot and compares each with its CRC-32C in sums.
func (in *installer) readBack(b0, b1 int64, sums []uint32) error {
	idx := in.idx
	bs := int64(idx.BlockSize())
	chunk := int64(len(in.buf)) / bs
	for c0 := b0; c0 < b1; c0 += chunk {
		c1 := min(c0+chunk, b1)
		off, _ := idx.Block(c0)
		lastOff, lastLen := idx.Block(c1 - 1)
		buf := in.buf[:lastOff+lastLen-off]
		if n, err := in.o.Slot.ReadAt(buf, off); n < len(buf) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("install: read back the slot at %d: %w", off+int64(n), err)
		}
		for b := c0; b < c1; b++ {
			boff, bn := idx.Block(b)
			if crc32.Checksum(buf[boff-off:boff-off+bn], castagnoli) != sums[b-b0] {
				return fmt.Errorf("%w: block %d (offset %d)", ErrReadBack, b, boff)
			}
		}
	}
	return nil
}

// scan returns the first block from `from` on that the slot does not hold as the index has
// it. A run cut short (killed, powered off) leaves blocks written past its last record, all
// of them checked against the index before they were written; all but the one being written
// when it stopped are whole, or missing when they never reached the medium. Each is checked
// again here, read from the medium, before it counts as done: nothing in the slot is trusted
// for being there.
func (in *installer) scan(ctx context.Context, from int64) (int64, error) {
	idx := in.idx
	start, _ := idx.Block(from)
	// An earlier process's writes may still be in the page cache: onto the medium first,
	// then read from there.
	if err := in.o.Slot.Sync(); err != nil {
		return from, fmt.Errorf("install: %w", err)
	}
	in.o.Slot.DropCache(start, idx.Len()-start)
	chunk := int64(len(in.buf)) / int64(idx.BlockSize())
	for b0 := from; b0 < idx.Blocks(); b0 += chunk {
		if err := ctx.Err(); err != nil {
			return from, fmt.Errorf("install: %w", err)
		}
		b1 := min(b0+chunk, idx.Blocks())
		off, _ := idx.Block(b0)
		lastOff, lastLen := idx.Block(b1 - 1)
		buf := in.buf[:lastOff+lastLen-off]
		n, err := in.o.Slot.ReadAt(buf, off)
		if n < len(buf) && err != nil && !errors.Is(err, io.EOF) {
			return from, fmt.Errorf("install: check the slot at %d: %w", off+int64(n), err)
		}
		for b := b0; b < b1; b++ {
			boff, bn := idx.Block(b)
			if boff+bn > off+int64(n) || idx.Check(b, buf[boff-off:boff-off+bn]) != nil {
				return b, nil
			}
		}
	}
	return idx.Blocks(), nil
}

// filler makes the blocks from `from` on, in order: copied from the running slot or
// fetched, each checked against the index and written into the slot as soon as it is, the
// blocks of one read from the running slot or the connection in one write. Nothing it has
// been handed whole waits in memory for another write, so a process killed while it waits
// for the network leaves in the page cache every whole block that came. It runs in a
// goroutine of its own.
type filler struct {
	in  *installer
	idx *blockindex.Index // its own: the index's reader is not shared between goroutines
	buf []byte            // BufferSize: what came from the running slot or the connection
	// from is where this run began, next the first block not yet written, marked the end
	// of the last run sent on marks.
	from, next, marked int64
	marks              chan<- written
	// sums is the CRC-32C of each block written since marked.
	sums []uint32
	// What it did, for Result.
	copied, fetched, mismatches int64
}

// run makes every block from f.next on, following the plan: a copy from the running slot
// where it holds the block, a Range request elsewhere.
func (f *filler) run(ctx context.Context, plan *blockindex.Delta) error {
	idx := f.idx
	bs := int64(idx.BlockSize())
	ci := 0 // cursor into plan.Copies, in image order
	for f.next < idx.Blocks() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("install: %w", err)
		}
		off := f.next * bs
		for ci < len(plan.Copies) && plan.Copies[ci].To+plan.Copies[ci].Len <= off {
			ci++
		}
		var err error
		if ci < len(plan.Copies) && plan.Copies[ci].To <= off {
			c := plan.Copies[ci]
			err = f.copy(ctx, c.From+off-c.To, off, min(c.To+c.Len-off, int64(len(f.buf))))
		} else {
			end := idx.Len()
			if ci < len(plan.Copies) {
				end = plan.Copies[ci].To
			}
			err = f.fetch(ctx, off, min(end-off, rangeSize), f.buf)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copy reads n bytes at from in the running slot (one read) for the blocks at off, checks
// each, and writes each run of blocks that match in one write; a run that does not is
// fetched instead.
func (f *filler) copy(ctx context.Context, from, off, n int64) error {
	bs := int64(f.idx.BlockSize())
	p := f.buf[:n]
	if _, err := f.in.o.Running.ReadAt(p, from); err != nil {
		f.in.log.Warn("firmware install: running slot unreadable, fetching instead", "offset", from, "err", err)
	}
	put := func(i, j int64, bad bool) error {
		if bad {
			f.mismatches += (j - i + bs - 1) / bs
			return f.fetch(ctx, off+i, j-i, p[i:j])
		}
		f.copied += j - i
		return f.write(off+i, p[i:j])
	}
	var run int64 // the first block of the run of blocks alike
	runBad := false
	for i := int64(0); i < n; i += bs {
		bad := f.idx.Check((off+i)/bs, p[i:min(i+bs, n)]) != nil
		if i > run && bad != runBad {
			if err := put(run, i, runBad); err != nil {
				return err
			}
			run = i
		}
		runBad = bad
	}
	return put(run, n, runBad)
}

// fetch fetches the n bytes at off with one Range request, received into area (whole blocks,
// or n bytes) and written as they come.
func (f *filler) fetch(ctx context.Context, off, n int64, area []byte) error {
	w := &rangeWriter{f: f, area: area, off: off, end: off + n}
	err := f.in.o.Fetcher.FetchRange(ctx, f.in.o.Image, off, n, w)
	switch {
	case w.err != nil:
		return w.err // a block that did not match, or a failed write: the cause
	case err != nil:
		return fmt.Errorf("install: fetch: %w", err)
	case w.off+int64(w.have) != w.end:
		return fmt.Errorf("install: fetch: %d of %d bytes at %d: %w", w.off+int64(w.have)-off, n, off, io.ErrUnexpectedEOF)
	}
	return nil
}

// write writes p, the blocks from off, checked, into the slot, and hands the blocks written
// on at each batch boundary it passes.
func (f *filler) write(off int64, p []byte) error {
	if err := f.in.o.Slot.WriteBlocks(off, p); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	bs := int64(f.idx.BlockSize())
	for i := int64(0); i < int64(len(p)); i += bs {
		f.sums = append(f.sums, crc32.Checksum(p[i:min(i+bs, int64(len(p)))], castagnoli))
	}
	f.next = (off + int64(len(p)) + bs - 1) / bs
	if batch := f.in.batchBlocks; f.next-f.marked >= batch {
		f.mark(f.from + (f.next-f.from)/batch*batch)
	}
	return nil
}

// mark hands on the blocks written up to to, and waits until they are taken.
func (f *filler) mark(to int64) {
	n := to - f.marked
	f.marks <- written{to: to, sums: f.sums[:n:n]}
	f.sums = append([]uint32(nil), f.sums[n:]...)
	f.marked = to
}

// rangeWriter receives one Range request's bytes into area. After each read from the
// connection it checks the whole blocks that have come and writes them into the slot in one
// write; a partial block waits at the start of area for the rest of it.
type rangeWriter struct {
	f    *filler
	area []byte
	have int   // bytes at the start of area not yet written: less than a block between reads
	off  int64 // where area[0] goes in the image
	end  int64 // where the range ends
	err  error // a block that did not match, or a failed write; sticky
}

// room is the part of area the next bytes of the range go to.
func (w *rangeWriter) room() []byte {
	return w.area[w.have:min(int64(len(w.area)), w.end-w.off)]
}

func (w *rangeWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && w.err == nil {
		room := w.room()
		if len(room) == 0 {
			return n, io.ErrShortWrite // more than the range
		}
		k := copy(room, p)
		p, n = p[k:], n+k
		w.received(k)
	}
	return n, w.err
}

// ReadFrom reads straight into area, as much as a read gives, so that io.Copy neither copies
// every byte through a buffer of its own nor allocates one per range.
func (w *rangeWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for w.err == nil {
		room := w.room()
		if len(room) == 0 {
			var more [1]byte
			if n, _ := io.ReadFull(r, more[:]); n > 0 {
				return total, io.ErrShortWrite
			}
			return total, nil
		}
		n, err := r.Read(room)
		total += int64(n)
		w.received(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, err
		}
	}
	return total, w.err
}

// received takes n more bytes in area: it checks the whole blocks there (the range's last
// block whole when the range is complete, short if it is the image's), writes those that
// match in one write, and keeps the partial block after them.
func (w *rangeWriter) received(n int) {
	w.have += n
	w.f.fetched += int64(n)
	bs := int64(w.f.idx.BlockSize())
	whole := int64(w.have) / bs * bs
	if w.off+int64(w.have) == w.end {
		whole = int64(w.have)
	}
	if whole == 0 {
		return
	}
	b0 := w.off / bs
	var good int64
	for good < whole {
		end := min(good+bs, whole)
		if err := w.f.idx.Check(b0+good/bs, w.area[good:end]); err != nil {
			w.err = fmt.Errorf("install: %w", err)
			if errors.Is(err, blockindex.ErrMismatch) {
				w.err = fmt.Errorf("%w: %s: %w", ErrBlock, w.f.in.o.Image.Name, err)
			}
			break
		}
		good = end
	}
	if good > 0 {
		if err := w.f.write(w.off, w.area[:good]); err != nil && w.err == nil {
			w.err = err
		}
	}
	if w.err != nil {
		return
	}
	w.have = copy(w.area, w.area[whole:w.have])
	w.off += whole
}

// checkImage ends the slot's image and checks it, read back whole, against the image target.
func (in *installer) checkImage(ctx context.Context, p Progress) error {
	if err := in.o.Slot.End(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	v := in.o.Image.Verifier()
	length := in.o.Image.Length
	for off := int64(0); off < length; off += int64(len(in.buf)) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("install: %w", err)
		}
		chunk := in.buf[:min(int64(len(in.buf)), length-off)]
		if n, err := in.o.Slot.ReadAt(chunk, off); n < len(chunk) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("install: read back the slot at %d: %w", off+int64(n), err)
		}
		v.Write(chunk)
	}
	if err := v.Verify(); err != nil {
		p.Next = 0
		if serr := in.o.Progress.Save(p); serr != nil {
			return fmt.Errorf("%w: %w (and resetting the progress record: %w)", ErrImage, err, serr)
		}
		return fmt.Errorf("%w: %w", ErrImage, err)
	}
	return nil
}

// hashChunk is how much of the index file chunkReader reads at a time: the hashes of 256
// blocks, a batch's worth.
const hashChunk = 8 << 10

// chunkReader reads its file a chunk at a time and serves the Index's 32-byte reads from the
// chunk: one system call per chunk rather than one per block. Not safe for concurrent use:
// each goroutine that reads hashes has its own (indexFile.view).
type chunkReader struct {
	r   io.ReaderAt
	off int64 // where buf starts in r
	buf []byte
}

func (c *chunkReader) ReadAt(p []byte, off int64) (int, error) {
	if off < c.off || off+int64(len(p)) > c.off+int64(len(c.buf)) {
		if len(p) > cap(c.buf) {
			return c.r.ReadAt(p, off)
		}
		n, err := c.r.ReadAt(c.buf[:cap(c.buf)], off)
		c.off, c.buf = off, c.buf[:n]
		if n < len(p) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return copy(p, c.buf), err
		}
	}
	return copy(p, c.buf[off-c.off:]), nil
}
