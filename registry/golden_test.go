package registry

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden pins the file and delta formats: the same entries must give the same bytes in
// every future version of this code, or phones and publishers would disagree about hashes.
// go test ./registry -run TestGolden -update rewrites them after a deliberate format change
// (which must also change formatVersion).
func TestGolden(t *testing.T) {
	var v1b, v2b, d bytes.Buffer
	if err := Build(&v1b, 1, demoItems, nil, nil); err != nil {
		t.Fatal(err)
	}
	v1, err := Parse(v1b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	next := slices.Concat(demoItems[1:], []Item{{Number: "+15125550199", Kind: Court}})
	if err := Build(&v2b, 2, next, v1, demoItems[:1]); err != nil {
		t.Fatal(err)
	}
	v2, err := Parse(v2b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDelta(&d, v1, v2); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"demo-v1.reg": v1b.Bytes(), "demo-v2.reg": v2b.Bytes(), "demo-v1-v2.delta": d.Bytes()} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the encoding changed (%d bytes, golden %d)", name, len(got), len(want))
		}
	}
	// The golden files themselves still read as they did.
	old, err := os.ReadFile("testdata/demo-v1.reg")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(old)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := s.Lookup("+15125550175"); !ok || e.Kind != Court || e.Label != "Demo County Court" {
		t.Errorf("golden v1: %v %v", e, ok)
	}
}
