package slot_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/wallphone/wallphone/firmware/slot"
	"github.com/wallphone/wallphone/internal/tmpfs"
)

const bs = 4096

// installer is the method set the installer is expected to declare where it uses a slot;
// both kinds must satisfy it.
type installer interface {
	Size() int64
	Begin(imageLen int64) error
	WriteBlock(off int64, p []byte) error
	WriteBlocks(off int64, p []byte) error
	ReadAt(p []byte, off int64) (int, error)
	VerifyBlock(off int64, n int, want [sha256.Size]byte) error
	Sync() error
	DropCache(off, n int64)
	End() error
	Close() error
}

var _ installer = (*slot.Slot)(nil)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeImage writes img block by block, syncs, and verifies every block against its SHA-256,
// as the installer does.
func writeImage(t *testing.T, s *slot.Slot, img []byte) {
	t.Helper()
	if err := s.Begin(int64(len(img))); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(img); off += bs {
		end := min(off+bs, len(img))
		if err := s.WriteBlock(int64(off), img[off:end]); err != nil {
			t.Fatalf("block at %d: %v", off, err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(img); off += bs {
		end := min(off+bs, len(img))
		if err := s.VerifyBlock(int64(off), end-off, sha256.Sum256(img[off:end])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
	// As a resumed install checks what an earlier process wrote: from the medium.
	s.DropCache(0, int64(len(img)))
	got := make([]byte, len(img))
	if _, err := s.ReadAt(got, 0); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read after DropCache: %v, equal %v", err, bytes.Equal(got, img))
	}
}

func TestFileSlotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slots", "b.img")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := slot.CreateFile(path, 1<<20, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Size() != 1<<20 {
		t.Fatalf("size %d, want %d", s.Size(), 1<<20)
	}
	img := randomBytes(1, 300*1024+123) // ends in a partial block
	writeImage(t, s, img)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1<<20 {
		t.Fatalf("slot file grew or shrank to %d bytes", len(got))
	}
	if !bytes.Equal(got[:len(img)], img) {
		t.Fatal("slot does not hold the image")
	}
}

// CreateFile on an existing slot of another size makes it the asked capacity, and OpenFile
// takes the capacity from the file as it is.
func TestCreateFileResizesAndOpenFileKeeps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	if err := os.WriteFile(path, make([]byte, 3*bs), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := slot.CreateFile(path, 8*bs, bs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size() != 8*bs {
		t.Fatalf("size %d", s.Size())
	}
	s.Close()
	s, err = slot.OpenFile(path, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Size() != 8*bs {
		t.Fatalf("OpenFile size %d", s.Size())
	}
}

func TestOpenFileMissing(t *testing.T) {
	_, err := slot.OpenFile(filepath.Join(t.TempDir(), "nope.img"), bs)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

func TestBadBlockSize(t *testing.T) {
	for _, n := range []int{0, -4096, 1000, 256, 3 << 12} {
		_, err := slot.CreateFile(filepath.Join(t.TempDir(), "a.img"), 1<<20, n)
		if !errors.Is(err, slot.ErrBlockSize) {
			t.Errorf("block size %d: got %v, want ErrBlockSize", n, err)
		}
	}
}

// An image larger than the slot is refused before a byte is written.
func TestTooSmall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	s, err := slot.CreateFile(path, 4*bs, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Begin(4*bs + 1)
	if !errors.Is(err, slot.ErrTooSmall) {
		t.Fatalf("got %v, want ErrTooSmall", err)
	}
	if !strings.Contains(err.Error(), "16385") || !strings.Contains(err.Error(), "16384") {
		t.Errorf("error should give both sizes: %v", err)
	}
	if err := s.WriteBlock(0, make([]byte, bs)); !errors.Is(err, slot.ErrNotBegun) {
		t.Fatalf("write after refused Begin: got %v, want ErrNotBegun", err)
	}
	for _, n := range []int64{0, -1} {
		if err := s.Begin(n); !errors.Is(err, slot.ErrImageLen) {
			t.Errorf("Begin(%d): got %v, want ErrImageLen", n, err)
		}
	}
}

// Writes are whole blocks at block offsets inside the image; only the image's last block may
// be short, and it must end exactly at the image's end.
func TestWriteBlockBounds(t *testing.T) {
	s, err := slot.CreateFile(filepath.Join(t.TempDir(), "a.img"), 16*bs, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const imageLen = 3*bs + 100
	if err := s.Begin(imageLen); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		off  int64
		n    int
		want error
	}{
		{"first block", 0, bs, nil},
		{"last partial block", 3 * bs, 100, nil},
		{"unaligned offset", 1, bs, slot.ErrUnaligned},
		{"negative offset", -bs, bs, slot.ErrUnaligned},
		{"short block inside image", bs, bs - 1, slot.ErrUnaligned},
		{"long block", bs, bs + 1, slot.ErrUnaligned},
		{"empty block", bs, 0, slot.ErrUnaligned},
		{"last block too short", 3 * bs, 99, slot.ErrUnaligned},
		{"last block full (past image end)", 3 * bs, bs, slot.ErrPastEnd},
		{"block past image end", 4 * bs, bs, slot.ErrPastEnd},
	} {
		err := s.WriteBlock(tc.off, make([]byte, tc.n))
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteBlock(0, make([]byte, bs)); !errors.Is(err, slot.ErrEnded) {
		t.Fatalf("write after End: got %v, want ErrEnded", err)
	}
}

// A run of blocks is whole blocks from a block offset, of which only the image's last may be
// short, ending exactly at the image's end; the first run error also names its block.
func TestWriteBlocksBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	s, err := slot.CreateFile(path, 16*bs, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const imageLen = 5*bs + 100
	img := randomBytes(4, imageLen)
	if err := s.WriteBlocks(0, img[:bs]); !errors.Is(err, slot.ErrNotBegun) {
		t.Fatalf("before Begin: got %v, want ErrNotBegun", err)
	}
	if err := s.Begin(imageLen); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		off, n int64
		want   error
	}{
		{"two blocks", 0, 2 * bs, nil},
		{"to the image's end, short last block", 2 * bs, 3*bs + 100, nil},
		{"one block", bs, bs, nil},
		{"unaligned offset", 100, 2 * bs, slot.ErrUnaligned},
		{"a partial block inside the image", bs, 2*bs - 1, slot.ErrUnaligned},
		{"a partial block after whole ones", bs, 2*bs + 1, slot.ErrUnaligned},
		{"short of the image's end", 2 * bs, 3*bs + 99, slot.ErrUnaligned},
		{"empty", bs, 0, slot.ErrUnaligned},
		{"past the image's end", 2 * bs, 4 * bs, slot.ErrPastEnd},
	} {
		var err error
		if tc.off+tc.n <= imageLen {
			err = s.WriteBlocks(tc.off, img[tc.off:tc.off+tc.n])
		} else {
			err = s.WriteBlocks(tc.off, make([]byte, tc.n))
		}
		var be *slot.BlockError
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || err != nil && (!errors.As(err, &be) || be.Off != tc.off) {
			t.Errorf("%s: got %v, want %v naming offset %d", tc.name, err, tc.want, tc.off)
		}
	}
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
	s.DropCache(0, imageLen)
	got := make([]byte, imageLen)
	if _, err := s.ReadAt(got, 0); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, img))
	}
	if err := s.WriteBlocks(0, img[:bs]); !errors.Is(err, slot.ErrEnded) {
		t.Fatalf("after End: got %v, want ErrEnded", err)
	}
}

// One goroutine writes runs while another syncs and reads back what the first says it has
// written, as the installer does: every block read back after a Sync is the one written (run
// with -race, the detector checks the slot's own bookkeeping too).
func TestWriteWhileSyncing(t *testing.T) {
	const blocks = 512
	img := randomBytes(5, blocks*bs)
	s, err := slot.CreateFile(filepath.Join(t.TempDir(), "a.img"), blocks*bs, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Begin(int64(len(img))); err != nil {
		t.Fatal(err)
	}
	written := make(chan int64)
	var werr error
	go func() {
		defer close(written)
		for b := int64(0); b < blocks; b += 8 {
			if werr = s.WriteBlocks(b*bs, img[b*bs:(b+8)*bs]); werr != nil {
				return
			}
			written <- b + 8
		}
	}()
	done := int64(0)
	for w := range written {
		if w-done < 64 && w < blocks {
			continue
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		for b := done; b < w; b++ {
			if err := s.VerifyBlock(b*bs, bs, sha256.Sum256(img[b*bs:(b+1)*bs])); err != nil {
				t.Fatal(err)
			}
		}
		done = w
	}
	if werr != nil || done != blocks {
		t.Fatalf("wrote to block %d: %v", done, werr)
	}
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
}

// A block that reads back different, or short, is named in the error.
func TestVerifyBlockMismatchAndShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	s, err := slot.CreateFile(path, 4*bs, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	img := randomBytes(2, 4*bs)
	if err := s.Begin(int64(len(img))); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(img); off += bs {
		if err := s.WriteBlock(int64(off), img[off:off+bs]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of block 2 behind the slot's back, as failing flash would.
	other, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.WriteAt([]byte{img[2*bs+7] ^ 1}, 2*bs+7); err != nil {
		t.Fatal(err)
	}
	err = s.VerifyBlock(2*bs, bs, sha256.Sum256(img[2*bs:3*bs]))
	var be *slot.BlockError
	if !errors.Is(err, slot.ErrMismatch) || !errors.As(err, &be) || be.Block != 2 || be.Off != 2*bs {
		t.Fatalf("got %v, want ErrMismatch naming block 2", err)
	}
	if !strings.Contains(err.Error(), "block 2") {
		t.Errorf("error should name the block: %v", err)
	}
	if err := s.VerifyBlock(bs, bs, sha256.Sum256(img[bs:2*bs])); err != nil {
		t.Fatalf("an intact block: %v", err)
	}
	// The slot file cut short (someone truncated it): the read-back comes up short.
	if err := other.Truncate(3*bs + 10); err != nil {
		t.Fatal(err)
	}
	other.Close()
	err = s.VerifyBlock(3*bs, bs, sha256.Sum256(img[3*bs:]))
	if !errors.Is(err, slot.ErrShortRead) || !errors.As(err, &be) || be.Block != 3 {
		t.Fatalf("got %v, want ErrShortRead naming block 3", err)
	}
}

func TestReadAtPastCapacity(t *testing.T) {
	s, err := slot.CreateFile(filepath.Join(t.TempDir(), "a.img"), 2*bs, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, bs)
	if n, err := s.ReadAt(buf, bs+bs/2); n != bs/2 || err != io.EOF {
		t.Fatalf("ReadAt across the end: n=%d err=%v, want %d, io.EOF", n, err, bs/2)
	}
	if _, err := s.ReadAt(buf, -1); err == nil {
		t.Fatal("negative offset read")
	}
}

// sparseSlot is a 1 MiB slot, begun, in a sparse file on a file system of 256 KiB: a slot
// made by truncate(1) or by an older agent would be sparse.
func sparseSlot(t *testing.T) *slot.Slot {
	t.Helper()
	path := filepath.Join(tmpfs.Mount(t, 256*1024), "b.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	s, err := slot.OpenFile(path, bs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Begin(1 << 20); err != nil {
		t.Fatal(err)
	}
	return s
}

// On a full file system a write into a sparse slot file fails with ENOSPC naming the block,
// and the failure is sticky: no later write, sync or end pretends all is well.
func TestFullFileSystemWrite(t *testing.T) {
	s := sparseSlot(t)
	block := randomBytes(3, bs)
	var werr error
	var off int64
	for off = 0; off < 1<<20; off += bs {
		if werr = s.WriteBlock(off, block); werr != nil {
			break
		}
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("got %v, want ENOSPC", werr)
	}
	var be *slot.BlockError
	if !errors.As(werr, &be) || be.Off != off {
		t.Fatalf("error %v should name the block at offset %d", werr, off)
	}
	if err := s.WriteBlock(0, block); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("a later write: got %v, want the first error again", err)
	}
	if err := s.WriteBlocks(0, append(block, block...)); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("a later run: got %v, want the first error again", err)
	}
	if err := s.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Sync: got %v, want the first error again", err)
	}
	if err := s.End(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("End: got %v, want the first error again", err)
	}
}

// A run that fills the file system is refused naming the first block it did not write
// whole (the run's first, or one inside it where the kernel wrote part of the run); the
// blocks before it hold what was written.
func TestFullFileSystemWriteBlocks(t *testing.T) {
	s := sparseSlot(t)
	img := randomBytes(6, 1<<20)
	const run = 3 * bs
	var off int64
	var err error
	for off = 0; off+run <= 1<<20; off += run {
		if err = s.WriteBlocks(off, img[off:off+run]); err != nil {
			break
		}
	}
	var be *slot.BlockError
	if !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &be) {
		t.Fatalf("got %v, want ENOSPC in a BlockError", err)
	}
	if be.Off < off || be.Off >= off+run || be.Off%bs != 0 {
		t.Fatalf("the error names offset %d: want a block of the run at %d", be.Off, off)
	}
	got := make([]byte, be.Off)
	if _, err := s.ReadAt(got, 0); err != nil || !bytes.Equal(got, img[:be.Off]) {
		t.Fatalf("the blocks before %d: %v, equal %v", be.Off, err, bytes.Equal(got, img[:be.Off]))
	}
}

// A slot file too large for its file system is refused when it is made, not halfway through
// an install: CreateFile reserves the whole capacity.
func TestCreateFileNoSpace(t *testing.T) {
	dir := tmpfs.Mount(t, 256*1024)
	_, err := slot.CreateFile(filepath.Join(dir, "b.img"), 1<<20, bs)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want ENOSPC", err)
	}
}
