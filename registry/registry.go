// Package registry is the set of privileged numbers (attorneys, public defenders, courts,
// consulates, hotlines) that the phone must never record. It keeps promise 1: the decision is
// made on the phone, from numbers in E.164 form, so every written form of a number matches.
//
// This file holds the in-memory form used by the simulated phone and by tests; numbers are
// normalised to E.164 before they reach it.
//
// The compact form ([Set], built by [Build] from the back office's CSV read by [ReadCSV]) is
// what phones install: millions of numbers in under 2 bytes each, looked up in place in the
// mapped file. It also keeps promise 6 for the registry's contents: a registry carries the
// log of its removals in its own signed bytes, and [CheckRemovals] refuses one that dropped
// entries without listing them, the silent shrink of a do-not-record list.
package registry

import (
	"errors"
	"fmt"
	"github.com/wallphone/wallphone/internal/strictjson"
	"sort"
	"strings"
)

// Kind is why a number is privileged.
type Kind string

// The kinds of privileged number.
const (
	Attorney       Kind = "attorney"
	PublicDefender Kind = "public-defender"
	Court          Kind = "court"
	Consulate      Kind = "consulate"
	Hotline        Kind = "hotline"
	Other          Kind = "other"
)

// ParseKind accepts the kinds above and nothing else.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Attorney, PublicDefender, Court, Consulate, Hotline, Other:
		return k, nil
	}
	return "", fmt.Errorf("%w: %q (want attorney, public-defender, court, consulate, hotline or other)", ErrKind, s)
}

// Entry is what the registry says about a privileged number.
type Entry struct {
	Kind  Kind
	Label string
}

// Errors returned when a registry does not parse.
var (
	// ErrKind: an entry names no known kind.
	ErrKind = errors.New("registry: unknown kind")
	// ErrNumber: an entry's number or prefix is not in E.164 form.
	ErrNumber = errors.New("registry: not an E.164 number")
	// ErrDuplicate: the same number or prefix is listed twice.
	ErrDuplicate = errors.New("registry: duplicate entry")
	// ErrVersion: the registry has no version (versions start at 1).
	ErrVersion = errors.New("registry: missing version")
)

// Memory is a registry held in maps: fine for the demo registry and tests, replaced by the
// compact signed form on real phones.
type Memory struct {
	version  uint64
	exact    map[string]Entry
	prefixes []prefixEntry // longest first, so the most specific block wins
}

type prefixEntry struct {
	prefix string
	entry  Entry
}

// Version is the registry's version; a phone never installs a lower one.
func (m *Memory) Version() uint64 { return m.version }

// Len is the number of entries, exact numbers and prefixes.
func (m *Memory) Len() int { return len(m.exact) + len(m.prefixes) }

// Lookup reports whether the E.164 number is privileged.
func (m *Memory) Lookup(e164 string) (Entry, bool) {
	if e, ok := m.exact[e164]; ok {
		return e, true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(e164, p.prefix) {
			return p.entry, true
		}
	}
	return Entry{}, false
}

// File is the JSON form of a registry: numbers already in E.164; a prefix covers every
// number that starts with it.
type File struct {
	Version uint64      `json:"version"`
	Entries []FileEntry `json:"entries"`
}

// FileEntry is one line of a registry file: exactly one of Number and Prefix is set.
type FileEntry struct {
	Number string `json:"number,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Kind   string `json:"kind"`
	Label  string `json:"label"`
}

// ParseJSON reads a registry file, refusing the whole file at its first bad entry: a registry
// that silently lost entries is exactly the failure this package exists to prevent.
func ParseJSON(b []byte) (*Memory, error) {
	var f File
	// A second document (two files run together) would otherwise be dropped unread.
	if err := strictjson.Decode(b, &f); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return New(f)
}

// New builds a registry from its file form.
func New(f File) (*Memory, error) {
	if f.Version == 0 {
		return nil, ErrVersion
	}
	m := &Memory{version: f.Version, exact: make(map[string]Entry, len(f.Entries))}
	seenPrefix := map[string]bool{}
	for i, fe := range f.Entries {
		kind, err := ParseKind(fe.Kind)
		if err != nil {
			return nil, fmt.Errorf("entries[%d]: %w", i, err)
		}
		e := Entry{Kind: kind, Label: fe.Label}
		switch {
		case fe.Number != "" && fe.Prefix == "":
			if !isE164(fe.Number, false) {
				return nil, fmt.Errorf("entries[%d].number %q: %w", i, fe.Number, ErrNumber)
			}
			if _, dup := m.exact[fe.Number]; dup {
				return nil, fmt.Errorf("entries[%d].number %q: %w", i, fe.Number, ErrDuplicate)
			}
			m.exact[fe.Number] = e
		case fe.Prefix != "" && fe.Number == "":
			if !isE164(fe.Prefix, true) {
				return nil, fmt.Errorf("entries[%d].prefix %q: %w", i, fe.Prefix, ErrNumber)
			}
			if seenPrefix[fe.Prefix] {
				return nil, fmt.Errorf("entries[%d].prefix %q: %w", i, fe.Prefix, ErrDuplicate)
			}
			seenPrefix[fe.Prefix] = true
			m.prefixes = append(m.prefixes, prefixEntry{fe.Prefix, e})
		default:
			return nil, fmt.Errorf("entries[%d]: %w: set exactly one of number and prefix", i, ErrNumber)
		}
	}
	sort.SliceStable(m.prefixes, func(i, j int) bool { return len(m.prefixes[i].prefix) > len(m.prefixes[j].prefix) })
	return m, nil
}

// isE164 checks the shape "+" and digits: at most 15 digits, at least 8 for a whole number
// and at least 3 for a prefix (shorter would privilege a whole country or region).
func isE164(s string, prefix bool) bool {
	min := 8
	if prefix {
		min = 3
	}
	if len(s) < 1+min || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Demo is the demo registry of the simulated phone, documented in the README.
func Demo() File {
	return File{Version: 1, Entries: []FileEntry{
		{Number: "+15125550100", Kind: string(PublicDefender), Label: "Demo County Public Defender"},
		{Number: "+15125550142", Kind: string(Attorney), Label: "Demo attorney (mobile)"},
		{Prefix: "+1512555017", Kind: string(Court), Label: "Demo County Court, direct lines 0170-0179"},
		{Number: "+18005550199", Kind: string(Hotline), Label: "Demo legal aid hotline"},
	}}
}
