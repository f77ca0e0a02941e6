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
	// signed one); nothing of its batch was written. It comes joined with
	// blockindex.ErrMismatch.
	ErrBlock = errors.New("install: fetched block does not match the signed index")
	// ErrImage: the image read back from the slot is not the signed image. The progress
	// record is reset, so the next Install writes the slot anew.
	ErrImage = errors.New("install: image in the slot does not match the signed image")
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
	// Sync puts what was written on the medium, so that a read-back reads the medium.
	Sync() error
	// VerifyBlock reads n bytes at off back and checks their SHA-256.
	VerifyBlock(off int64, n int, want [sha256.Size]byte) error
	ReadAt(p []byte, off int64) (int, error)
	// End syncs and closes the image to writes.
	End() error
	// Size is the slot's capacity, BlockSize the block WriteBlock takes.
	Size() int64
	BlockSize() int
}

// DefaultBatchSize is how much of the image is fetched, written and recorded at a time: what
// a resumed install may fetch twice, and the bulk of the memory an install holds.
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
	// OnBatch, if set, is called after each batch is recorded, with the bytes of the image
	// done and in all (for a progress bar and the status).
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
	if p.Image != want.Image || p.Index != want.Index || p.Length != want.Length || p.Next > idx.Blocks() {
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
	if err := in.run(ctx, p, want); err != nil {
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

func (in *installer) run(ctx context.Context, p, want Progress) error {
	o, idx, res, log := in.o, in.idx, in.res, in.log
	if p.Next > 0 {
		res.Resumed = min(p.Next*int64(idx.BlockSize()), o.Image.Length)
		log.Info("firmware install: resuming", "image", o.Image.Name, "done", res.Resumed, "length", o.Image.Length)
	}
	if err := in.write(ctx, p); err != nil {
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
	o   Options
	idx *blockindex.Index
	res *Result
	log *slog.Logger
	buf []byte // one batch
}

// source is where a block of the new image comes from: a running-slot offset, or -1 to fetch.
type source = int64

const fetch source = -1

// write makes blocks [p.Next, Blocks) in batches and records each batch once verified.
func (in *installer) write(ctx context.Context, p Progress) error {
	idx := in.idx
	bs := int64(idx.BlockSize())
	batch := max(in.o.BatchSize, 0)
	if batch == 0 {
		batch = DefaultBatchSize
	}
	batchBlocks := max(batch/bs, 1)
	in.buf = make([]byte, batchBlocks*bs)
	if p.Next >= idx.Blocks() {
		return nil
	}
	runningLen := in.o.RunningLen
	if in.o.Running == nil {
		runningLen = 0
	}
	plan, err := blockindex.Plan(in.o.Running, runningLen, idx, batchBlocks*bs)
	if err != nil {
		return fmt.Errorf("install: plan: %w", err)
	}
	in.log.Info("firmware install: planned", "image", in.o.Image.Name, "copy", plan.CopyBytes, "fetch", plan.FetchBytes)
	src := make([]source, batchBlocks)
	var ci, fi int // cursors into plan.Copies and plan.Fetches, both in image order
	for b0 := p.Next; b0 < idx.Blocks(); b0 += batchBlocks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("install: %w", err)
		}
		b1 := min(b0+batchBlocks, idx.Blocks())
		for b := b0; b < b1; b++ {
			off := b * bs
			for ci < len(plan.Copies) && plan.Copies[ci].To+plan.Copies[ci].Len <= off {
				ci++
			}
			for fi < len(plan.Fetches) && plan.Fetches[fi].Off+plan.Fetches[fi].Len <= off {
				fi++
			}
			src[b-b0] = fetch
			if ci < len(plan.Copies) && plan.Copies[ci].To <= off {
				src[b-b0] = plan.Copies[ci].From + off - plan.Copies[ci].To
			}
		}
		if err := in.batch(ctx, b0, b1, src[:b1-b0]); err != nil {
			return err
		}
		next := p
		next.Next = b1
		if err := in.o.Progress.Save(next); err != nil {
			return fmt.Errorf("install: %w", err)
		}
		if in.o.OnBatch != nil {
			in.o.OnBatch(min(b1*bs, idx.Len()), idx.Len())
		}
	}
	return nil
}

// batch fills the buffer with blocks [b0, b1), checks each against the index, and only then
// writes, syncs and reads them back.
func (in *installer) batch(ctx context.Context, b0, b1 int64, src []source) error {
	idx := in.idx
	bs := int64(idx.BlockSize())
	start, _ := idx.Block(b0)
	lastOff, lastLen := idx.Block(b1 - 1)
	buf := in.buf[:lastOff+lastLen-start]
	block := func(b int64) []byte {
		off, n := idx.Block(b)
		return buf[off-start : off-start+n]
	}
	// Copies, one read per run contiguous in the running slot.
	for i := 0; i < len(src); {
		j := i + 1
		if src[i] != fetch {
			for j < len(src) && src[j] == src[j-1]+bs {
				j++
			}
			b := b0 + int64(i)
			off, _ := idx.Block(b)
			endOff, endLen := idx.Block(b0 + int64(j) - 1)
			if _, err := in.o.Running.ReadAt(buf[off-start:endOff+endLen-start], src[i]); err != nil {
				in.log.Warn("firmware install: running slot unreadable, fetching instead", "offset", src[i], "err", err)
			}
			for k := i; k < j; k++ {
				if idx.Check(b0+int64(k), block(b0+int64(k))) != nil {
					src[k] = fetch
					in.res.CopyMismatches++
				} else {
					in.res.Copied += int64(len(block(b0 + int64(k))))
				}
			}
		}
		i = j
	}
	// Fetches, one Range request per run of blocks to fetch.
	for i := 0; i < len(src); {
		j := i + 1
		if src[i] == fetch {
			for j < len(src) && src[j] == fetch {
				j++
			}
			off, _ := idx.Block(b0 + int64(i))
			endOff, endLen := idx.Block(b0 + int64(j) - 1)
			dst := buf[off-start : endOff+endLen-start]
			w := &fill{p: dst}
			err := in.o.Fetcher.FetchRange(ctx, in.o.Image, off, int64(len(dst)), w)
			in.res.Fetched += int64(w.n)
			if err != nil {
				return fmt.Errorf("install: fetch: %w", err)
			}
			for k := i; k < j; k++ {
				if err := idx.Check(b0+int64(k), block(b0+int64(k))); err != nil {
					return fmt.Errorf("%w: %s: %w", ErrBlock, in.o.Image.Name, err)
				}
			}
		}
		i = j
	}
	// Every block of the batch now matches the index.
	for b := b0; b < b1; b++ {
		off, _ := idx.Block(b)
		if err := in.o.Slot.WriteBlock(off, block(b)); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	if err := in.o.Slot.Sync(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	for b := b0; b < b1; b++ {
		off, n := idx.Block(b)
		h, err := idx.Hash(b)
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		if err := in.o.Slot.VerifyBlock(off, int(n), h); err != nil {
			return fmt.Errorf("install: %w", err)
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
// chunk: two reads per block (check before the write, verify after) become one system call
// per chunk. Not safe for concurrent use, as the installer is not.
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
