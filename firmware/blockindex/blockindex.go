// Package blockindex is the block index published beside each firmware image: the SHA-256 of
// every fixed-size block of the image, and of the whole image. It is what makes a firmware
// update both checkable block by block and a delta.
//
// It serves promise 6 (nothing unsigned runs). The index is itself a target of the signed
// repository, fetched against its signed length and hash, and its whole-image hash must equal
// the image target's signed hash; so each block the phone writes into the inactive slot,
// copied from the running slot or fetched from the server, is checked against signed data
// ([Index.Check]) before it is written, and the whole image once more at the end. The index
// carries no checksum of its own for that reason.
//
// [Plan] compares the index with the running slot: blocks whose content the running slot
// already holds are copied from it, and only the others are fetched, as byte ranges of the
// full image for HTTP Range requests. No delta file is published per pair of versions.
//
// # Format (version 1)
//
// All integers big-endian:
//
//	offset  size  field
//	0       8     magic "WPBLKIDX"
//	8       4     version, 1
//	12      4     block size: a power of two from 512 to 1 MiB
//	16      8     image length in bytes, at least 1
//	24      32    SHA-256 of the whole image
//	56      32×N  SHA-256 of each block, N = ceil(length / block size); the last block
//	              may be short, and is hashed as it is (no padding)
//
// Nothing may follow the last hash. A parsed index is canonical: it encodes back to the very
// bytes it was parsed from.
//
// # Memory
//
// An index is 32 bytes per block: 4 MiB for a 512 MiB image in 4 KiB blocks, an eighth of the
// phone's memory budget for the whole agent. So the phone does not load it: [Open] reads the
// header and takes an [io.ReaderAt] (the index file in the state directory) from which each
// hash is read when asked for. [Build], which runs in the back office, keeps the hashes in
// memory and reads the image once, streaming.
package blockindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Errors.
var (
	// ErrNotIndex is returned by Open and Parse for bytes that do not begin with the magic.
	ErrNotIndex = errors.New("blockindex: not a block index")
	// ErrVersion is returned by Open and Parse for a version this package does not read.
	ErrVersion = errors.New("blockindex: unsupported version")
	// ErrFormat is returned by Open and Parse for a malformed index (a short header, a bad
	// block size or length, hashes missing or trailing bytes), and by Build for a bad block
	// size.
	ErrFormat = errors.New("blockindex: malformed index")
	// ErrEmpty is returned by Build for an image of no bytes.
	ErrEmpty = errors.New("blockindex: empty image")
	// ErrBlockNumber is returned for a block number outside the index.
	ErrBlockNumber = errors.New("blockindex: no such block")
	// ErrMismatch is returned by Check for a block whose bytes do not match the index.
	ErrMismatch = errors.New("blockindex: block does not match the index")
	// ErrRunning: Plan could not read the running image (a bad sector in the running slot,
	// say). The caller may plan without it, fetching every block.
	ErrRunning = errors.New("blockindex: running image unreadable")
)

const (
	magic   = "WPBLKIDX"
	version = 1

	// HeaderSize is the length of the header before the block hashes.
	HeaderSize = 56
	// DefaultBlockSize is the block size images are published with: the page size of the
	// phones and the block size of their file systems, so that a file changed in place
	// changes whole blocks of the image only.
	DefaultBlockSize = 4096
	// MinBlockSize and MaxBlockSize bound the block size.
	MinBlockSize = 512
	MaxBlockSize = 1 << 20
)

// Index is a parsed or built block index. Its methods may be called concurrently when its
// reader allows concurrent ReadAt (an *os.File does).
type Index struct {
	blockSize int64
	length    int64
	sum       [sha256.Size]byte
	blocks    int64
	hashes    io.ReaderAt // the block hashes, the first at offset 0
}

// Build reads an image to its end and indexes it in blocks of blockSize bytes. It holds one
// block of the image at a time, and the index's 32 bytes per block.
func Build(r io.Reader, blockSize int) (*Index, error) {
	if err := checkBlockSize(int64(blockSize)); err != nil {
		return nil, err
	}
	whole := sha256.New()
	buf := make([]byte, blockSize)
	var hashes bytes.Buffer
	var length int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			whole.Write(buf[:n])
			h := sha256.Sum256(buf[:n])
			hashes.Write(h[:])
			length += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("blockindex: read image at %d: %w", length, err)
		}
	}
	if length == 0 {
		return nil, ErrEmpty
	}
	x := &Index{
		blockSize: int64(blockSize),
		length:    length,
		blocks:    int64(hashes.Len() / sha256.Size),
		hashes:    bytes.NewReader(hashes.Bytes()),
	}
	whole.Sum(x.sum[:0])
	return x, nil
}

// Parse parses an index held in memory.
func Parse(b []byte) (*Index, error) {
	return Open(bytes.NewReader(b), int64(len(b)))
}

// Open parses the header of the size-byte index in r and checks that exactly the hashes it
// announces follow it. The hashes are read from r when asked for, so r must stay open and
// unchanged while the Index is used.
func Open(r io.ReaderAt, size int64) (*Index, error) {
	var h [HeaderSize]byte
	if size < HeaderSize {
		return nil, fmt.Errorf("%w: short header, %d of %d bytes", ErrFormat, max(size, 0), HeaderSize)
	}
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("blockindex: read header: %w", err)
	}
	if string(h[:8]) != magic {
		return nil, fmt.Errorf("%w: magic %q", ErrNotIndex, h[:8])
	}
	if v := binary.BigEndian.Uint32(h[8:]); v != version {
		return nil, fmt.Errorf("%w: version %d, this reads %d", ErrVersion, v, version)
	}
	bs := int64(binary.BigEndian.Uint32(h[12:]))
	if err := checkBlockSize(bs); err != nil {
		return nil, err
	}
	length := binary.BigEndian.Uint64(h[16:])
	if length == 0 || length > math.MaxInt64 {
		return nil, fmt.Errorf("%w: image length %d", ErrFormat, length)
	}
	x := &Index{blockSize: bs, length: int64(length)}
	copy(x.sum[:], h[24:])
	// With blocks of at least 512 bytes, blocks×32 cannot overflow an int64.
	x.blocks = (x.length-1)/bs + 1
	have := size - HeaderSize
	switch want := x.blocks * sha256.Size; {
	case have > want:
		return nil, fmt.Errorf("%w: %d trailing bytes after %d block hashes", ErrFormat, have-want, x.blocks)
	case have < want:
		return nil, fmt.Errorf("%w: truncated, %d bytes of block hashes where %d bytes in %d-byte blocks need %d",
			ErrFormat, have, x.length, bs, want)
	}
	x.hashes = io.NewSectionReader(r, HeaderSize, have)
	return x, nil
}

func checkBlockSize(n int64) error {
	if n < MinBlockSize || n > MaxBlockSize || n&(n-1) != 0 {
		return fmt.Errorf("%w: block size %d, not a power of two from %d to %d", ErrFormat, n, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// BlockSize is the size of every block but perhaps the last.
func (x *Index) BlockSize() int { return int(x.blockSize) }

// Len is the image's length in bytes.
func (x *Index) Len() int64 { return x.length }

// Sum is the SHA-256 of the whole image. The installer compares it with the image target's
// signed hash before trusting any block hash.
func (x *Index) Sum() [sha256.Size]byte { return x.sum }

// Blocks is the number of blocks.
func (x *Index) Blocks() int64 { return x.blocks }

// Block is where block i lies in the image: its offset and length. The last block may be
// short. It panics for a block number outside the index, as slicing does.
func (x *Index) Block(i int64) (off, n int64) {
	if i < 0 || i >= x.blocks {
		panic(fmt.Sprintf("blockindex: block %d of %d", i, x.blocks))
	}
	off = i * x.blockSize
	return off, min(x.blockSize, x.length-off)
}

// Hash is the SHA-256 of block i.
func (x *Index) Hash(i int64) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	if i < 0 || i >= x.blocks {
		return h, fmt.Errorf("%w: %d of %d", ErrBlockNumber, i, x.blocks)
	}
	if _, err := x.hashes.ReadAt(h[:], i*sha256.Size); err != nil {
		return h, fmt.Errorf("blockindex: read hash of block %d: %w", i, err)
	}
	return h, nil
}

// Check reports whether p is block i as the index has it: its length and its SHA-256.
func (x *Index) Check(i int64, p []byte) error {
	want, err := x.Hash(i)
	if err != nil {
		return err
	}
	if _, n := x.Block(i); int64(len(p)) != n {
		return fmt.Errorf("%w: block %d is %d bytes, not %d", ErrMismatch, i, n, len(p))
	}
	if sha256.Sum256(p) != want {
		return fmt.Errorf("%w: block %d (offset %d)", ErrMismatch, i, i*x.blockSize)
	}
	return nil
}

// EncodedLen is the length of the encoded index.
func (x *Index) EncodedLen() int64 { return HeaderSize + x.blocks*sha256.Size }

// WriteTo writes the index in the format above.
func (x *Index) WriteTo(w io.Writer) (int64, error) {
	var h [HeaderSize]byte
	copy(h[:], magic)
	binary.BigEndian.PutUint32(h[8:], version)
	binary.BigEndian.PutUint32(h[12:], uint32(x.blockSize))
	binary.BigEndian.PutUint64(h[16:], uint64(x.length))
	copy(h[24:], x.sum[:])
	n, err := w.Write(h[:])
	written := int64(n)
	if err != nil {
		return written, err
	}
	m, err := io.Copy(w, io.NewSectionReader(x.hashes, 0, x.blocks*sha256.Size))
	return written + m, err
}
