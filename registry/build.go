package registry

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Item is one entry of a registry being built: exactly one of Number and Prefix, both in
// E.164 form ("+15125550100", "+1512854").
type Item struct {
	Number, Prefix string
	Kind           Kind
	Label          string
}

func (it Item) String() string {
	if it.Prefix != "" {
		return it.Prefix + "*"
	}
	return it.Number
}

// source yields strictly increasing numbers.
type source interface{ next() (uint64, bool) }

type sliceSource struct{ v []uint64 }

func (s *sliceSource) next() (uint64, bool) {
	if len(s.v) == 0 {
		return 0, false
	}
	v := s.v[0]
	s.v = s.v[1:]
	return v, true
}

// contents is everything a registry file says; encode turns it into the one byte string
// that says it, so equal contents always give equal files.
type contents struct {
	version, logFrom uint64
	kinds            [numKinds]source
	prefixes         []prefixRec // sorted by prefix
	log              []logContents
}

type logContents struct {
	version  uint64
	numbers  source
	prefixes []string // sorted
}

func encodeSet(src source) ([]byte, error) {
	w := &efWriter{}
	for v, ok := src.next(); ok; v, ok = src.next() {
		if v > numberLimit {
			return nil, fmt.Errorf("%w: %d is longer than 15 digits", ErrNumber, v)
		}
		w.add(v)
	}
	return w.bytes()
}

func appendPrefix(b []byte, p string) []byte {
	b = append(b, byte(len(p)-1))
	return append(b, p[1:]...)
}

// encodeNumbers merges the numbers of every kind into the number set and the kinds' rank
// sets.
func (c *contents) encodeNumbers(sections *[numSections][]byte) (uint64, error) {
	var heads [numKinds]uint64
	var ok [numKinds]bool
	for i, src := range c.kinds {
		heads[i], ok[i] = src.next()
	}
	nums, others := &efWriter{}, &efWriter{}
	var kinds []byte
	var rank uint64
	var j int
	for {
		best := -1
		for i := range heads {
			if ok[i] && (best < 0 || heads[i] < heads[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		v := heads[best]
		for i := range heads {
			if i != best && ok[i] && heads[i] == v {
				return 0, fmt.Errorf("%w: %s is both %s and %s", ErrDuplicate, numberString(v), kindOrder[best], kindOrder[i])
			}
		}
		if v > numberLimit {
			return 0, fmt.Errorf("%w: %d is longer than 15 digits", ErrNumber, v)
		}
		nums.add(v)
		if best > 0 {
			others.add(rank)
			bit := j * kindBits
			for len(kinds) <= (bit+kindBits-1)/8 {
				kinds = append(kinds, 0)
			}
			kinds[bit/8] |= byte(best << (bit % 8))
			if bit%8 > 8-kindBits {
				kinds[bit/8+1] |= byte(best >> (8 - bit%8))
			}
			j++
		}
		rank++
		heads[best], ok[best] = c.kinds[best].next()
	}
	var err error
	if sections[secNumbers], err = nums.bytes(); err != nil {
		return 0, err
	}
	if sections[secOthers], err = others.bytes(); err != nil {
		return 0, err
	}
	sections[secKinds] = kinds
	return rank, nil
}

func (c *contents) encode() ([]byte, error) {
	var sections [numSections][]byte
	exact, err := c.encodeNumbers(&sections)
	if err != nil {
		return nil, err
	}
	p := binary.LittleEndian.AppendUint32(nil, uint32(len(c.prefixes)))
	for _, r := range c.prefixes {
		p = appendPrefix(p, r.prefix)
		p = append(p, byte(kindIndex(r.entry.Kind)))
		p = binary.AppendUvarint(p, uint64(len(r.entry.Label)))
		p = append(p, r.entry.Label...)
	}
	sections[secPrefixes] = p
	l := binary.LittleEndian.AppendUint32(nil, uint32(len(c.log)))
	for _, g := range c.log {
		set, err := encodeSet(g.numbers)
		if err != nil {
			return nil, fmt.Errorf("removals of version %d: %w", g.version, err)
		}
		l = binary.LittleEndian.AppendUint64(l, g.version)
		l = binary.LittleEndian.AppendUint64(l, uint64(len(set)))
		l = append(l, set...)
		l = binary.LittleEndian.AppendUint32(l, uint32(len(g.prefixes)))
		for _, p := range g.prefixes {
			l = appendPrefix(l, p)
		}
	}
	sections[secLog] = l

	out := make([]byte, headerLen, headerLen+sumLen+len(sections[0])+len(sections[1]))
	copy(out, fileMagic)
	binary.LittleEndian.PutUint32(out[8:], formatVersion)
	binary.LittleEndian.PutUint32(out[12:], numSections)
	binary.LittleEndian.PutUint64(out[16:], c.version)
	binary.LittleEndian.PutUint64(out[24:], c.logFrom)
	binary.LittleEndian.PutUint64(out[32:], exact)
	binary.LittleEndian.PutUint64(out[40:], uint64(len(c.prefixes)))
	for i, s := range sections {
		binary.LittleEndian.PutUint64(out[48+16*i:], uint64(len(out)))
		binary.LittleEndian.PutUint64(out[56+16*i:], uint64(len(s)))
		out = append(out, s...)
	}
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// itemSets is a list of items checked and sorted.
type itemSets struct {
	numbers  []uint64 // sorted
	kinds    []uint8  // kind index of numbers[i]
	prefixes []prefixRec
}

func sortItems(items []Item, what string) (*itemSets, error) {
	type num struct {
		v    uint64
		kind uint8
		idx  int
	}
	nums := make([]num, 0, len(items))
	s := &itemSets{}
	var errs []error
	for i, it := range items {
		ki := kindIndex(it.Kind)
		if ki < 0 {
			errs = append(errs, fmt.Errorf("%s %d (%s): %w: %q", what, i+1, it, ErrKind, it.Kind))
			continue
		}
		switch {
		case it.Number != "" && it.Prefix == "":
			v, ok := numberValue(it.Number)
			if !ok {
				errs = append(errs, fmt.Errorf("%s %d: number %q: %w", what, i+1, it.Number, ErrNumber))
				continue
			}
			nums = append(nums, num{v, uint8(ki), i})
		case it.Prefix != "" && it.Number == "":
			if !isE164(it.Prefix, true) {
				errs = append(errs, fmt.Errorf("%s %d: prefix %q: %w", what, i+1, it.Prefix, ErrNumber))
				continue
			}
			if len(it.Label) > maxLabel || !utf8Valid(it.Label) {
				errs = append(errs, fmt.Errorf("%s %d: prefix %s: label not UTF-8 of at most %d bytes", what, i+1, it.Prefix, maxLabel))
				continue
			}
			s.prefixes = append(s.prefixes, prefixRec{it.Prefix, Entry{Kind: it.Kind, Label: it.Label}})
		default:
			errs = append(errs, fmt.Errorf("%s %d: %w: set exactly one of number and prefix", what, i+1, ErrNumber))
		}
	}
	slices.SortFunc(nums, func(a, b num) int { return cmp.Or(cmp.Compare(a.v, b.v), cmp.Compare(a.idx, b.idx)) })
	s.numbers = make([]uint64, 0, len(nums))
	s.kinds = make([]uint8, 0, len(nums))
	for i, n := range nums {
		if i > 0 && nums[i-1].v == n.v {
			errs = append(errs, fmt.Errorf("%s %d and %d: %s: %w", what, nums[i-1].idx+1, n.idx+1, numberString(n.v), ErrDuplicate))
			continue
		}
		s.numbers = append(s.numbers, n.v)
		s.kinds = append(s.kinds, n.kind)
	}
	slices.SortStableFunc(s.prefixes, func(a, b prefixRec) int { return strings.Compare(a.prefix, b.prefix) })
	s.prefixes = slices.CompactFunc(s.prefixes, func(a, b prefixRec) bool {
		if a.prefix == b.prefix {
			errs = append(errs, fmt.Errorf("%s: prefix %s: %w", what, a.prefix, ErrDuplicate))
			return true
		}
		return false
	})
	return s, errors.Join(errs...)
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func (s *itemSets) hasNumber(v uint64) bool {
	_, ok := slices.BinarySearch(s.numbers, v)
	return ok
}

func (s *itemSets) hasPrefix(p string) bool {
	_, ok := slices.BinarySearchFunc(s.prefixes, p, func(r prefixRec, p string) int { return strings.Compare(r.prefix, p) })
	return ok
}

// kindSource yields the numbers of one kind from sorted items.
func (s *itemSets) kindSource(k uint8) source {
	var v []uint64
	for i, n := range s.numbers {
		if s.kinds[i] == k {
			v = append(v, n)
		}
	}
	return &sliceSource{v}
}

// Build writes the compact registry of items at version. Labels of exact numbers are not
// kept (the phone needs only their kind); prefixes keep theirs.
//
// With prev, the new registry continues prev's removal log: removed lists the entries of
// prev that this version drops (matched by number or prefix; kinds and labels are not
// compared), and Build refuses with ErrUnlistedRemoval when prev has an entry that is
// neither in items nor in removed. Nothing is inferred: a removal is what the caller
// lists. An entry that comes back leaves the log. Without prev the log starts at version.
func Build(w io.Writer, version uint64, items []Item, prev *Set, removed []Item) error {
	if version == 0 {
		return ErrVersion
	}
	next, err := sortItems(items, "entry")
	if err != nil {
		return err
	}
	gone, err := sortItems(removed, "removed entry")
	if err != nil {
		return err
	}
	c := contents{version: version, logFrom: version, prefixes: next.prefixes}
	for k := range c.kinds {
		c.kinds[k] = next.kindSource(uint8(k))
	}
	if prev == nil && (len(gone.numbers) > 0 || len(gone.prefixes) > 0) {
		return fmt.Errorf("%w: removals listed but no previous registry given", ErrRemovedUnknown)
	}
	if prev != nil {
		if version <= prev.version {
			return fmt.Errorf("%w: %d after %d", ErrOlderVersion, version, prev.version)
		}
		if err := checkListed(prev, next, gone); err != nil {
			return err
		}
		c.logFrom = prev.logFrom
		for _, g := range prev.log {
			lc := logContents{version: g.version}
			var keep []uint64
			it := g.numbers.iter()
			for v, ok := it.next(); ok; v, ok = it.next() {
				if !next.hasNumber(v) {
					keep = append(keep, v)
				}
			}
			lc.numbers = &sliceSource{keep}
			for _, p := range g.prefixes {
				if !next.hasPrefix(p) {
					lc.prefixes = append(lc.prefixes, p)
				}
			}
			if len(keep) > 0 || len(lc.prefixes) > 0 {
				c.log = append(c.log, lc)
			}
		}
		if len(gone.numbers) > 0 || len(gone.prefixes) > 0 {
			lc := logContents{version: version, numbers: &sliceSource{gone.numbers}}
			for _, p := range gone.prefixes {
				lc.prefixes = append(lc.prefixes, p.prefix)
			}
			c.log = append(c.log, lc)
		}
	}
	b, err := c.encode()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// checkListed makes the publisher account for every entry of prev: still there, or listed
// as removed; and every listed removal must be a real one.
func checkListed(prev *Set, next, gone *itemSets) error {
	var bad []error
	for _, v := range gone.numbers {
		switch {
		case next.hasNumber(v):
			bad = append(bad, fmt.Errorf("%w: %s is listed as removed but is still in the registry", ErrRemovedUnknown, numberString(v)))
		case !prev.hasNumber(v):
			bad = append(bad, fmt.Errorf("%w: %s is listed as removed but is not in version %d", ErrRemovedUnknown, numberString(v), prev.version))
		}
	}
	for _, p := range gone.prefixes {
		switch {
		case next.hasPrefix(p.prefix):
			bad = append(bad, fmt.Errorf("%w: prefix %s* is listed as removed but is still in the registry", ErrRemovedUnknown, p.prefix))
		case prev.prefixIndexOf(p.prefix) < 0:
			bad = append(bad, fmt.Errorf("%w: prefix %s* is listed as removed but is not in version %d", ErrRemovedUnknown, p.prefix, prev.version))
		}
	}
	if err := errors.Join(bad...); err != nil {
		return err
	}
	var missing missingList
	it := prev.all()
	for v, _, ok := it.next(); ok; v, _, ok = it.next() {
		if !next.hasNumber(v) && !gone.hasNumber(v) {
			missing.add(numberString(v))
		}
	}
	for _, p := range prev.prefixes {
		if !next.hasPrefix(p.prefix) && !gone.hasPrefix(p.prefix) {
			missing.add(p.prefix + "*")
		}
	}
	return missing.err(fmt.Sprintf("version %d has", prev.version), "the new registry and not listed as removed")
}

func (s *Set) hasNumber(v uint64) bool { return s.numbers.contains(v) }

func (s *Set) prefixIndexOf(p string) int {
	if i, ok := s.prefixIndex[p]; ok {
		return i
	}
	return -1
}

// missingList counts entries missing without a listed removal and keeps the first few.
type missingList struct {
	n     int
	first []string
}

const missingShown = 5

func (m *missingList) add(s string) {
	m.n++
	if len(m.first) < missingShown {
		m.first = append(m.first, s)
	}
}

// names is the first few entries, and how many more there are.
func (m *missingList) names() string {
	more := ""
	if m.n > len(m.first) {
		more = fmt.Sprintf(" and %d more", m.n-len(m.first))
	}
	return strings.Join(m.first, ", ") + more
}

func (m *missingList) err(who, where string) error {
	if m.n == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s %d entries missing from %s: %s", ErrUnlistedRemoval, who, m.n, where, m.names())
}

// CheckRemovals decides whether a phone holding old may install next: every entry of old
// that next lacks must be listed in next's removal log as removed in a version after old's.
// It returns nil, or an error wrapping ErrUnlistedRemoval that counts the unlisted entries
// and names the first few, or ErrLogTooShort when entries are missing and next's log does
// not reach back to old's version (naming the first few missing entries too: whoever
// publishes must learn what was dropped, not only that the log is short). Kind changes are
// not removals.
//
// This is the rule itself, called by the phone when it installs (package updates) and by
// the back office before it publishes, so that the two cannot disagree.
func CheckRemovals(old, next *Set) error {
	var missing, gone missingList
	listed := func(v uint64, p string) bool {
		for _, g := range next.log {
			if g.version <= old.version {
				continue
			}
			if p == "" && g.numbers.contains(v) {
				return true
			}
			if _, ok := slices.BinarySearch(g.prefixes, p); p != "" && ok {
				return true
			}
		}
		return false
	}
	walkDropped(old, next, func(v uint64, p string) {
		name := numberString(v)
		if p != "" {
			name = p + "*"
		}
		gone.add(name)
		if !listed(v, p) {
			missing.add(name)
		}
	})
	if gone.n > 0 && next.logFrom > old.version {
		return fmt.Errorf("%w: version %d lacks %d entries of version %d (%s), and its removal log starts after version %d",
			ErrLogTooShort, next.version, gone.n, old.version, gone.names(), next.logFrom)
	}
	return missing.err(fmt.Sprintf("version %d has", old.version), fmt.Sprintf("version %d and not in its removal log", next.version))
}

// Dropped lists the entries of old that next lacks, numbers in E.164 and prefixes with a
// trailing "*", whether or not next's removal log lists them: what those who sign next are
// asked to let go of.
func Dropped(old, next *Set) []string {
	var out []string
	walkDropped(old, next, func(v uint64, p string) {
		if p != "" {
			out = append(out, p+"*")
		} else {
			out = append(out, numberString(v))
		}
	})
	return out
}

// walkDropped calls f for each exact number (prefix "") and then each prefix (v 0) of old
// that next lacks, in order.
func walkDropped(old, next *Set, f func(v uint64, prefix string)) {
	a, b := old.all(), next.all()
	bv, _, bok := b.next()
	for v, _, ok := a.next(); ok; v, _, ok = a.next() {
		for bok && bv < v {
			bv, _, bok = b.next()
		}
		if !bok || bv != v {
			f(v, "")
		}
	}
	for _, p := range old.prefixes {
		if next.prefixIndexOf(p.prefix) < 0 {
			f(0, p.prefix)
		}
	}
}
