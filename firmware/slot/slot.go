// Package slot is the inactive firmware slot that an update is written into: a partition of
// the phone's flash on a real board (/dev/mmcblk0p2 and the like, named by the board file),
// or a file on the simulated phone (<data>/slots/a.img and b.img).
//
// It serves promise 6 (a firmware update never leaves a phone without a working slot) by
// making the slot's part of an install checkable: an image too large for the slot is refused
// before anything is written ([ErrTooSmall]); writes are whole blocks at block offsets inside
// the declared image, one block or a run of them ([ErrUnaligned], [ErrPastEnd]); after
// [Slot.Sync] the written range is
// on the medium and read back from it, so [Slot.VerifyBlock] checks the flash rather than
// memory; and any failed write or sync is sticky, so an install cannot carry on past a block
// that did not land. Which blocks to verify, and against which hashes, is the installer's
// business: it checks every block against the signed block index.
//
// # Use
//
//	s, err := slot.OpenDevice("/dev/mmcblk0p3", 4096) // or slot.CreateFile(path, capacity, 4096)
//	err = s.Begin(imageLen)                             // ErrTooSmall before any write
//	for each run of blocks: s.WriteBlocks(off, blocks)  // one write; or s.WriteBlock(off, block)
//	every so often: s.Sync(), then s.VerifyBlock(...) for the blocks written since, then
//	                record them as done (so that a resumed install skips them)
//	err = s.End()                                       // sync; no more writes
//
// One goroutine may write (WriteBlock, WriteBlocks) while another syncs and reads back (Sync,
// DropCache, ReadAt, VerifyBlock), so that an installer need not stop fetching while the
// medium catches up; otherwise a Slot is not safe for concurrent use. The installer declares
// the interface it needs where it uses one; both kinds are this one type, since both are a
// file descriptor that differs only in how it is opened and sized.
//
// # Why not O_DIRECT
//
// O_DIRECT would make every write and read bypass the page cache, but it demands buffers
// aligned in memory and lengths in whole sectors (a padded last block), and it still needs
// fdatasync for the device's own write cache. Instead Sync calls fdatasync and then drops
// the page cache for the range written since the previous Sync (posix_fadvise DONTNEED), so
// that the next read of that range comes from the medium. Plain buffers, the same effect for
// verification.
package slot

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Errors. Those about a block come wrapped in a [*BlockError] that names it.
var (
	// ErrBlockSize is returned by the openers for a block size that is not a power of two
	// from 512 to 1 MiB, or not a multiple of the device's logical sector size.
	ErrBlockSize = errors.New("slot: bad block size")
	// ErrNotBlockDevice is returned by OpenDevice for anything but a block device.
	ErrNotBlockDevice = errors.New("slot: not a block device")
	// ErrTooSmall is returned by Begin when the image is larger than the slot.
	ErrTooSmall = errors.New("slot: image larger than the slot")
	// ErrImageLen is returned by Begin for an image length of zero or less.
	ErrImageLen = errors.New("slot: bad image length")
	// ErrNotBegun is returned by WriteBlock and WriteBlocks before a successful Begin.
	ErrNotBegun = errors.New("slot: no image begun")
	// ErrEnded is returned by WriteBlock and WriteBlocks after End.
	ErrEnded = errors.New("slot: image already ended")
	// ErrUnaligned is returned by WriteBlock and WriteBlocks for an offset that is not a
	// multiple of the block size, or bytes that are not whole blocks and do not end with the
	// image's last block.
	ErrUnaligned = errors.New("slot: block not aligned")
	// ErrPastEnd is returned by WriteBlock and WriteBlocks for bytes reaching past the
	// image's end.
	ErrPastEnd = errors.New("slot: block past the end of the image")
	// ErrShortRead is returned by VerifyBlock when the slot holds fewer bytes than asked.
	ErrShortRead = errors.New("slot: short read-back")
	// ErrMismatch is returned by VerifyBlock when a block reads back different from its hash.
	ErrMismatch = errors.New("slot: read-back differs from what was written")
)

// Block sizes the slot accepts: a sector at least, and small enough that a block buffer
// stays small on the phone.
const (
	MinBlockSize = 512
	MaxBlockSize = 1 << 20
)

// BlockError is a failure at one block of the slot.
type BlockError struct {
	Slot  string // the slot's path
	Block int64  // the block's number (Off / block size)
	Off   int64  // the block's offset in bytes
	Err   error
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("slot %s: block %d (offset %d): %v", e.Slot, e.Block, e.Off, e.Err)
}

func (e *BlockError) Unwrap() error { return e.Err }

// Slot is an open inactive slot.
type Slot struct {
	f         *os.File
	path      string
	capacity  int64
	blockSize int64
	buf       []byte // VerifyBlock's read-back buffer, one block

	// mu guards the fields below: the writing goroutine and the syncing one share them.
	mu       sync.Mutex
	imageLen int64 // from Begin; 0 until then
	ended    bool
	// dirtyLo and dirtyHi bound the bytes written since the last Sync (empty when equal).
	dirtyLo, dirtyHi int64
	// err is the first write or sync failure; every later write, Sync and End returns it,
	// since what reached the medium after a failed write or fsync is unknown.
	err error
}

// CreateFile makes the file at path a slot of capacity bytes (the simulated phone's slot):
// it is created if missing, cut or extended to capacity if not, and its whole capacity is
// reserved on the file system, so that a slot too large for the flash fails here (ENOSPC)
// rather than halfway through an install. The file and its directory are synced.
func CreateFile(path string, capacity int64, blockSize int) (*Slot, error) {
	if err := checkBlockSize(blockSize, 1); err != nil {
		return nil, fmt.Errorf("slot %s: %w", path, err)
	}
	if capacity <= 0 {
		return nil, fmt.Errorf("slot %s: capacity %d: %w", path, capacity, ErrImageLen)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("slot: %w", err)
	}
	if err := reserve(f, capacity); err != nil {
		f.Close()
		return nil, fmt.Errorf("slot %s: reserve %d bytes: %w", path, capacity, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("slot %s: %w", path, err)
	}
	return newSlot(f, path, capacity, blockSize), nil
}

// reserve makes f exactly capacity bytes long with every byte allocated.
func reserve(f *os.File, capacity int64) error {
	if err := f.Truncate(capacity); err != nil {
		return err
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, capacity)
	if errors.Is(err, unix.EOPNOTSUPP) {
		// A file system without fallocate: the slot stays sparse, and a full file system
		// shows at the write that finds it, as a sticky error naming the block.
		err = nil
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// OpenFile opens an existing slot file; its capacity is its size now.
func OpenFile(path string, blockSize int) (*Slot, error) {
	if err := checkBlockSize(blockSize, 1); err != nil {
		return nil, fmt.Errorf("slot %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("slot: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("slot: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("slot %s: not a regular file (%v)", path, fi.Mode().Type())
	}
	return newSlot(f, path, fi.Size(), blockSize), nil
}

// OpenDevice opens a block device (a partition of the phone's flash) as a slot; its
// capacity is the device's size (BLKGETSIZE64). It opens with O_EXCL, which for a block
// device fails with EBUSY while the device is mounted or held open exclusively elsewhere:
// the running slot cannot be opened for writing by mistake.
func OpenDevice(path string, blockSize int) (*Slot, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("slot: %w", err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return nil, fmt.Errorf("slot %s: %w (%v)", path, ErrNotBlockDevice, fi.Mode().Type())
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("slot: %w", err)
	}
	size, sector, err := deviceGeometry(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("slot %s: %w", path, err)
	}
	if err := checkBlockSize(blockSize, sector); err != nil {
		f.Close()
		return nil, fmt.Errorf("slot %s: %w", path, err)
	}
	return newSlot(f, path, size, blockSize), nil
}

func checkBlockSize(n, sector int) error {
	if n < MinBlockSize || n > MaxBlockSize || n&(n-1) != 0 {
		return fmt.Errorf("%w: %d (a power of two from %d to %d)", ErrBlockSize, n, MinBlockSize, MaxBlockSize)
	}
	if sector <= 0 || n%sector != 0 {
		return fmt.Errorf("%w: %d is not a multiple of the device's %d-byte sectors", ErrBlockSize, n, sector)
	}
	return nil
}

func newSlot(f *os.File, path string, capacity int64, blockSize int) *Slot {
	return &Slot{f: f, path: path, capacity: capacity, blockSize: int64(blockSize)}
}

// Size is the slot's capacity in bytes.
func (s *Slot) Size() int64 { return s.capacity }

// BlockSize is the size of the blocks WriteBlock and WriteBlocks take.
func (s *Slot) BlockSize() int { return int(s.blockSize) }

// Path is the slot's file or device.
func (s *Slot) Path() string { return s.path }

// Begin declares that the image to be written is imageLen bytes. It writes nothing, so a
// resumed install calls it again after reopening the slot. An image larger than the slot
// is [ErrTooSmall].
func (s *Slot) Begin(imageLen int64) error {
	if imageLen <= 0 {
		return fmt.Errorf("slot %s: %w: %d", s.path, ErrImageLen, imageLen)
	}
	if imageLen > s.capacity {
		return fmt.Errorf("slot %s: %w: the image is %d bytes, the slot %d", s.path, ErrTooSmall, imageLen, s.capacity)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.imageLen = imageLen
	s.ended = false
	return nil
}

// WriteBlock writes p at off: off a multiple of the block size, and p a whole block, or the
// image's last block ending exactly at the image's end. A failed write is returned as a
// [*BlockError], and again by every later WriteBlock, WriteBlocks, Sync and End.
func (s *Slot) WriteBlock(off int64, p []byte) error {
	if n := int64(len(p)); n > s.blockSize {
		return s.check(off, n, fmt.Errorf("%w: %d bytes, want %d or the rest of the image", ErrUnaligned, n, s.blockSize))
	}
	return s.WriteBlocks(off, p)
}

// WriteBlocks writes a run of blocks with one write: off a multiple of the block size, and p
// whole blocks, the last of which may be the image's last, ending exactly at the image's
// end. A failed write is returned as a [*BlockError] naming the first block it did not
// write whole, and again by every later WriteBlock, WriteBlocks, Sync and End.
func (s *Slot) WriteBlocks(off int64, p []byte) error {
	n := int64(len(p))
	if err := s.check(off, n, nil); err != nil {
		return err
	}
	if m, err := s.f.WriteAt(p, off); err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err == nil {
			s.err = s.blockErr(off+int64(m)/s.blockSize*s.blockSize, err)
		}
		return s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirtyLo == s.dirtyHi {
		s.dirtyLo, s.dirtyHi = off, off+n
	} else {
		s.dirtyLo, s.dirtyHi = min(s.dirtyLo, off), max(s.dirtyHi, off+n)
	}
	return nil
}

// check says whether n bytes at off may be written now; bad, if not nil, is the error to
// return once the slot's own state is found fine.
func (s *Slot) check(off, n int64, bad error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.imageLen == 0:
		return fmt.Errorf("slot %s: %w", s.path, ErrNotBegun)
	case s.ended:
		return fmt.Errorf("slot %s: %w", s.path, ErrEnded)
	case off < 0 || off%s.blockSize != 0:
		return s.blockErr(off, fmt.Errorf("%w: offset is not a multiple of %d", ErrUnaligned, s.blockSize))
	case off >= s.imageLen || n > s.imageLen-off:
		return s.blockErr(off, fmt.Errorf("%w: %d bytes at %d, the image is %d", ErrPastEnd, n, off, s.imageLen))
	case bad != nil:
		return s.blockErr(off, bad)
	case n == 0 || n%s.blockSize != 0 && off+n != s.imageLen:
		return s.blockErr(off, fmt.Errorf("%w: %d bytes, want whole blocks of %d or the rest of the image", ErrUnaligned, n, s.blockSize))
	}
	return nil
}

func (s *Slot) blockErr(off int64, err error) error {
	return &BlockError{Slot: s.path, Block: off / s.blockSize, Off: off, Err: err}
}

// Sync puts everything written so far on the medium (fdatasync), then drops the page cache
// for what was written since the last Sync, so that reading it back reads the medium. What
// a concurrent write adds while it runs is left for the next Sync.
func (s *Slot) Sync() error {
	s.mu.Lock()
	err := s.err
	lo, hi := s.dirtyLo, s.dirtyHi
	s.dirtyLo, s.dirtyHi = 0, 0
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err == nil {
			s.err = fmt.Errorf("slot %s: sync: %w", s.path, err)
		}
		return s.err
	}
	if lo != hi {
		// Advice only: where the kernel keeps the pages (tmpfs), the read-back reads memory,
		// which is then the medium.
		_ = unix.Fadvise(int(s.f.Fd()), lo, hi-lo, unix.FADV_DONTNEED)
	}
	return nil
}

// DropCache drops the page cache for n bytes at off, so that the next read of them reads
// the medium: for checking what an earlier process wrote, after a Sync has put it there.
// Advice only, as in Sync.
func (s *Slot) DropCache(off, n int64) {
	_ = unix.Fadvise(int(s.f.Fd()), off, n, unix.FADV_DONTNEED)
}

// ReadAt reads from the slot as [io.ReaderAt] does, anywhere up to its capacity (io.EOF
// beyond).
func (s *Slot) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("slot %s: read at negative offset %d", s.path, off)
	}
	if off >= s.capacity {
		return 0, io.EOF
	}
	want := len(p)
	if rest := s.capacity - off; int64(want) > rest {
		p = p[:rest]
	}
	n, err := s.f.ReadAt(p, off)
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// VerifyBlock reads n bytes at off back from the slot and checks them against want, their
// SHA-256. A mismatch is [ErrMismatch] and fewer bytes than n [ErrShortRead], each in a
// [*BlockError] naming the block. Call Sync first, or the read-back may come from memory.
// It keeps a buffer of its own: not for two goroutines at once.
func (s *Slot) VerifyBlock(off int64, n int, want [sha256.Size]byte) error {
	if n <= 0 || n > int(s.blockSize) {
		return s.blockErr(off, fmt.Errorf("%w: verify %d bytes, blocks are %d", ErrUnaligned, n, s.blockSize))
	}
	if s.buf == nil {
		s.buf = make([]byte, s.blockSize)
	}
	got, err := s.f.ReadAt(s.buf[:n], off)
	if got < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %d of %d bytes", ErrShortRead, got, n)
		}
		return s.blockErr(off, err)
	}
	if sha256.Sum256(s.buf[:n]) != want {
		return s.blockErr(off, ErrMismatch)
	}
	return nil
}

// End says the image is complete: it syncs, and any later write is [ErrEnded]. It returns
// the first write or sync failure, if any. No write may run concurrently with it.
func (s *Slot) End() error {
	if err := s.Sync(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	return nil
}

// Close closes the slot without syncing it.
func (s *Slot) Close() error {
	return s.f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
