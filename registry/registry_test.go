package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// one is a registry file with a single entry, for the tables below.
func one(e string) string { return `{"version":1,"entries":[` + e + `]}` }

type badInput struct {
	name string
	json string
	err  error  // the sentinel, when there is one
	msg  string // part of the message otherwise
}

// badInputs are registry files that must be refused as a whole.
func badInputs() []badInput {
	return []badInput{
		{"unknown kind", one(`{"number":"+15125550100","kind":"lawyer"}`), ErrKind, ""},
		{"kind is case sensitive", one(`{"number":"+15125550100","kind":"Attorney"}`), ErrKind, ""},
		{"empty kind", one(`{"number":"+15125550100","kind":""}`), ErrKind, ""},
		{"missing kind", one(`{"number":"+15125550100"}`), ErrKind, ""},

		{"missing plus", one(`{"number":"15125550100","kind":"attorney"}`), ErrNumber, ""},
		{"letters", one(`{"number":"+1512555O100","kind":"attorney"}`), ErrNumber, ""},
		{"spaces", one(`{"number":"+1 512 555 0100","kind":"attorney"}`), ErrNumber, ""},
		{"dashes", one(`{"number":"+1-512-555-0100","kind":"attorney"}`), ErrNumber, ""},
		{"16 digits", one(`{"number":"+1234567890123456","kind":"attorney"}`), ErrNumber, ""},
		{"7 digits", one(`{"number":"+1234567","kind":"attorney"}`), ErrNumber, ""},
		{"plus alone", one(`{"number":"+","kind":"attorney"}`), ErrNumber, ""},
		{"leading +0", one(`{"number":"+05125550100","kind":"attorney"}`), ErrNumber, ""},
		{"two plus signs", one(`{"number":"++15125550100","kind":"attorney"}`), ErrNumber, ""},
		{"non-ascii digits", one(`{"number":"+١٥١٢٥٥٥٠١٠٠","kind":"attorney"}`), ErrNumber, ""},
		{"prefix of 2 digits", one(`{"prefix":"+15","kind":"court"}`), ErrNumber, ""},
		{"prefix without plus", one(`{"prefix":"1512555017","kind":"court"}`), ErrNumber, ""},
		{"prefix of 16 digits", one(`{"prefix":"+1234567890123456","kind":"court"}`), ErrNumber, ""},
		{"prefix with leading +0", one(`{"prefix":"+0512","kind":"court"}`), ErrNumber, ""},
		{"number and prefix", one(`{"number":"+15125550100","prefix":"+1512555017","kind":"court"}`), ErrNumber, ""},
		{"neither number nor prefix", one(`{"kind":"court","label":"x"}`), ErrNumber, ""},

		{"duplicate number", `{"version":1,"entries":[
			{"number":"+15125550100","kind":"attorney"},
			{"number":"+15125550100","kind":"court"}]}`, ErrDuplicate, ""},
		{"duplicate prefix", `{"version":1,"entries":[
			{"prefix":"+1512555017","kind":"court"},
			{"prefix":"+1512555017","kind":"court"}]}`, ErrDuplicate, ""},
		{"bad entry after good ones", `{"version":1,"entries":[
			{"number":"+15125550100","kind":"attorney"},
			{"number":"+15125550142","kind":"attorney"},
			{"number":"5125550170","kind":"attorney"}]}`, ErrNumber, ""},

		{"version 0", `{"version":0,"entries":[]}`, ErrVersion, ""},
		{"no version", `{"entries":[{"number":"+15125550100","kind":"attorney"}]}`, ErrVersion, ""},
		{"null", `null`, ErrVersion, ""},

		{"unknown field", `{"version":1,"entries":[],"expires":"2030-01-01"}`, nil, "unknown field"},
		{"unknown entry field", one(`{"number":"+15125550100","kind":"attorney","note":"x"}`), nil, "unknown field"},
		{"negative version", `{"version":-1,"entries":[]}`, nil, "version"},
		{"number not a string", one(`{"number":15125550100,"kind":"attorney"}`), nil, "number"},
		{"empty input", ``, nil, "EOF"},
		{"cut short", `{"version":1,"entries":[{"number":"+15125550100"`, nil, "EOF"},
		{"not json", `version = 1`, nil, "invalid character"},
		{"trailing data", `{"version":1,"entries":[]}x`, nil, "trailing data after the JSON value"},
		{"two documents", `{"version":1,"entries":[]} {"version":2,"entries":[{"number":"+15125550100","kind":"attorney"}]}`, nil, "trailing data after the JSON value"},
	}
}

func TestParseJSONRefuses(t *testing.T) {
	for _, tc := range badInputs() {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseJSON([]byte(tc.json))
			if err == nil {
				t.Fatalf("ParseJSON accepted it: %d entries", m.Len())
			}
			if m != nil {
				t.Errorf("ParseJSON returned a registry with the error %v", err)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("ParseJSON: %v; want %v", err, tc.err)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseJSON: %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestErrorNamesEntry(t *testing.T) {
	_, err := ParseJSON([]byte(`{"version":1,"entries":[
		{"number":"+15125550100","kind":"attorney"},
		{"number":"5125550142","kind":"attorney"}]}`))
	if err == nil || !strings.Contains(err.Error(), "entries[1]") || !strings.Contains(err.Error(), "5125550142") {
		t.Errorf("err = %v; want it to name entries[1] and its number", err)
	}
}

func TestNumberLengths(t *testing.T) {
	for _, tc := range []struct {
		s      string
		prefix bool
		ok     bool
	}{
		{"+12345678", false, true},          // 8 digits: the shortest whole number
		{"+1234567", false, false},          // 7
		{"+123456789012345", false, true},   // 15: the longest
		{"+1234567890123456", false, false}, // 16
		{"+123", true, true},                // 3 digits: the shortest prefix
		{"+12", true, false},
		{"+123456789012345", true, true},
		{"+1234567890123456", true, false},
	} {
		e := fmt.Sprintf(`{"number":%q,"kind":"other"}`, tc.s)
		if tc.prefix {
			e = fmt.Sprintf(`{"prefix":%q,"kind":"other"}`, tc.s)
		}
		_, err := ParseJSON([]byte(one(e)))
		if tc.ok && err != nil {
			t.Errorf("%s (prefix %v): %v", tc.s, tc.prefix, err)
		}
		if !tc.ok && !errors.Is(err, ErrNumber) {
			t.Errorf("%s (prefix %v): err = %v, want ErrNumber", tc.s, tc.prefix, err)
		}
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range []Kind{Attorney, PublicDefender, Court, Consulate, Hotline, Other} {
		if got, err := ParseKind(string(k)); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
	}
	for _, s := range []string{"", "ATTORNEY", "public defender", "lawyer", " court"} {
		if _, err := ParseKind(s); !errors.Is(err, ErrKind) {
			t.Errorf("ParseKind(%q): err = %v, want ErrKind", s, err)
		}
	}
}

func mustNew(t *testing.T, f File) *Memory {
	t.Helper()
	m, err := New(f)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func TestLookup(t *testing.T) {
	// The shorter prefix comes first in the file: the order of the file must not matter.
	m := mustNew(t, File{Version: 7, Entries: []FileEntry{
		{Prefix: "+1512555", Kind: string(Court), Label: "courthouse"},
		{Prefix: "+151255501", Kind: string(Consulate), Label: "consulate block"},
		{Number: "+15125550100", Kind: string(Attorney), Label: "attorney"},
		{Number: "+442079460000", Kind: string(Hotline), Label: "hotline"},
	}})
	if m.Version() != 7 || m.Len() != 4 {
		t.Errorf("Version, Len = %d, %d; want 7, 4", m.Version(), m.Len())
	}
	for _, tc := range []struct {
		name, number string
		want         Entry
		ok           bool
	}{
		{"exact", "+442079460000", Entry{Hotline, "hotline"}, true},
		{"exact beats the prefixes around it", "+15125550100", Entry{Attorney, "attorney"}, true},
		{"longest prefix wins", "+15125550101", Entry{Consulate, "consulate block"}, true},
		{"shorter prefix", "+15125559999", Entry{Court, "courthouse"}, true},
		{"the prefix itself", "+1512555", Entry{Court, "courthouse"}, true},
		{"non-member", "+15125540100", Entry{}, false},
		{"prefix of an exact number", "+44207946000", Entry{}, false},
		{"exact number with more digits", "+4420794600001", Entry{}, false},
		{"shorter than every prefix", "+151255", Entry{}, false},
		{"not normalised", "15125550100", Entry{}, false},
		{"empty", "", Entry{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := m.Lookup(tc.number)
			if ok != tc.ok || got != tc.want {
				t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tc.number, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestLongestPrefixWinsInEitherOrder(t *testing.T) {
	short := FileEntry{Prefix: "+4420", Kind: string(Other)}
	long := FileEntry{Prefix: "+44207946", Kind: string(Consulate)}
	for _, entries := range [][]FileEntry{{short, long}, {long, short}} {
		m := mustNew(t, File{Version: 1, Entries: entries})
		if e, ok := m.Lookup("+442079460123"); !ok || e.Kind != Consulate {
			t.Errorf("entries %v: Lookup = %+v, %v; want consulate", entries, e, ok)
		}
		if e, ok := m.Lookup("+442071234567"); !ok || e.Kind != Other {
			t.Errorf("entries %v: Lookup = %+v, %v; want other", entries, e, ok)
		}
	}
}

func demoJSON(t testing.TB) []byte {
	b, err := json.Marshal(Demo())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDemo(t *testing.T) {
	fromJSON, err := ParseJSON(demoJSON(t))
	if err != nil {
		t.Fatalf("demo registry does not parse: %v", err)
	}
	for name, m := range map[string]*Memory{"New": mustNew(t, Demo()), "ParseJSON": fromJSON} {
		t.Run(name, func(t *testing.T) {
			if m.Version() != 1 {
				t.Errorf("Version = %d, want 1", m.Version())
			}
			privileged := map[string]Kind{
				"+15125550100": PublicDefender,
				"+15125550142": Attorney,
				"+18005550199": Hotline,
			}
			for d := '0'; d <= '9'; d++ {
				privileged["+151255501"+"7"+string(d)] = Court
			}
			for number, kind := range privileged {
				if e, ok := m.Lookup(number); !ok || e.Kind != kind || e.Label == "" {
					t.Errorf("Lookup(%s) = %+v, %v; want %s with a label", number, e, ok, kind)
				}
			}
			// The recorded demo number, the blocked one, the free hotline and the numbers
			// beside the court block are not privileged.
			for _, number := range []string{"+15125550123", "+15125550166", "+18006564673", "+15125550169", "+15125550180"} {
				if e, ok := m.Lookup(number); ok {
					t.Errorf("Lookup(%s) = %+v; want not privileged", number, e)
				}
			}
		})
	}
}

func FuzzParseJSON(f *testing.F) {
	seeds := [][]byte{demoJSON(f)}
	for _, tc := range badInputs() {
		seeds = append(seeds, []byte(tc.json))
	}
	if len(seeds) < 2 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseJSON(b)
		if err != nil {
			if m != nil {
				t.Fatalf("registry returned with error %v", err)
			}
			return
		}
		if m.Version() == 0 {
			t.Fatal("parsed a registry of version 0")
		}
		for number, want := range m.exact {
			if got, ok := m.Lookup(number); !ok || got != want {
				t.Fatalf("Lookup(%q) = %+v, %v; want %+v", number, got, ok, want)
			}
		}
		for _, p := range m.prefixes {
			if _, ok := m.Lookup(p.prefix); !ok {
				t.Fatalf("prefix %q does not look itself up", p.prefix)
			}
			if !isE164(p.prefix, true) {
				t.Fatalf("prefix %q accepted", p.prefix)
			}
		}
		for i := 1; i < len(m.prefixes); i++ {
			if len(m.prefixes[i].prefix) > len(m.prefixes[i-1].prefix) {
				t.Fatalf("prefixes not longest first: %q before %q", m.prefixes[i-1].prefix, m.prefixes[i].prefix)
			}
		}
	})
}
