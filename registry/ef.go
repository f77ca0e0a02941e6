package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// A sorted set of numbers is stored as a partitioned Elias-Fano sequence: the sorted values
// are cut into chunks of chunkLen, and each chunk is an Elias-Fano sequence of the offsets
// from its first value. Cutting by count rather than by value keeps dense runs (one area
// code) as cheap as a single Elias-Fano sequence over them, while a sparse run (numbers
// across countries) costs its own wider low bits without widening everyone else's.
//
// Blob layout (all integers little-endian):
//
//	n        uint64              values in the set
//	firsts   [chunks]uint64      each chunk's first value, strictly increasing
//	offsets  [chunks]uint32      each chunk's start in the chunk area
//	chunks   ...                 per chunk: L (1 byte), the m low parts of L bits packed
//	                             LSB first (ceil(m*L/8) bytes), then the high parts in unary
//	                             (bit h_i+i set for the i-th value), padded with zero bits to
//	                             whole 8-byte words, the last word holding the last set bit
//
// with chunks = ceil(n/chunkLen) and m = chunkLen except in the last chunk. L is
// floor(log2(span/m)) for a chunk whose offsets reach span, so the encoding is canonical:
// one set, one blob.
const (
	chunkLen = 1024
	maxLow   = 56 // a low part plus its bit offset must fit one 64-bit load
)

var errEF = errors.New("number set")

// efSet is a read-only view of one encoded set. It keeps slices of the blob, never copies.
type efSet struct {
	n      int
	firsts []byte // 8 bytes per chunk
	offs   []byte // 4 bytes per chunk
	data   []byte
}

func (s *efSet) chunks() int { return len(s.firsts) / 8 }

func (s *efSet) first(c int) uint64 { return binary.LittleEndian.Uint64(s.firsts[8*c:]) }

// chunk returns chunk c's bytes and its value count.
func (s *efSet) chunk(c int) ([]byte, int) {
	start := binary.LittleEndian.Uint32(s.offs[4*c:])
	end := uint32(len(s.data))
	m := chunkLen
	if c+1 < s.chunks() {
		end = binary.LittleEndian.Uint32(s.offs[4*c+4:])
	} else {
		m = s.n - chunkLen*c
	}
	return s.data[start:end], m
}

// contains reports whether v is in the set.
func (s *efSet) contains(v uint64) bool {
	_, ok := s.find(v)
	return ok
}

// find returns v's rank in the set (how many values are smaller), reading the encoded form
// in place.
func (s *efSet) find(v uint64) (int, bool) {
	nc := s.chunks()
	if nc == 0 || v < s.first(0) {
		return 0, false
	}
	// The last chunk whose first value is <= v.
	lo, hi := 0, nc
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if s.first(mid) <= v {
			lo = mid
		} else {
			hi = mid
		}
	}
	x := v - s.first(lo)
	if x == 0 {
		return lo * chunkLen, true
	}
	c, m := s.chunk(lo)
	l := uint(c[0])
	lowBytes := (m*int(l) + 7) / 8
	high := c[1+lowBytes:]
	h := x >> l
	want := x & (1<<l - 1)
	// Position just after the h-th zero of the high bits: bucket h starts there.
	pos := 0
	if h > 0 {
		p, ok := select0(high, h-1)
		if !ok {
			return 0, false
		}
		pos = p + 1
	}
	i := pos - int(h) // ones before pos
	for ; i < m; i, pos = i+1, pos+1 {
		if pos/8 >= len(high) || high[pos/8]&(1<<(pos%8)) == 0 {
			return 0, false // bucket ended
		}
		got := low(c[1:], i, l)
		if got == want {
			return lo*chunkLen + i, true
		}
		if got > want {
			return 0, false
		}
	}
	return 0, false
}

// low reads the i-th L-bit low part; the chunk always has at least 8 bytes after the low
// parts, so the 64-bit load stays inside it.
func low(b []byte, i int, l uint) uint64 {
	if l == 0 {
		return 0
	}
	bit := uint(i) * l
	w := binary.LittleEndian.Uint64(b[bit/8:])
	return (w >> (bit % 8)) & (1<<l - 1)
}

// select0 returns the position of the k-th (0-based) zero bit in b.
func select0(b []byte, k uint64) (int, bool) {
	for w := 0; w+8 <= len(b); w += 8 {
		z := ^binary.LittleEndian.Uint64(b[w:])
		c := uint64(bits.OnesCount64(z))
		if k < c {
			for ; k > 0; k-- {
				z &= z - 1
			}
			return 8*w + bits.TrailingZeros64(z), true
		}
		k -= c
	}
	return 0, false
}

// efIter walks a set in order.
type efIter struct {
	s     *efSet
	c     int    // current chunk
	chunk []byte // its bytes
	m     int    // its values
	l     uint
	high  []byte
	i     int // next value's index in the chunk
	pos   int // next position to read in high
	base  uint64
}

func (s *efSet) iter() *efIter { return &efIter{s: s, c: -1, i: 0, m: 0} }

// next returns the next value; ok is false at the end. The set must have passed check.
func (it *efIter) next() (uint64, bool) {
	if it.i >= it.m {
		it.c++
		if it.c >= it.s.chunks() {
			return 0, false
		}
		it.chunk, it.m = it.s.chunk(it.c)
		it.l = uint(it.chunk[0])
		it.high = it.chunk[1+(it.m*int(it.l)+7)/8:]
		it.i, it.pos, it.base = 0, 0, it.s.first(it.c)
	}
	for it.high[it.pos/8]&(1<<(it.pos%8)) == 0 {
		it.pos++
	}
	h := uint64(it.pos - it.i)
	v := it.base + (h<<it.l | low(it.chunk[1:], it.i, it.l))
	it.i++
	it.pos++
	return v, true
}

// parseEF reads a blob written by efWriter, checking every length and offset and that the
// values are strictly increasing and canonically encoded, so that lookups and iteration on
// it never leave its bounds.
func parseEF(b []byte, limit uint64) (efSet, error) {
	var s efSet
	if len(b) < 8 {
		return s, fmt.Errorf("%w: %d bytes, too short for its count", errEF, len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > 8*uint64(len(b)) { // every value costs at least one bit of high part
		return s, fmt.Errorf("%w: count %d does not fit in %d bytes", errEF, n, len(b))
	}
	nc := int((n + chunkLen - 1) / chunkLen)
	dir := 8 + 12*nc
	if dir > len(b) {
		return s, fmt.Errorf("%w: directory of %d chunks does not fit in %d bytes", errEF, nc, len(b))
	}
	s = efSet{n: int(n), firsts: b[8 : 8+8*nc], offs: b[8+8*nc : dir], data: b[dir:]}
	if uint64(len(s.data)) > 1<<32-1 {
		return s, fmt.Errorf("%w: %d bytes, too large", errEF, len(s.data))
	}
	prevLast := uint64(0)
	for c := 0; c < nc; c++ {
		start := binary.LittleEndian.Uint32(s.offs[4*c:])
		end := uint32(len(s.data))
		if c+1 < nc {
			end = binary.LittleEndian.Uint32(s.offs[4*c+4:])
		}
		if (c == 0 && start != 0) || start > end || end > uint32(len(s.data)) {
			return s, fmt.Errorf("%w: chunk %d at bytes %d-%d outside its %d bytes", errEF, c, start, end, len(s.data))
		}
		first := s.first(c)
		if c > 0 && first <= prevLast {
			return s, fmt.Errorf("%w: chunk %d starts at %d, not after %d", errEF, c, first, prevLast)
		}
		last, err := checkChunk(s.data[start:end], min(chunkLen, s.n-chunkLen*c))
		if err != nil {
			return s, fmt.Errorf("%w: chunk %d: %v", errEF, c, err)
		}
		if first > limit || last > limit-first {
			return s, fmt.Errorf("%w: chunk %d reaches past %d", errEF, c, limit)
		}
		prevLast = first + last
	}
	return s, nil
}

// checkChunk validates one chunk of m values and returns its largest offset.
func checkChunk(c []byte, m int) (uint64, error) {
	if len(c) < 1 {
		return 0, errors.New("empty")
	}
	l := uint(c[0])
	if l > maxLow {
		return 0, fmt.Errorf("low parts of %d bits", l)
	}
	lowBytes := (m*int(l) + 7) / 8
	if 1+lowBytes > len(c) {
		return 0, fmt.Errorf("%d low bytes do not fit in %d", lowBytes, len(c))
	}
	if pad := (m * int(l)) % 8; pad != 0 && c[lowBytes]>>pad != 0 {
		return 0, errors.New("bits set after the last low part")
	}
	high := c[1+lowBytes:]
	if len(high) == 0 || len(high)%8 != 0 {
		return 0, fmt.Errorf("high part of %d bytes, not whole words", len(high))
	}
	pos, prev := 0, uint64(0)
	for i := 0; i < m; i++ {
		for pos/8 < len(high) && high[pos/8]&(1<<(pos%8)) == 0 {
			pos++
		}
		if pos/8 >= len(high) {
			return 0, fmt.Errorf("%d of %d values", i, m)
		}
		v := uint64(pos-i)<<l | low(c[1:], i, l)
		if (i == 0 && v != 0) || (i > 0 && v <= prev) {
			return 0, fmt.Errorf("value %d out of order", i)
		}
		prev = v
		pos++
	}
	// Canonical: only zero padding after the last value, in as few words as hold it, and
	// the low width the encoder would choose.
	if (pos+63)/64*8 != len(high) {
		return 0, fmt.Errorf("high part of %d bytes for %d bits", len(high), pos)
	}
	if pos%8 != 0 && high[pos/8]>>(pos%8) != 0 {
		return 0, errors.New("bits set after the last value")
	}
	for _, x := range high[(pos+7)/8:] {
		if x != 0 {
			return 0, errors.New("bits set after the last value")
		}
	}
	if l != lowWidth(prev, m) {
		return 0, fmt.Errorf("low width %d, want %d", l, lowWidth(prev, m))
	}
	return prev, nil
}

// lowWidth is the Elias-Fano low-part width for m values whose offsets reach span.
func lowWidth(span uint64, m int) uint {
	q := (span + 1) / uint64(m)
	if q <= 1 {
		return 0
	}
	return min(uint(bits.Len64(q)-1), maxLow)
}

// efWriter encodes strictly increasing values as a blob, one chunk at a time, so that a
// large set never needs all its values in memory.
type efWriter struct {
	n      uint64
	firsts []byte
	offs   []byte
	data   []byte
	buf    []uint64 // the chunk being filled
	last   uint64   // the last value added
	err    error
}

func (w *efWriter) add(v uint64) {
	if w.err != nil {
		return
	}
	if w.n > 0 && v <= w.last {
		w.err = fmt.Errorf("%w: %d added out of order", errEF, v)
		return
	}
	w.buf = append(w.buf, v)
	w.n++
	w.last = v
	if len(w.buf) == chunkLen {
		w.flush()
	}
}

func (w *efWriter) flush() {
	if len(w.buf) == 0 {
		return
	}
	if uint64(len(w.data)) > math.MaxUint32-2*chunkLen*8 {
		w.err = fmt.Errorf("%w: more than 4 GB", errEF)
		return
	}
	base := w.buf[0]
	m := len(w.buf)
	span := w.buf[m-1] - base
	l := lowWidth(span, m)
	w.firsts = binary.LittleEndian.AppendUint64(w.firsts, base)
	w.offs = binary.LittleEndian.AppendUint32(w.offs, uint32(len(w.data)))
	w.data = append(w.data, byte(l))
	lowStart := len(w.data)
	w.data = append(w.data, make([]byte, (m*int(l)+7)/8)...)
	for i, v := range w.buf {
		x := (v - base) & (1<<l - 1)
		for j := uint(0); j < l; j++ {
			if x&(1<<j) != 0 {
				bit := uint(i)*l + j
				w.data[lowStart+int(bit/8)] |= 1 << (bit % 8)
			}
		}
	}
	hbits := int(span>>l) + m // the last value's bit is at (span>>l)+m-1
	highStart := len(w.data)
	w.data = append(w.data, make([]byte, (hbits+63)/64*8)...)
	for i, v := range w.buf {
		p := int((v-base)>>l) + i
		w.data[highStart+p/8] |= 1 << (p % 8)
	}
	w.buf = w.buf[:0]
}

// bytes finishes the blob.
func (w *efWriter) bytes() ([]byte, error) {
	w.flush()
	if w.err != nil {
		return nil, w.err
	}
	out := make([]byte, 0, 8+len(w.firsts)+len(w.offs)+len(w.data))
	out = binary.LittleEndian.AppendUint64(out, w.n)
	out = append(out, w.firsts...)
	out = append(out, w.offs...)
	return append(out, w.data...), nil
}
