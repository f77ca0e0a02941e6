package registry

import (
	"slices"
	"testing"
)

// Dropped names what a new version lets go of, listed as removed or not: what a keeper is
// shown before signing.
func TestDropped(t *testing.T) {
	v1 := build(t, 1, []Item{{Number: "+15125550100", Kind: PublicDefender}, {Number: "+15125550142", Kind: Attorney},
		{Prefix: "+1512854", Kind: Court}}, nil, nil)
	v2 := build(t, 2, []Item{{Number: "+15125550100", Kind: PublicDefender}, {Number: "+15125550177", Kind: Attorney}},
		v1, []Item{{Number: "+15125550142", Kind: Attorney}, {Prefix: "+1512854", Kind: Court}})
	if got := Dropped(v1, v2); !slices.Equal(got, []string{"+15125550142", "+1512854*"}) {
		t.Fatalf("Dropped = %v", got)
	}
	if got := Dropped(v2, v2); len(got) != 0 {
		t.Fatalf("Dropped of itself = %v", got)
	}
}
