package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"unicode/utf8"
)

// The compact registry file, what a phone downloads and installs. Its exact numbers are kept
// as one sorted set (partitioned Elias-Fano, ef.go) answered in place, from the mapped file,
// without unpacking. Attorneys, the commonest kind, cost nothing more: the numbers of every
// other kind are a second set, of ranks in the first (the i-th smallest number has rank i),
// with 3 bits of kind for each, in rank order. A miss costs one search, a hit one more and
// a bit read; the kinds cost about 7.5 bits per number that is not an attorney's. Exact
// numbers carry no label on the phone (labels stay in the back
// office's CSV); prefixes keep theirs. The file also carries, inside its checksummed
// and signed bytes, the log of entries removed since version LogFrom, so that a phone can
// tell a listed removal from a silent shrink (CheckRemovals).
//
//	offset  size
//	0       8     magic "WPREG\x00\r\n"
//	8       4     format version (1)
//	12      4     number of sections (8)
//	16      8     registry version (>= 1)
//	24      8     log-from version: the removal log covers versions after it (<= version)
//	32      8     exact numbers, all kinds
//	40      8     prefixes
//	48      80    5 sections as (offset, length) pairs, uint64 each: the number set, the
//	              rank set of numbers that are not attorneys', their kinds, the prefixes,
//	              the removal log; contiguous, in order, from byte 128 up to the checksum
//	...           sections
//	end-32  32    SHA-256 of every byte before it
//
// Kinds section: 3 bits per rank in the second set, packed LSB first, each the index in
// kindOrder of a kind other than attorney (1-5), then zero bits to a whole byte.
// Prefix section: count uint32, then per prefix: digit count (1 byte), the digits after the
// "+", kind index (1 byte), label length (uvarint) and label (UTF-8, at most maxLabel bytes);
// sorted by digits. Removal log section: group count uint32, then per group in increasing
// version: version uint64, number-set length uint64, the number set, prefix count uint32,
// prefixes as digit count and digits.
const (
	fileMagic     = "WPREG\x00\r\n"
	formatVersion = 1
	numKinds      = 6
	numSections   = 5
	secNumbers    = 0
	secOthers     = 1
	secKinds      = 2
	secPrefixes   = 3
	secLog        = 4
	kindBits      = 3
	headerLen     = 48 + 16*numSections
	sumLen        = sha256.Size
	maxLabel      = 1024
	// numberLimit: E.164 has at most 15 digits.
	numberLimit = 999_999_999_999_999
)

// kindOrder fixes the index of each kind in the file; never reorder it.
var kindOrder = [numKinds]Kind{Attorney, PublicDefender, Court, Consulate, Hotline, Other}

func kindIndex(k Kind) int {
	for i, o := range kindOrder {
		if o == k {
			return i
		}
	}
	return -1
}

// Errors of the compact form, of Build, ReadCSV, CheckRemovals and deltas (besides ErrKind,
// ErrNumber, ErrDuplicate and ErrVersion, with the in-memory registry).
var (
	// ErrConflict: ReadCSV found the same number or prefix twice with different kinds.
	ErrConflict = errors.New("registry: conflicting kinds")
	// ErrRemovedUnknown: Build was given a removal that is not in the previous registry, or
	// that is still in the new one.
	ErrRemovedUnknown = errors.New("registry: listed removal does not match")
	// ErrOlderVersion: Build's version is not above the previous registry's.
	ErrOlderVersion = errors.New("registry: version not above the previous registry's")
	// ErrFormat: the file is not a registry this code can read (bad magic, unknown format
	// version, truncated, a length or offset out of bounds, values out of order).
	ErrFormat = errors.New("registry: malformed registry file")
	// ErrChecksum: the file's SHA-256 does not match its contents (corrupted or tampered).
	ErrChecksum = errors.New("registry: checksum mismatch")
	// ErrUnlistedRemoval: a registry lacks entries of an earlier one without listing them in
	// its removal log; see CheckRemovals.
	ErrUnlistedRemoval = errors.New("registry: entries removed without being listed")
	// ErrLogTooShort: the new registry's removal log starts after the installed version, so
	// the phone cannot check what was removed in between.
	ErrLogTooShort = errors.New("registry: removal log does not reach back to the installed version")
	// ErrDelta: a delta is malformed, is for another base, or does not rebuild its target.
	ErrDelta = errors.New("registry: bad delta")
)

// Set is an installed compact registry. Its lookups read the file's bytes in place; it is
// safe for concurrent use until Close.
type Set struct {
	data    []byte
	release func() error // unmaps the file; nil when data is ordinary memory

	version, logFrom uint64
	numbers          efSet
	others           efSet  // ranks in numbers of the numbers that are not attorneys'
	kinds            []byte // their kinds, kindBits each
	prefixes         []prefixRec
	prefixIndex      map[string]int // "+digits" → index in prefixes
	prefixLens       []int          // distinct lengths of "+digits", longest first
	log              []logGroup
}

type prefixRec struct {
	prefix string // "+" and digits
	entry  Entry
}

type logGroup struct {
	version  uint64
	numbers  efSet
	prefixes []string // "+" and digits
}

// Open maps a registry file and checks it as Parse does. Close releases the mapping; no
// Lookup may run after Close. The mapping reads the file as it is on disk: replace an
// installed file by renaming a new one over it (atomicfile), never by writing into it, or
// lookups would see bytes that were never checked (or fault, if it shrank).
func Open(path string) (*Set, error) {
	data, release, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data)
	if err != nil {
		if release != nil {
			release()
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.release = release
	return s, nil
}

// Close releases the file mapping.
func (s *Set) Close() error {
	if s.release == nil {
		return nil
	}
	r := s.release
	s.release = nil
	return r()
}

// Version is the registry's version; a phone never installs a lower one.
func (s *Set) Version() uint64 { return s.version }

// LogFrom is the version after which the removal log lists every removal.
func (s *Set) LogFrom() uint64 { return s.logFrom }

// Len is the number of entries, exact numbers and prefixes.
func (s *Set) Len() int { return s.numbers.n + len(s.prefixes) }

// Size is the file's length in bytes.
func (s *Set) Size() int { return len(s.data) }

// Sum is the SHA-256 the file carries over its contents.
func (s *Set) Sum() [sha256.Size]byte { return [sha256.Size]byte(s.data[len(s.data)-sumLen:]) }

// Stats summarises a registry for people.
type Stats struct {
	Version, LogFrom uint64
	Bytes            int
	Exact            map[Kind]int
	Prefixes         int
	LogGroups        int
	LoggedRemovals   int // exact numbers and prefixes in the removal log
}

// Stats counts what the registry holds.
func (s *Set) Stats() Stats {
	st := Stats{Version: s.version, LogFrom: s.logFrom, Bytes: len(s.data), Exact: map[Kind]int{},
		Prefixes: len(s.prefixes), LogGroups: len(s.log)}
	st.Exact[Attorney] = s.numbers.n - s.others.n
	for i := range s.others.n {
		st.Exact[kindOrder[s.kindAt(i)]]++
	}
	for _, g := range s.log {
		st.LoggedRemovals += g.numbers.n + len(g.prefixes)
	}
	return st
}

// Lookup reports whether the E.164 number is privileged: an exact number, or else the
// longest prefix that covers it. Exact numbers come back without a label. It allocates
// nothing.
func (s *Set) Lookup(e164 string) (Entry, bool) {
	if v, ok := numberValue(e164); ok {
		if r, ok := s.numbers.find(v); ok {
			if j, ok := s.others.find(uint64(r)); ok {
				return Entry{Kind: kindOrder[s.kindAt(j)]}, true
			}
			return Entry{Kind: Attorney}, true
		}
	}
	for _, l := range s.prefixLens {
		if l <= len(e164) {
			if i, ok := s.prefixIndex[e164[:l]]; ok {
				return s.prefixes[i].entry, true
			}
		}
	}
	return Entry{}, false
}

// numberValue turns an E.164 number into its digits as an integer; distinct numbers give
// distinct integers because E.164 numbers never start with 0.
func numberValue(e164 string) (uint64, bool) {
	if !isE164(e164, false) {
		return 0, false
	}
	var v uint64
	for i := 1; i < len(e164); i++ {
		v = v*10 + uint64(e164[i]-'0')
	}
	return v, true
}

func numberString(v uint64) string { return "+" + strconv.FormatUint(v, 10) }

// Parse checks a registry file held in memory: magic, format, checksum, then every section's
// bounds and structure, so that a malformed, truncated or tampered file is refused with a
// clear error and an accepted one can never make a lookup read out of bounds. The Set keeps
// b; the caller must not change it.
func Parse(b []byte) (*Set, error) {
	if len(b) < headerLen+sumLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrFormat, len(b))
	}
	if string(b[:8]) != fileMagic {
		return nil, fmt.Errorf("%w: not a registry file (bad magic)", ErrFormat)
	}
	if f := binary.LittleEndian.Uint32(b[8:]); f != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrFormat, f, formatVersion)
	}
	if n := binary.LittleEndian.Uint32(b[12:]); n != numSections {
		return nil, fmt.Errorf("%w: %d sections, want %d", ErrFormat, n, numSections)
	}
	body := b[:len(b)-sumLen]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[len(body):]) {
		return nil, ErrChecksum
	}
	s := &Set{
		data:    b,
		version: binary.LittleEndian.Uint64(b[16:]),
		logFrom: binary.LittleEndian.Uint64(b[24:]),
	}
	if s.version == 0 {
		return nil, ErrVersion
	}
	if s.logFrom > s.version {
		return nil, fmt.Errorf("%w: removal log from version %d, after the registry's version %d", ErrFormat, s.logFrom, s.version)
	}
	var sections [numSections][]byte
	next := uint64(headerLen)
	for i := range sections {
		off := binary.LittleEndian.Uint64(b[48+16*i:])
		n := binary.LittleEndian.Uint64(b[56+16*i:])
		if off != next || n > uint64(len(body))-off {
			return nil, fmt.Errorf("%w: section %d at %d+%d, want it at %d within %d bytes", ErrFormat, i, off, n, next, len(body))
		}
		sections[i] = body[off : off+n]
		next = off + n
	}
	if next != uint64(len(body)) {
		return nil, fmt.Errorf("%w: %d bytes after the last section", ErrFormat, uint64(len(body))-next)
	}
	var err error
	if s.numbers, err = parseEF(sections[0], numberLimit); err != nil {
		return nil, fmt.Errorf("%w: numbers: %v", ErrFormat, err)
	}
	// The limit wraps round for an empty number set, which may have no ranks at all.
	if s.others, err = parseEF(sections[secOthers], uint64(s.numbers.n)-1); err == nil && s.others.n > 0 && s.numbers.n == 0 {
		err = errors.New("ranks without numbers")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: kinds: %v", ErrFormat, err)
	}
	s.kinds = sections[secKinds]
	if err := s.checkKinds(); err != nil {
		return nil, err
	}
	if want := binary.LittleEndian.Uint64(b[32:]); want != uint64(s.numbers.n) {
		return nil, fmt.Errorf("%w: header says %d numbers, the set holds %d", ErrFormat, want, s.numbers.n)
	}
	if err := s.parsePrefixes(sections[secPrefixes]); err != nil {
		return nil, err
	}
	if want := binary.LittleEndian.Uint64(b[40:]); want != uint64(len(s.prefixes)) {
		return nil, fmt.Errorf("%w: header says %d prefixes, section holds %d", ErrFormat, want, len(s.prefixes))
	}
	if err := s.parseLog(sections[secLog]); err != nil {
		return nil, err
	}
	return s, nil
}

// kindAt is the kind index of the j-th number that is not an attorney's.
func (s *Set) kindAt(j int) int {
	bit := j * kindBits
	w := uint(s.kinds[bit/8])
	if bit/8+1 < len(s.kinds) {
		w |= uint(s.kinds[bit/8+1]) << 8
	}
	return int(w>>(bit%8)) & (1<<kindBits - 1)
}

// checkKinds makes sure every number that is not an attorney's has a kind, and nothing more.
func (s *Set) checkKinds() error {
	bits := s.others.n * kindBits
	if len(s.kinds) != (bits+7)/8 {
		return fmt.Errorf("%w: %d bytes of kinds for %d numbers", ErrFormat, len(s.kinds), s.others.n)
	}
	if bits%8 != 0 && s.kinds[len(s.kinds)-1]>>(bits%8) != 0 {
		return fmt.Errorf("%w: bits set after the last kind", ErrFormat)
	}
	for j := range s.others.n {
		if k := s.kindAt(j); k == 0 || k >= numKinds {
			return fmt.Errorf("%w: kind %d of number %d", ErrFormat, k, j)
		}
	}
	return nil
}

// reader reads a section, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%s: %d bytes wanted, %d left", what, n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8(what string) byte {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if b := r.take(8, what); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	// A longer form than needed would give a second file for the same registry.
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		r.err = fmt.Errorf("%s: bad varint", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// prefix reads a digit count and digits, returning "+digits".
func (r *reader) prefix(what string) string {
	d := r.take(uint64(r.u8(what)), what)
	if r.err != nil {
		return ""
	}
	p := "+" + string(d)
	if !isE164(p, true) {
		r.err = fmt.Errorf("%s: %q is not an E.164 prefix", what, p)
	}
	return p
}

func (r *reader) end(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%s: %d bytes left over", what, len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, r.err)
	}
	return nil
}

func (s *Set) parsePrefixes(b []byte) error {
	r := &reader{b: b}
	n := r.u32("prefix count")
	if uint64(n) > uint64(len(b))/3 {
		return fmt.Errorf("%w: %d prefixes in %d bytes", ErrFormat, n, len(b))
	}
	s.prefixIndex = make(map[string]int, n)
	seenLen := map[int]bool{}
	for i := 0; i < int(n) && r.err == nil; i++ {
		p := r.prefix("prefix")
		ki := int(r.u8("prefix kind"))
		label := r.take(r.uvarint("label length"), "label")
		switch {
		case r.err != nil:
		case ki >= numKinds:
			r.err = fmt.Errorf("prefix %s: kind %d", p, ki)
		case len(label) > maxLabel || !utf8.Valid(label):
			r.err = fmt.Errorf("prefix %s: label not UTF-8 of at most %d bytes", p, maxLabel)
		case i > 0 && p <= s.prefixes[i-1].prefix:
			r.err = fmt.Errorf("prefix %s out of order", p)
		}
		if r.err != nil {
			break
		}
		s.prefixIndex[p] = i
		s.prefixes = append(s.prefixes, prefixRec{p, Entry{Kind: kindOrder[ki], Label: string(label)}})
		if !seenLen[len(p)] {
			seenLen[len(p)] = true
			s.prefixLens = append(s.prefixLens, len(p))
		}
	}
	// Longest first, so that the most specific block wins.
	for i := 1; i < len(s.prefixLens); i++ {
		for j := i; j > 0 && s.prefixLens[j] > s.prefixLens[j-1]; j-- {
			s.prefixLens[j], s.prefixLens[j-1] = s.prefixLens[j-1], s.prefixLens[j]
		}
	}
	return r.end("prefixes")
}

func (s *Set) parseLog(b []byte) error {
	r := &reader{b: b}
	n := r.u32("log groups")
	if uint64(n) > uint64(len(b))/20 {
		return fmt.Errorf("%w: %d removal groups in %d bytes", ErrFormat, n, len(b))
	}
	prev := s.logFrom
	for i := 0; i < int(n) && r.err == nil; i++ {
		g := logGroup{version: r.u64("removal version")}
		blob := r.take(r.u64("removal set length"), "removal set")
		np := r.u32("removed prefixes")
		if uint64(np) > uint64(len(r.b)) {
			r.err = fmt.Errorf("%d removed prefixes in %d bytes", np, len(r.b))
		}
		for j := 0; j < int(np) && r.err == nil; j++ {
			p := r.prefix("removed prefix")
			if r.err == nil && j > 0 && p <= g.prefixes[j-1] {
				r.err = fmt.Errorf("removed prefix %s out of order", p)
			}
			g.prefixes = append(g.prefixes, p)
		}
		if r.err != nil {
			break
		}
		if g.version <= prev || g.version > s.version {
			return fmt.Errorf("%w: removals of version %d outside %d..%d or out of order", ErrFormat, g.version, prev+1, s.version)
		}
		prev = g.version
		var err error
		if g.numbers, err = parseEF(blob, numberLimit); err != nil {
			return fmt.Errorf("%w: removals of version %d: %v", ErrFormat, g.version, err)
		}
		if g.numbers.n == 0 && len(g.prefixes) == 0 {
			return fmt.Errorf("%w: empty removal group for version %d", ErrFormat, g.version)
		}
		s.log = append(s.log, g)
	}
	return r.end("removal log")
}

// mergeIter walks the exact numbers in increasing order with their kinds.
type mergeIter struct {
	s      *Set
	nums   *efIter
	others *efIter
	rank   uint64 // of the next number
	head   uint64 // the next rank of a number that is not an attorney's
	ok     bool
	j      int // its index in others
}

func (s *Set) all() *mergeIter {
	m := &mergeIter{s: s, nums: s.numbers.iter(), others: s.others.iter()}
	m.head, m.ok = m.others.next()
	return m
}

// next returns the next number and the index of its kind in kindOrder.
func (m *mergeIter) next() (uint64, int, bool) {
	v, ok := m.nums.next()
	if !ok {
		return 0, 0, false
	}
	kind := 0
	if m.ok && m.head == m.rank {
		kind = m.s.kindAt(m.j)
		m.j++
		m.head, m.ok = m.others.next()
	}
	m.rank++
	return v, kind, true
}

// readFile is the fallback when memory mapping is not available.
func readFile(path string) ([]byte, func() error, error) {
	b, err := os.ReadFile(path)
	return b, nil, err
}
