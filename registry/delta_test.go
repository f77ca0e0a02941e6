package registry

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestDeltaRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	vals := randomNumbers(r, 6000)
	kinds := func(vs []uint64) []Item {
		var items []Item
		for _, v := range vs {
			items = append(items, Item{Number: numberString(v), Kind: kindOrder[v%numKinds]})
		}
		return items
	}
	v1items := append(kinds(vals[:5000]), Item{Prefix: "+1512854", Kind: Court, Label: "court"}, Item{Prefix: "+1737", Kind: Other})
	v1 := build(t, 1, v1items, nil, nil)
	// v2: 100 removed (listed), 200 added, one kind changed, one prefix removed.
	v2items := append(kinds(vals[100:5200]), Item{Prefix: "+1512854", Kind: Court, Label: "court, renamed"})
	v2items[0].Kind = Hotline
	removed := append(kinds(vals[:100]), Item{Prefix: "+1737", Kind: Other})
	v2 := build(t, 2, v2items, v1, removed)
	// v3: 30 of the removed come back, 50 more go.
	v3items := append(kinds(vals[70:5150]), Item{Prefix: "+1512854", Kind: Court, Label: "court"})
	v3 := build(t, 3, v3items, v2, kinds(vals[5150:5200]))

	for _, pair := range [][2]*Set{{v1, v2}, {v2, v3}, {v1, v3}, {v3, v3}} {
		old, next := pair[0], pair[1]
		var d, got bytes.Buffer
		if err := WriteDelta(&d, old, next); err != nil {
			t.Fatal(err)
		}
		if err := ApplyDelta(&got, old, d.Bytes()); err != nil {
			t.Fatalf("%d→%d: %v", old.Version(), next.Version(), err)
		}
		if !bytes.Equal(got.Bytes(), next.data) {
			t.Errorf("%d→%d: rebuilt bytes differ", old.Version(), next.Version())
		}
		if old != next && d.Len() > next.Size()/5 {
			t.Errorf("%d→%d: delta of %d bytes for a %d-byte registry", old.Version(), next.Version(), d.Len(), next.Size())
		}
		if err := CheckRemovals(old, next); err != nil {
			t.Errorf("%d→%d: %v", old.Version(), next.Version(), err)
		}
	}

	var d bytes.Buffer
	if err := WriteDelta(&d, v1, v2); err != nil {
		t.Fatal(err)
	}
	if err := ApplyDelta(&bytes.Buffer{}, v2, d.Bytes()); !errors.Is(err, ErrDelta) {
		t.Errorf("delta applied to the wrong base: %v", err)
	}
	bad := bytes.Clone(d.Bytes())
	bad[len(bad)/2] ^= 1
	if err := ApplyDelta(&bytes.Buffer{}, v1, bad); !errors.Is(err, ErrDelta) || !errors.Is(err, ErrChecksum) {
		t.Errorf("tampered delta: %v", err)
	}
	if err := ApplyDelta(&bytes.Buffer{}, v1, d.Bytes()[:50]); !errors.Is(err, ErrDelta) {
		t.Errorf("truncated delta: %v", err)
	}
}
