package blockindex

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// Copy is a run of the new image that the running slot already holds: Len bytes from From in
// the running slot go to To in the new image.
type Copy struct {
	From, To, Len int64
}

// Range is a run of the new image to fetch from the full image: Len bytes at Off.
type Range struct {
	Off, Len int64
}

// Header is the value of the HTTP Range request header that asks for r.
func (r Range) Header() string {
	return "bytes=" + strconv.FormatInt(r.Off, 10) + "-" + strconv.FormatInt(r.Off+r.Len-1, 10)
}

// Delta says how to make the new image in the inactive slot: every byte of the image is in
// exactly one Copy or one Range, each made of whole blocks of the index (the image's short
// last block included), both lists in the order of the new image.
type Delta struct {
	Copies  []Copy
	Fetches []Range
	// CopyBytes and FetchBytes are the bytes the lists above cover.
	CopyBytes, FetchBytes int64
}

// readChunk is how much of the running slot, or of the index's hashes, Plan reads at a time:
// few system calls, little memory.
const readChunk = 256 << 10

// Plan compares the index of the new image with the first runningLen bytes of the running
// slot (the running image; runningLen 0 when there is none to reuse) and says which blocks to
// copy and which to fetch. Adjacent blocks are merged into one Copy when they are adjacent in
// the running slot too, and into one Range up to maxRange bytes (rounded down to whole
// blocks, at least one block), so that a resumed or failed request costs at most that much.
//
// A block is copied when a block of the running slot at the same block size has the same
// SHA-256 prefix of 64 bits: the one that continues the previous copy, else the one at the
// same offset, else the first in the running slot. The match is a plan, not a proof: the
// installer checks every block it copies against the index before writing it, as it does
// every block it fetches, and fetches a block whose copy does not match.
//
// Plan reads the running slot once and the index's hashes once. Besides the result, it holds
// 8 bytes per block of the running image and a map of as many entries (about 3 MiB for a
// 512 MiB image); the result is small unless the changes are scattered.
func Plan(running io.ReaderAt, runningLen int64, idx *Index, maxRange int64) (*Delta, error) {
	bs := idx.blockSize
	have, err := hashRunning(running, runningLen, bs)
	if err != nil {
		return nil, err
	}
	first := make(map[uint64]int64, len(have))
	for j, p := range have {
		if _, ok := first[p]; !ok {
			first[p] = int64(j)
		}
	}
	runningBlocks := int64(len(have))
	// lastLen is the length of the running image's last block: only a block of that length
	// in the new image may come from it.
	lastLen := runningLen - (runningBlocks-1)*bs
	match := func(j, n int64, p uint64) bool {
		if j < 0 || j >= runningBlocks || have[j] != p {
			return false
		}
		return j < runningBlocks-1 && n == bs || j == runningBlocks-1 && n == lastLen
	}

	maxBlocks := max(maxRange/bs, 1)
	d := &Delta{}
	prev := int64(-1) // the running block the previous new block was copied from, or -1
	hashes := make([]byte, min(readChunk, idx.blocks*sha256.Size))
	for i0 := int64(0); i0 < idx.blocks; i0 += int64(len(hashes) / sha256.Size) {
		chunk := hashes[:min(int64(len(hashes)), (idx.blocks-i0)*sha256.Size)]
		if _, err := idx.hashes.ReadAt(chunk, i0*sha256.Size); err != nil {
			return nil, fmt.Errorf("blockindex: read hashes from block %d: %w", i0, err)
		}
		for k := 0; k < len(chunk); k += sha256.Size {
			i := i0 + int64(k/sha256.Size)
			off, n := idx.Block(i)
			p := binary.LittleEndian.Uint64(chunk[k:])
			from := int64(-1)
			if prev >= 0 && match(prev+1, n, p) {
				from = prev + 1
			} else if match(i, n, p) {
				from = i
			} else if j, ok := first[p]; ok && match(j, n, p) {
				from = j
			}
			prev = from
			if from < 0 {
				d.fetch(off, n, maxBlocks*bs)
			} else {
				d.copy(from*bs, off, n)
			}
		}
	}
	return d, nil
}

func (d *Delta) copy(from, to, n int64) {
	d.CopyBytes += n
	if k := len(d.Copies) - 1; k >= 0 {
		c := &d.Copies[k]
		if c.To+c.Len == to && c.From+c.Len == from {
			c.Len += n
			return
		}
	}
	d.Copies = append(d.Copies, Copy{From: from, To: to, Len: n})
}

func (d *Delta) fetch(off, n, maxLen int64) {
	d.FetchBytes += n
	if k := len(d.Fetches) - 1; k >= 0 {
		r := &d.Fetches[k]
		if r.Off+r.Len == off && r.Len+n <= maxLen {
			r.Len += n
			return
		}
	}
	d.Fetches = append(d.Fetches, Range{Off: off, Len: n})
}

// hashRunning is the 64-bit SHA-256 prefix of each block of the running image.
func hashRunning(r io.ReaderAt, length, bs int64) ([]uint64, error) {
	if length <= 0 {
		return nil, nil
	}
	out := make([]uint64, 0, (length-1)/bs+1)
	buf := make([]byte, min(length, max(readChunk/bs, 1)*bs))
	for off := int64(0); off < length; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), length-off)]
		if n, err := r.ReadAt(chunk, off); n < len(chunk) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: at %d: %w", ErrRunning, off+int64(n), err)
		}
		for k := int64(0); k < int64(len(chunk)); k += bs {
			h := sha256.Sum256(chunk[k:min(k+bs, int64(len(chunk)))])
			out = append(out, binary.LittleEndian.Uint64(h[:]))
		}
	}
	return out, nil
}
