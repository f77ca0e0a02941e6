package release_test

import (
	"errors"
	"testing"

	"github.com/wallphone/wallphone/firmware/release"
)

// seeds are the image metadata the fuzzer starts from: valid ones and near misses.
func seeds() [][2]string {
	return [][2]string{
		{"firmware/sim_7.img", custom("sim", 7, "min_version", "3", "floor", "5")},
		{"firmware/rpi4_1.img", custom("rpi4", 1, "rollout", "1")},
		{"firmware/sim_7.img", custom("sim", 7, "floor", "8")},
		{"firmware/sim_7.img", custom("sim", 7, "rollout", "-")},
		{"firmware/sim_7.img", custom("sim", 7) + " "},
		{"firmware/sim_07.img", custom("sim", 7)},
	}
}

// FuzzParse: no input makes Parse panic or fail with an error of no documented kind, and
// whatever it accepts is valid and encodes back to metadata that parses the same.
func FuzzParse(f *testing.F) {
	s := seeds()
	if len(s) == 0 {
		f.Fatal("empty seed corpus: the fuzzer would start from nothing")
	}
	for _, c := range s {
		f.Add(c[0], []byte(c[1]))
	}
	f.Fuzz(func(t *testing.T, name string, custom []byte) {
		r, err := release.Parse(name, custom)
		if err != nil {
			if !errors.Is(err, release.ErrMetadata) && !errors.Is(err, release.ErrName) {
				t.Fatalf("an error of no documented kind: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid release: %v", err)
		}
		if release.ImageTarget(r.Hardware, r.Version) != name {
			t.Fatalf("%s parsed as %s version %d", name, r.Hardware, r.Version)
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if again, err := release.Parse(name, b); err != nil || again != r {
			t.Fatalf("round trip: %+v → %s → %+v %v", r, b, again, err)
		}
	})
}

// The valid seeds parse, so the fuzzer starts from the accepting side too.
func TestFuzzSeedsParse(t *testing.T) {
	n := 0
	for _, c := range seeds() {
		if _, err := release.Parse(c[0], []byte(c[1])); err == nil {
			n++
		}
	}
	if n < 2 {
		t.Fatalf("%d seeds parse", n)
	}
}
