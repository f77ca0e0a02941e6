package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// A delta is what a phone holding one registry downloads to rebuild the next one byte for
// byte. It names its base by version and checksum and its target by version and checksum;
// the target's bytes follow from the base and the delta because encoding is canonical.
//
//	offset  size
//	0       8     magic "WPRDL\x00\r\n"
//	8       4     format version (1)
//	12      4     zero
//	16      8     base version
//	24      32    base checksum (the SHA-256 at the end of the base file)
//	56      8     target version
//	64      8     target log-from version
//	72      32    target checksum
//	104     ...   per kind in kindOrder: added numbers, then deleted numbers, each as a
//	              length (uint64) and a number set
//	              the target's prefix section: length (uint64) and bytes, as in the file
//	              the target's removal log: group count (uint32), then per group its version
//	              (uint64), a mode byte and its prefixes as in the file's log, where
//	              mode 0: the base's group of that version less a deleted set (length, set)
//	              mode 1: a new group: a bitmap over the sorted numbers deleted from the
//	                      kinds above (bit count uint64, bytes), which holds a listed
//	                      removal in about one bit, plus a set of any others (length, set)
//	end-32  32    SHA-256 of every byte before it
const (
	deltaMagic     = "WPRDL\x00\r\n"
	deltaHeaderLen = 104
	modeCarried    = 0
	modeNew        = 1
)

// diffKinds compares the numbers of two registries kind by kind; a number that changes kind
// is deleted from one and added to the other.
func diffKinds(old, next *Set) (added, deleted [numKinds][]uint64) {
	a, b := old.all(), next.all()
	av, ak, aok := a.next()
	bv, bk, bok := b.next()
	for aok || bok {
		switch {
		case !bok || aok && av < bv:
			deleted[ak] = append(deleted[ak], av)
			av, ak, aok = a.next()
		case !aok || bv < av:
			added[bk] = append(added[bk], bv)
			bv, bk, bok = b.next()
		default:
			if ak != bk {
				deleted[ak] = append(deleted[ak], av)
				added[bk] = append(added[bk], bv)
			}
			av, ak, aok = a.next()
			bv, bk, bok = b.next()
		}
	}
	return added, deleted
}

// kindFilter yields the numbers of one kind.
type kindFilter struct {
	it   *mergeIter
	kind int
}

func (f *kindFilter) next() (uint64, bool) {
	for {
		v, k, ok := f.it.next()
		if !ok || k == f.kind {
			return v, ok
		}
	}
}

// diffSets compares two sets and returns what b adds and what it drops.
func diffSets(a, b *efSet) (added, deleted []uint64) {
	ai, bi := a.iter(), b.iter()
	av, aok := ai.next()
	bv, bok := bi.next()
	for aok || bok {
		switch {
		case !bok || aok && av < bv:
			deleted = append(deleted, av)
			av, aok = ai.next()
		case !aok || bv < av:
			added = append(added, bv)
			bv, bok = bi.next()
		default:
			av, aok = ai.next()
			bv, bok = bi.next()
		}
	}
	return added, deleted
}

func appendSet(b []byte, vals []uint64) ([]byte, error) {
	set, err := encodeSet(&sliceSource{vals})
	if err != nil {
		return nil, err
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(set)))
	return append(b, set...), nil
}

func appendPrefixes(b []byte, ps []string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = appendPrefix(b, p)
	}
	return b
}

// WriteDelta writes what a phone holding old needs to rebuild next.
func WriteDelta(w io.Writer, old, next *Set) error {
	b := make([]byte, deltaHeaderLen, 1<<16)
	copy(b, deltaMagic)
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	binary.LittleEndian.PutUint64(b[16:], old.version)
	sum := old.Sum()
	copy(b[24:], sum[:])
	binary.LittleEndian.PutUint64(b[56:], next.version)
	binary.LittleEndian.PutUint64(b[64:], next.logFrom)
	sum = next.Sum()
	copy(b[72:], sum[:])
	added, deleted := diffKinds(old, next)
	var all []uint64 // every number deleted from some kind
	var err error
	for k := range added {
		if b, err = appendSet(b, added[k]); err != nil {
			return err
		}
		if b, err = appendSet(b, deleted[k]); err != nil {
			return err
		}
		all = append(all, deleted[k]...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	p := next.prefixSection()
	b = binary.LittleEndian.AppendUint64(b, uint64(len(p)))
	b = append(b, p...)

	b = binary.LittleEndian.AppendUint32(b, uint32(len(next.log)))
	for _, g := range next.log {
		b = binary.LittleEndian.AppendUint64(b, g.version)
		if og := old.logGroup(g.version); og != nil {
			if added, deleted := diffSets(&og.numbers, &g.numbers); len(added) == 0 {
				b = append(b, modeCarried)
				if b, err = appendSet(b, deleted); err != nil {
					return err
				}
				b = appendPrefixes(b, g.prefixes)
				continue
			}
		}
		b = append(b, modeNew)
		bitmap := make([]byte, (len(all)+7)/8)
		var extra []uint64
		it := g.numbers.iter()
		for v, ok := it.next(); ok; v, ok = it.next() {
			if i, found := slices.BinarySearch(all, v); found {
				bitmap[i/8] |= 1 << (i % 8)
			} else {
				extra = append(extra, v)
			}
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(len(all)))
		b = append(b, bitmap...)
		if b, err = appendSet(b, extra); err != nil {
			return err
		}
		b = appendPrefixes(b, g.prefixes)
	}
	s := sha256.Sum256(b)
	_, err = w.Write(append(b, s[:]...))
	return err
}

func (s *Set) logGroup(version uint64) *logGroup {
	for i := range s.log {
		if s.log[i].version == version {
			return &s.log[i]
		}
	}
	return nil
}

// prefixSection is the prefix section of the file, as the file holds it.
func (s *Set) prefixSection() []byte {
	off := binary.LittleEndian.Uint64(s.data[48+16*secPrefixes:])
	n := binary.LittleEndian.Uint64(s.data[56+16*secPrefixes:])
	return s.data[off : off+n]
}

// delta is a parsed delta.
type delta struct {
	baseVersion, version, logFrom uint64
	baseSum, sum                  [sha256.Size]byte
	added, deleted                [numKinds]efSet
	prefixes                      []byte
	log                           []deltaGroup
}

type deltaGroup struct {
	version  uint64
	mode     byte
	deleted  efSet  // modeCarried
	bitmap   []byte // modeNew, over the sorted union of deleted
	bits     uint64
	extra    efSet // modeNew
	prefixes []string
}

func (r *reader) set(what string) efSet {
	blob := r.take(r.u64(what+" length"), what)
	if r.err != nil {
		return efSet{}
	}
	s, err := parseEF(blob, numberLimit)
	if err != nil {
		r.err = fmt.Errorf("%s: %v", what, err)
	}
	return s
}

// parseDelta checks a delta's framing, checksum and every set in it.
func parseDelta(b []byte) (*delta, error) {
	if len(b) < deltaHeaderLen+sumLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrDelta, len(b))
	}
	if string(b[:8]) != deltaMagic {
		return nil, fmt.Errorf("%w: not a registry delta (bad magic)", ErrDelta)
	}
	if f := binary.LittleEndian.Uint32(b[8:]); f != formatVersion || binary.LittleEndian.Uint32(b[12:]) != 0 {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrDelta, f, formatVersion)
	}
	body := b[:len(b)-sumLen]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[len(body):]) {
		return nil, fmt.Errorf("%w: %w", ErrDelta, ErrChecksum)
	}
	d := &delta{
		baseVersion: binary.LittleEndian.Uint64(b[16:]),
		baseSum:     [sha256.Size]byte(b[24:56]),
		version:     binary.LittleEndian.Uint64(b[56:]),
		logFrom:     binary.LittleEndian.Uint64(b[64:]),
		sum:         [sha256.Size]byte(b[72:104]),
	}
	r := &reader{b: body[deltaHeaderLen:]}
	for k := range d.added {
		d.added[k] = r.set(string(kindOrder[k]) + " added")
		d.deleted[k] = r.set(string(kindOrder[k]) + " deleted")
	}
	d.prefixes = r.take(r.u64("prefix section length"), "prefix section")
	n := r.u32("log groups")
	if uint64(n) > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d log groups in %d bytes", n, len(r.b))
	}
	for i := 0; i < int(n) && r.err == nil; i++ {
		g := deltaGroup{version: r.u64("group version"), mode: r.u8("group mode")}
		switch g.mode {
		case modeCarried:
			g.deleted = r.set("log deleted")
		case modeNew:
			g.bits = r.u64("bitmap length")
			g.bitmap = r.take((g.bits+7)/8, "bitmap")
			g.extra = r.set("log extra")
		default:
			r.err = fmt.Errorf("log group mode %d", g.mode)
		}
		np := r.u32("removed prefixes")
		if uint64(np) > uint64(len(r.b)) {
			r.err = fmt.Errorf("%d removed prefixes in %d bytes", np, len(r.b))
		}
		for j := 0; j < int(np) && r.err == nil; j++ {
			g.prefixes = append(g.prefixes, r.prefix("removed prefix"))
		}
		d.log = append(d.log, g)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes left over", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDelta, r.err)
	}
	return d, nil
}

// patch yields base with deleted taken out and added put in, and records the first sign
// that the delta does not fit the base.
type patch struct {
	base, add, del source
	bv, av, dv     uint64
	bok, aok, dok  bool
	err            error
}

func newPatch(base, add, del source) *patch {
	p := &patch{base: base, add: add, del: del}
	p.bv, p.bok = base.next()
	if add != nil {
		p.av, p.aok = add.next()
	}
	if del != nil {
		p.dv, p.dok = del.next()
	}
	return p
}

func (p *patch) next() (uint64, bool) {
	for p.err == nil {
		switch {
		case p.dok && (!p.bok || p.dv < p.bv):
			p.err = fmt.Errorf("deletes %s, which the base lacks", numberString(p.dv))
		case p.aok && p.bok && p.av == p.bv:
			p.err = fmt.Errorf("adds %s, which the base has", numberString(p.av))
		case p.aok && (!p.bok || p.av < p.bv):
			v := p.av
			p.av, p.aok = p.add.next()
			return v, true
		case !p.bok:
			return 0, false
		case p.dok && p.dv == p.bv:
			p.dv, p.dok = p.del.next()
			p.bv, p.bok = p.base.next()
		default:
			v := p.bv
			p.bv, p.bok = p.base.next()
			return v, true
		}
	}
	return 0, false
}

// ApplyDelta rebuilds, from old and a delta written by WriteDelta, the target registry's
// exact bytes and writes them to w. It refuses (ErrDelta) a delta for another base, a
// malformed one, and one whose result is not the target it names; the caller still checks
// the result against the signed target's hash and length.
func ApplyDelta(w io.Writer, old *Set, deltaBytes []byte) error {
	d, err := parseDelta(deltaBytes)
	if err != nil {
		return err
	}
	if sum := old.Sum(); d.baseVersion != old.version || d.baseSum != sum {
		return fmt.Errorf("%w: made for version %d (%x), the installed registry is version %d (%x)",
			ErrDelta, d.baseVersion, d.baseSum[:4], old.version, sum[:4])
	}
	var patches []*patch
	c := contents{version: d.version, logFrom: d.logFrom}
	var all []uint64
	for k := range c.kinds {
		p := newPatch(&kindFilter{old.all(), k}, d.added[k].iter(), d.deleted[k].iter())
		patches = append(patches, p)
		c.kinds[k] = p
		it := d.deleted[k].iter()
		for v, ok := it.next(); ok; v, ok = it.next() {
			all = append(all, v)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	ps := &Set{}
	if err := ps.parsePrefixes(d.prefixes); err != nil {
		return fmt.Errorf("%w: %w", ErrDelta, err)
	}
	c.prefixes = ps.prefixes
	for _, g := range d.log {
		lc := logContents{version: g.version, prefixes: g.prefixes}
		switch g.mode {
		case modeCarried:
			og := old.logGroup(g.version)
			if og == nil {
				return fmt.Errorf("%w: carries removals of version %d, which the base does not log", ErrDelta, g.version)
			}
			p := newPatch(og.numbers.iter(), nil, g.deleted.iter())
			patches = append(patches, p)
			lc.numbers = p
		case modeNew:
			if g.bits != uint64(len(all)) {
				return fmt.Errorf("%w: removals of version %d: bitmap of %d bits over %d deleted numbers", ErrDelta, g.version, g.bits, len(all))
			}
			var listed []uint64
			for i, v := range all {
				if g.bitmap[i/8]&(1<<(i%8)) != 0 {
					listed = append(listed, v)
				}
			}
			p := newPatch(&sliceSource{listed}, g.extra.iter(), nil)
			patches = append(patches, p)
			lc.numbers = p
		}
		c.log = append(c.log, lc)
	}
	b, err := c.encode()
	for _, p := range patches {
		if p.err != nil {
			return fmt.Errorf("%w: %v", ErrDelta, p.err)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDelta, err)
	}
	if [sha256.Size]byte(b[len(b)-sumLen:]) != d.sum {
		return fmt.Errorf("%w: the result is not the registry the delta names", ErrDelta)
	}
	if _, err := Parse(b); err != nil {
		return fmt.Errorf("%w: %w", ErrDelta, err)
	}
	_, err = w.Write(b)
	return err
}
