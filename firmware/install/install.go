package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
	ErrReadBack = errors.New("install: block read back from the slot differs from the signed index")
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

// Slot is the inactive slot, as firmware/slot's *Slot provides it.
type Slot interface {
	// Begin declares the image's length; it writes nothing.
	Begin(imageLen int64) error
	// WriteBlock writes a whole block (or the image's last) at a block offset.
	WriteBlock(off int64, p []byte) error
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

// DefaultBatchSize is how much of the image is fetched, written, synced and read back at a
// time. An install holds two batches (one filling while the other is written): the bulk of
// its memory.
const DefaultBatchSize = 1 << 20

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
	// BatchSize is rounded down to whole blocks (at least one); 0 means DefaultBatchSize.
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

// indexFile is the block index's file in Options.Dir.
const indexFile = "index.bidx"

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
	idx, closeIndex, fetched, err := openIndex(ctx, o)
	if err != nil {
		return res, err
	}
	defer closeIndex()
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
	in := &installer{o: o, idx: idx, res: &res, log: log}
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
	return in.readBack(ctx, want)
}

// openIndex opens the block index kept in Dir if it is still the signed one, or fetches it
// there first. Its bytes are checked against the index target's signed length and hashes and
// against the SHA-256 the release names, read from the very file the Index will read.
func openIndex(ctx context.Context, o Options) (*blockindex.Index, func(), bool, error) {
	path := filepath.Join(o.Dir, indexFile)
	fetched := false
	for {
		f, err := os.Open(path)
		if err == nil {
			var idx *blockindex.Index
			if idx, err = checkIndex(f, o); err == nil {
				return idx, func() { f.Close() }, fetched, nil
			}
			f.Close()
		}
		if fetched {
			return nil, nil, fetched, err
		}
		if err := fetchIndex(ctx, o, path); err != nil {
			return nil, nil, fetched, err
		}
		fetched = true
	}
}

func checkIndex(f *os.File, o Options) (*blockindex.Index, error) {
	v := o.Index.Verifier()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(v, h), f)
	if err != nil {
		return nil, fmt.Errorf("install: read block index: %w", err)
	}
	if err := v.Verify(); err != nil {
		return nil, fmt.Errorf("install: block index: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), o.IndexSHA256[:]) {
		return nil, fmt.Errorf("%w: %s's sha256 is %x, the image's metadata names %x", ErrIndex, o.Index.Name, h.Sum(nil), o.IndexSHA256)
	}
	idx, err := blockindex.Open(&chunkReader{r: f, buf: make([]byte, 0, hashChunk)}, n)
	if err != nil {
		return nil, fmt.Errorf("install: %s: %w", o.Index.Name, err)
	}
	return idx, nil
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
	o           Options
	idx         *blockindex.Index
	res         *Result
	log         *slog.Logger
	batchBlocks int64
	buf         []byte // one batch: the scan's and the final read-back's
}

// source is where a block of the new image comes from: a running-slot offset, or -1 to fetch.
type source = int64

const fetch source = -1

// saveEvery is how many batches go by between progress records. More often buys nothing: a
// resumed install checks the blocks in the slot past the record against the index (local
// reads), so a record behind costs a re-read, not a fetch; and each record costs two fsyncs.
const saveEvery = 16

// batch is a batch of blocks on its way into the slot: filled by the fetching goroutine,
// written, synced and read back by Install's.
type batch struct {
	b0   int64 // first block
	n    int   // blocks
	good int   // blocks [b0, b0+good) are filled and match the index
	buf  []byte
	src  []source
	hash [][sha256.Size]byte // the index's hashes of the good blocks
	// What filling it did, for Result.
	copied, fetched, mismatches int64
}

// block is block b0+k of the batch.
func (bt *batch) block(idx *blockindex.Index, k int) []byte {
	start, _ := idx.Block(bt.b0)
	off, n := idx.Block(bt.b0 + int64(k))
	return bt.buf[off-start : off-start+n]
}

// write makes the blocks past p.Next: it finds those a cut-short run left in the slot, then
// fills batches in one goroutine while this one writes, syncs and reads back the batch
// before, and records progress every saveEvery batches and when it stops.
func (in *installer) write(ctx context.Context, p Progress, resuming bool) error {
	idx := in.idx
	bs := int64(idx.BlockSize())
	batchBytes := max(in.o.BatchSize, 0)
	if batchBytes == 0 {
		batchBytes = DefaultBatchSize
	}
	in.batchBlocks = max(batchBytes/bs, 1)
	in.buf = make([]byte, in.batchBlocks*bs)
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
	plan, err := blockindex.Plan(in.o.Running, runningLen, idx, in.batchBlocks*bs)
	if err != nil {
		return fmt.Errorf("install: plan: %w", err)
	}
	in.log.Info("firmware install: planned", "image", in.o.Image.Name, "copy", plan.CopyBytes, "fetch", plan.FetchBytes)

	// Two batches in all: one filling while the other is written. The first in buf.
	free := make(chan *batch, 2)
	for _, b := range [][]byte{in.buf, make([]byte, len(in.buf))} {
		free <- &batch{buf: b, src: make([]source, in.batchBlocks), hash: make([][sha256.Size]byte, in.batchBlocks)}
	}
	full := make(chan *batch)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var fillErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(full)
		fillErr = in.fillAll(fctx, p.Next, plan, free, full)
	})
	var writeErr error
	saved, since := p.Next, 0
	for bt := range full {
		if writeErr != nil {
			continue // draining, so that the filler ends
		}
		if writeErr = in.store(bt); writeErr != nil {
			stop()
			continue
		}
		in.res.Copied += bt.copied
		in.res.Fetched += bt.fetched
		in.res.CopyMismatches += bt.mismatches
		p.Next = bt.b0 + int64(bt.good)
		if since++; since >= saveEvery && p.Next < idx.Blocks() {
			if writeErr = in.save(p); writeErr != nil {
				stop()
				continue
			}
			saved, since = p.Next, 0
		}
		if in.o.OnBatch != nil && bt.good > 0 {
			in.o.OnBatch(min(p.Next*bs, idx.Len()), idx.Len())
		}
		free <- bt
	}
	wg.Wait()
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

func (in *installer) save(p Progress) error {
	if err := in.o.Progress.Save(p); err != nil {
		return fmt.Errorf("install: %w", err)
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
	for b0 := from; b0 < idx.Blocks(); b0 += in.batchBlocks {
		if err := ctx.Err(); err != nil {
			return from, fmt.Errorf("install: %w", err)
		}
		b1 := min(b0+in.batchBlocks, idx.Blocks())
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

// fillAll fills batches from block `from` on, in order, and hands each to full, a batch cut
// short by an error too (with the blocks that came whole and match), then returns the error.
func (in *installer) fillAll(ctx context.Context, from int64, plan *blockindex.Delta, free <-chan *batch, full chan<- *batch) error {
	idx := in.idx
	bs := int64(idx.BlockSize())
	var ci int // cursor into plan.Copies, in image order
	for b0 := from; b0 < idx.Blocks(); b0 += in.batchBlocks {
		var bt *batch
		select {
		case bt = <-free:
		case <-ctx.Done():
			return fmt.Errorf("install: %w", ctx.Err())
		}
		b1 := min(b0+in.batchBlocks, idx.Blocks())
		bt.b0, bt.n, bt.good = b0, int(b1-b0), 0
		bt.copied, bt.fetched, bt.mismatches = 0, 0, 0
		for b := b0; b < b1; b++ {
			off := b * bs
			for ci < len(plan.Copies) && plan.Copies[ci].To+plan.Copies[ci].Len <= off {
				ci++
			}
			bt.src[b-b0] = fetch
			if ci < len(plan.Copies) && plan.Copies[ci].To <= off {
				bt.src[b-b0] = plan.Copies[ci].From + off - plan.Copies[ci].To
			}
		}
		err := in.fill(ctx, bt)
		// Even cut short: what came whole and matches is written, not fetched again.
		full <- bt
		if err != nil {
			return err
		}
	}
	return nil
}

// fill fills a batch and checks each block against the index: copies from the running slot
// first (one read per run contiguous there; a block that does not match is fetched
// instead), then fetches (one Range request per run of blocks to fetch). It sets bt.good to
// the blocks from the start that are filled and match, all of them unless it fails.
func (in *installer) fill(ctx context.Context, bt *batch) error {
	idx := in.idx
	bs := int64(idx.BlockSize())
	src := bt.src[:bt.n]
	start, _ := idx.Block(bt.b0)
	for i := 0; i < len(src); {
		j := i + 1
		if src[i] != fetch {
			for j < len(src) && src[j] == src[j-1]+bs {
				j++
			}
			off, _ := idx.Block(bt.b0 + int64(i))
			endOff, endLen := idx.Block(bt.b0 + int64(j) - 1)
			if _, err := in.o.Running.ReadAt(bt.buf[off-start:endOff+endLen-start], src[i]); err != nil {
				in.log.Warn("firmware install: running slot unreadable, fetching instead", "offset", src[i], "err", err)
			}
			for k := i; k < j; k++ {
				if idx.Check(bt.b0+int64(k), bt.block(idx, k)) != nil {
					src[k] = fetch
					bt.mismatches++
				} else {
					bt.copied += int64(len(bt.block(idx, k)))
				}
			}
		}
		i = j
	}
	var err error
	good := len(src)
	for i := 0; i < len(src) && err == nil; {
		j := i + 1
		if src[i] != fetch {
			i = j
			continue
		}
		for j < len(src) && src[j] == fetch {
			j++
		}
		off, _ := idx.Block(bt.b0 + int64(i))
		endOff, endLen := idx.Block(bt.b0 + int64(j) - 1)
		w := &fill{p: bt.buf[off-start : endOff+endLen-start]}
		if err = in.o.Fetcher.FetchRange(ctx, in.o.Image, off, int64(len(w.p)), w); err != nil {
			err = fmt.Errorf("install: fetch: %w", err)
			good = i
		}
		bt.fetched += int64(w.n)
		for k := i; k < j; k++ {
			boff, bn := idx.Block(bt.b0 + int64(k))
			if boff+bn > off+int64(w.n) {
				break // cut short here; err is set
			}
			if cerr := idx.Check(bt.b0+int64(k), bt.block(idx, k)); cerr != nil {
				good, err = k, fmt.Errorf("%w: %s: %w", ErrBlock, in.o.Image.Name, cerr)
				break
			}
			if err != nil {
				good = k + 1
			}
		}
		i = j
	}
	for k := range good {
		h, herr := idx.Hash(bt.b0 + int64(k))
		if herr != nil {
			bt.good = k
			return errors.Join(err, fmt.Errorf("install: %w", herr))
		}
		bt.hash[k] = h
	}
	bt.good = good
	return err
}

// store writes the batch's good blocks, every one of them checked against the index, syncs
// the slot (which drops them from the page cache) and reads them back from the medium in one
// read to check them again.
func (in *installer) store(bt *batch) error {
	if bt.good == 0 {
		return nil
	}
	idx := in.idx
	for k := range bt.good {
		off, _ := idx.Block(bt.b0 + int64(k))
		if err := in.o.Slot.WriteBlock(off, bt.block(idx, k)); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	if err := in.o.Slot.Sync(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	start, _ := idx.Block(bt.b0)
	endOff, endLen := idx.Block(bt.b0 + int64(bt.good) - 1)
	buf := bt.buf[:endOff+endLen-start]
	if n, err := in.o.Slot.ReadAt(buf, start); n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("install: read back the slot at %d: %w", start+int64(n), err)
	}
	for k := range bt.good {
		if sha256.Sum256(bt.block(idx, k)) != bt.hash[k] {
			off, _ := idx.Block(bt.b0 + int64(k))
			return fmt.Errorf("%w: block %d (offset %d)", ErrReadBack, bt.b0+int64(k), off)
		}
	}
	return nil
}

// readBack ends the slot's image and checks it, read back whole, against the image target.
func (in *installer) readBack(ctx context.Context, p Progress) error {
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
// chunk: two reads per block (the check, then the hash kept for the read-back) become one
// system call per chunk. Not safe for concurrent use: only the goroutine that fills batches
// reads hashes while they are filled.
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

// fill is a writer into a fixed buffer that must be filled exactly.
type fill struct {
	p []byte
	n int
}

func (w *fill) Write(b []byte) (int, error) {
	if len(b) > len(w.p)-w.n {
		return 0, io.ErrShortWrite
	}
	w.n += copy(w.p[w.n:], b)
	return len(b), nil
}

// ReadFrom reads straight into the buffer, so that io.Copy neither copies every byte
// through a buffer of its own nor allocates one per range.
func (w *fill) ReadFrom(r io.Reader) (int64, error) {
	start := w.n
	for w.n < len(w.p) {
		n, err := r.Read(w.p[w.n:])
		w.n += n
		if err == io.EOF {
			return int64(w.n - start), nil
		}
		if err != nil {
			return int64(w.n - start), err
		}
	}
	var more [1]byte
	if n, _ := io.ReadFull(r, more[:]); n > 0 {
		return int64(w.n - start), io.ErrShortWrite
	}
	return int64(w.n - start), nil
}
