package spool

import (
	"strings"
	"testing"
)

// TestOldest checks the drain order: calls oldest first, each call's segments in order and
// then its manifest, files being removed left out, the skipped left out, and max honoured.
func TestOldest(t *testing.T) {
	s, _ := openSpool(t, t.TempDir())
	calls := []string{"20260102T000000Z-b", "20260101T000000Z-a", "20260103T000000Z-c"}
	for _, c := range calls {
		for seq := range 3 {
			if _, err := s.CommitSegment(c, seq, sealedData(c, 100+seq)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Call a has a manifest, c only a manifest, b none.
	for _, c := range []string{"20260101T000000Z-a", "20260104T000000Z-d"} {
		if _, err := s.CommitManifest(c, sealedData(c, 101)); err != nil {
			t.Fatal(err)
		}
	}
	es, err := s.Oldest(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.CallID[len(e.CallID)-1:]+string(rune('0'+e.Seq+1)))
	}
	want := "a1 a2 a3 a0 b1 b2 b3 c1 c2 c3 d0"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("order %s, want %s", g, want)
	}
	es, _ = s.Oldest(2, func(e Entry) bool { return e.Seq == 0 })
	if len(es) != 2 || es[0].Seq != 1 || es[1].Seq != 2 {
		t.Errorf("with skip and max 2: %+v", es)
	}
	if err := s.Remove(es[0]); err != nil {
		t.Fatal(err)
	}
	es, _ = s.Oldest(1, nil)
	if len(es) != 1 || es[0].Seq != 0 {
		t.Errorf("after a removal: %+v", es)
	}
}
