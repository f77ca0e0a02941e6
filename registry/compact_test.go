package registry

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

func build(t testing.TB, version uint64, items []Item, prev *Set, removed []Item) *Set {
	t.Helper()
	var buf bytes.Buffer
	if err := Build(&buf, version, items, prev, removed); err != nil {
		t.Fatal(err)
	}
	s, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var demoItems = []Item{
	{Number: "+15125550100", Kind: PublicDefender, Label: "Demo County Public Defender"},
	{Number: "+15125550142", Kind: Attorney, Label: "Demo attorney (mobile)"},
	{Prefix: "+1512555017", Kind: Court, Label: "Demo County Court"},
	{Prefix: "+151255501", Kind: Other, Label: "A wider block"},
	{Number: "+18005550199", Kind: Hotline, Label: "Demo legal aid hotline"},
	{Number: "+442079460000", Kind: Consulate, Label: "UK number"},
	{Number: "+15125550171", Kind: Attorney, Label: "inside the court block"},
}

func TestSetLookup(t *testing.T) {
	s := build(t, 7, demoItems, nil, nil)
	for _, tt := range []struct {
		in    string
		kind  Kind
		label string
		ok    bool
	}{
		{"+15125550100", PublicDefender, "", true},
		{"+15125550142", Attorney, "", true},
		{"+18005550199", Hotline, "", true},
		{"+442079460000", Consulate, "", true},
		{"+15125550171", Attorney, "", true}, // the exact number wins over its block
		{"+15125550175", Court, "Demo County Court", true},
		{"+15125550199", Other, "A wider block", true}, // longest prefix: only the wider one covers it
		{"+15125550101", Other, "A wider block", true},
		{"+15125550200", "", "", false},
		{"+15125560143", "", "", false},
		{"+1512555014", Other, "A wider block", true}, // prefixes match any string they start
		{"+151255", "", "", false},
		{"", "", "", false},
		{"15125550100", "", "", false},
	} {
		e, ok := s.Lookup(tt.in)
		if ok != tt.ok || e.Kind != tt.kind || e.Label != tt.label {
			t.Errorf("Lookup(%q) = %+v, %v; want %s %q %v", tt.in, e, ok, tt.kind, tt.label, tt.ok)
		}
	}
	if s.Version() != 7 || s.Len() != len(demoItems) || s.LogFrom() != 7 {
		t.Errorf("version %d len %d logFrom %d", s.Version(), s.Len(), s.LogFrom())
	}
}

// randomNumbers returns n distinct sorted numbers, mostly dense US blocks with a few far
// apart, to exercise chunks of every low width.
func randomNumbers(r *rand.Rand, n int) []uint64 {
	seen := map[uint64]bool{}
	var out []uint64
	for len(out) < n {
		var v uint64
		switch r.IntN(4) {
		case 0:
			v = 15125550000 + r.Uint64N(3000) // very dense
		case 1:
			v = 12000000000 + r.Uint64N(8000000000)
		case 2:
			v = 10_000_000 + r.Uint64N(numberLimit-10_000_000)
		default:
			v = 442079460000 + r.Uint64N(1000000)
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func TestEFRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 1023, 1024, 1025, 5000} {
		vals := randomNumbers(r, n)
		b, err := encodeSet(&sliceSource{slices.Clone(vals)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseEF(b, numberLimit)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		var got []uint64
		it := s.iter()
		for v, ok := it.next(); ok; v, ok = it.next() {
			got = append(got, v)
		}
		if !slices.Equal(got, vals) {
			t.Fatalf("n=%d: iteration differs", n)
		}
		for _, v := range vals {
			if !s.contains(v) {
				t.Fatalf("n=%d: %d missing", n, v)
			}
			if !slices.Contains(vals, v+1) && s.contains(v+1) {
				t.Fatalf("n=%d: %d present", n, v+1)
			}
			if v > 0 && !slices.Contains(vals, v-1) && s.contains(v-1) {
				t.Fatalf("n=%d: %d present", n, v-1)
			}
		}
		for range 2000 {
			v := r.Uint64N(numberLimit)
			_, want := slices.BinarySearch(vals, v)
			if s.contains(v) != want {
				t.Fatalf("n=%d: contains(%d) != %v", n, v, want)
			}
		}
	}
}

func TestLookupAllocatesNothing(t *testing.T) {
	s := build(t, 1, demoItems, nil, nil)
	allocs := testing.AllocsPerRun(100, func() {
		s.Lookup("+15125550142")
		s.Lookup("+15125550175")
		s.Lookup("+15125559999")
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup", allocs)
	}
}

func TestBuildDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	shuffled := slices.Clone(demoItems)
	slices.Reverse(shuffled)
	if err := Build(&a, 3, demoItems, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := Build(&b, 3, shuffled, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("same entries in another order give other bytes")
	}
}

func TestBuildRefuses(t *testing.T) {
	prev := build(t, 1, demoItems, nil, nil)
	for _, tt := range []struct {
		name    string
		version uint64
		items   []Item
		prev    *Set
		removed []Item
		want    error
		msg     string
	}{
		{"version zero", 0, demoItems, nil, nil, ErrVersion, ""},
		{"duplicate", 1, append(slices.Clone(demoItems), Item{Number: "+15125550100", Kind: Court}), nil, nil, ErrDuplicate, "entry 1 and 8"},
		{"bad kind", 1, []Item{{Number: "+15125550100", Kind: "lawyer"}}, nil, nil, ErrKind, "entry 1"},
		{"bad number", 1, []Item{{Number: "5125550100", Kind: Court}}, nil, nil, ErrNumber, "entry 1"},
		{"both", 1, []Item{{Number: "+15125550100", Prefix: "+1512", Kind: Court}}, nil, nil, ErrNumber, "exactly one"},
		{"not newer", 1, demoItems, prev, nil, ErrOlderVersion, ""},
		{"shrink unlisted", 2, demoItems[:2], prev, nil, ErrUnlistedRemoval, "5 entries missing"},
		{"removed still there", 2, demoItems, prev, demoItems[:1], ErrRemovedUnknown, "still in the registry"},
		{"removed never there", 2, demoItems, prev, []Item{{Number: "+15125550111", Kind: Court}}, ErrRemovedUnknown, "not in version 1"},
		{"removed without prev", 2, demoItems, nil, []Item{{Number: "+15125550111", Kind: Court}}, ErrRemovedUnknown, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Build(&bytes.Buffer{}, tt.version, tt.items, tt.prev, tt.removed)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

// The case this exists for: about 1,300 numbers shrink to 72.
func TestShrinkRefused(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := randomNumbers(r, 1300)
	var items []Item
	for _, v := range vals {
		items = append(items, Item{Number: numberString(v), Kind: Attorney})
	}
	old := build(t, 10, items, nil, nil)

	// A publisher whose tool started a fresh log: the phone cannot check the shrink.
	fresh := build(t, 11, items[:72], nil, nil)
	if err := CheckRemovals(old, fresh); !errors.Is(err, ErrLogTooShort) || !strings.Contains(err.Error(), "lacks 1228 entries") {
		t.Errorf("fresh log: %v", err)
	}

	// A log that reaches back but lists only 28 of the 1228 removals.
	c := contents{version: 11, logFrom: 10, log: []logContents{{version: 11, numbers: &sliceSource{vals[72:100]}}}}
	for k := range c.kinds {
		c.kinds[k] = &sliceSource{}
	}
	c.kinds[0] = &sliceSource{vals[:72]}
	b, err := c.encode()
	if err != nil {
		t.Fatal(err)
	}
	partial, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	err = CheckRemovals(old, partial)
	if !errors.Is(err, ErrUnlistedRemoval) || !strings.Contains(err.Error(), "1200 entries") || !strings.Contains(err.Error(), numberString(vals[100])) {
		t.Errorf("partial log: %v", err)
	}

	// Listed properly, through Build with prev, it goes through; and a removal logged in a
	// version the phone already has does not excuse anything.
	listed := build(t, 11, items[:72], old, items[72:])
	if err := CheckRemovals(old, listed); err != nil {
		t.Errorf("listed removals refused: %v", err)
	}
	if err := CheckRemovals(listed, listed); err != nil {
		t.Errorf("same registry: %v", err)
	}
	later := build(t, 12, items[:72], listed, nil)
	if later.LogFrom() != 10 || len(later.log) != 1 || later.log[0].numbers.n != 1228 {
		t.Errorf("log not carried: from %d, %d groups", later.LogFrom(), len(later.log))
	}
	if err := CheckRemovals(old, later); err != nil {
		t.Errorf("carried log refused: %v", err)
	}
	// Kind changes are not removals; a removed number that comes back leaves the log.
	back := slices.Clone(items[:73])
	back[0].Kind = Court
	v13 := build(t, 13, back, later, nil)
	if err := CheckRemovals(later, v13); err != nil {
		t.Errorf("re-add refused: %v", err)
	}
	if v13.log[0].numbers.n != 1227 {
		t.Errorf("re-added number still logged: %d", v13.log[0].numbers.n)
	}
	if e, _ := v13.Lookup(items[0].Number); e.Kind != Court {
		t.Errorf("kind change lost: %v", e)
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// Lookups from many goroutines share one Set (run with -race).
func TestSetConcurrentLookups(t *testing.T) {
	s := build(t, 1, demoItems, nil, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if e, ok := s.Lookup("+15125550175"); !ok || e.Kind != Court {
					t.Error("wrong answer")
					return
				}
			}
		})
	}
	wg.Wait()
}
