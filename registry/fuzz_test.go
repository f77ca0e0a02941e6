package registry

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFiles are registry files of every shape: empty, demo, with a removal log.
func seedFiles(t testing.TB) [][]byte {
	var out [][]byte
	add := func(version uint64, items []Item, prev *Set, removed []Item) *Set {
		var b bytes.Buffer
		if err := Build(&b, version, items, prev, removed); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes())
		s, err := Parse(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	add(1, nil, nil, nil)
	v1 := add(1, demoItems, nil, nil)
	add(2, demoItems[2:], v1, demoItems[:2])
	for _, name := range []string{"demo-v1.reg", "demo-v2.reg"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// resum puts a correct checksum on b, so that the fuzzer and the tamper tests reach the
// structural checks behind it.
func resum(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) >= sumLen {
		s := sha256.Sum256(b[:len(b)-sumLen])
		copy(b[len(b)-sumLen:], s[:])
	}
	return b
}

// exercise runs every reader of an accepted Set; none may panic.
func exercise(s *Set) {
	for _, n := range []string{"+15125550100", "+15125550175", "+442079460000", "+19999999999", "+1512"} {
		s.Lookup(n)
	}
	it := s.all()
	for v, _, ok := it.next(); ok; v, _, ok = it.next() {
		if !s.hasNumber(v) {
			panic("iterated number not found")
		}
	}
	_ = CheckRemovals(s, s)
	_ = s.Stats()
}

func FuzzParse(f *testing.F) {
	seeds := seedFiles(f)
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = resum(b)
		}
		s, err := Parse(b)
		if err != nil {
			return
		}
		exercise(s)
		// An accepted file is canonical: re-encoding what it says gives it back.
		var d, got bytes.Buffer
		if err := WriteDelta(&d, s, s); err != nil {
			t.Fatal(err)
		}
		if err := ApplyDelta(&got, s, d.Bytes()); err != nil || !bytes.Equal(got.Bytes(), b) {
			t.Fatalf("accepted file does not re-encode to itself: %v", err)
		}
	})
}

func FuzzApplyDelta(f *testing.F) {
	seeds := seedFiles(f)
	base, err := Parse(seeds[1])
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		next, err := Parse(s)
		if err != nil {
			f.Fatal(err)
		}
		var d bytes.Buffer
		if err := WriteDelta(&d, base, next); err != nil {
			f.Fatal(err)
		}
		f.Add(d.Bytes(), false)
		f.Add(d.Bytes(), true)
	}
	f.Fuzz(func(t *testing.T, d []byte, fix bool) {
		if fix {
			d = resum(d)
		}
		var out bytes.Buffer
		if err := ApplyDelta(&out, base, d); err != nil {
			if !errors.Is(err, ErrDelta) {
				t.Fatalf("error not ErrDelta: %v", err)
			}
			return
		}
		if _, err := Parse(out.Bytes()); err != nil {
			t.Fatalf("applied delta gave a bad registry: %v", err)
		}
	})
}

// csvSeeds are the corpus files whole, and each of their rows alone.
func csvSeeds(t testing.TB) []string {
	seeds := []string{
		"number,kind,label\n(512) 555-0100,attorney,x\n+1512854*,court,y\n",
		"5125550100,court\n5125550100,attorney\n",
		"\"a,b\n",
		"+1*,court\n",
	}
	for _, name := range []string{"messy.csv", "unreadable.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, string(b))
		for l := range strings.Lines(string(b)) {
			seeds = append(seeds, l)
		}
	}
	return seeds
}

func FuzzReadCSV(f *testing.F) {
	seeds := csvSeeds(f)
	if len(seeds) < 50 {
		f.Fatalf("%d seeds: the corpus files were not read", len(seeds))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		items, notes, err := ReadCSV(strings.NewReader(in), usPlan)
		if err != nil {
			var ce *CSVError
			if errors.As(err, &ce) && len(ce.Rows) == 0 {
				t.Fatal("CSVError without rows")
			}
			return
		}
		checkNothingSilent(t, []byte(in), items, notes)
		// Whatever ReadCSV accepts, Build accepts.
		if err := Build(&bytes.Buffer{}, 1, items, nil, nil); err != nil {
			t.Fatalf("Build refused what ReadCSV accepted: %v", err)
		}
	})
}

func TestTamperedFiles(t *testing.T) {
	good := seedFiles(t)[2]
	for n := 0; n < len(good); n++ {
		if _, err := Parse(good[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	accepted := 0
	for i := 0; i < len(good)-sumLen; i++ {
		for _, bit := range []byte{1, 0x80} {
			b := bytes.Clone(good)
			b[i] ^= bit
			// Magic, format and section count are read first, then the checksum.
			if _, err := Parse(b); !errors.Is(err, ErrChecksum) && !(i < 16 && errors.Is(err, ErrFormat)) {
				t.Fatalf("byte %d flipped: %v, want ErrChecksum", i, err)
			}
			// Past the checksum, structure is checked too; a flip may still give another
			// valid registry (a label's letter), but never a panic.
			if s, err := Parse(resum(b)); err == nil {
				exercise(s)
				accepted++
			} else if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrVersion) {
				t.Fatalf("byte %d flipped: %v", i, err)
			}
		}
	}
	t.Logf("%d of %d flips gave another valid registry", accepted, 2*(len(good)-sumLen))
}

func TestOpen(t *testing.T) {
	path := t.TempDir() + "/r.reg"
	var b bytes.Buffer
	if err := Build(&b, 5, demoItems, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := s.Lookup("+15125550142"); !ok || e.Kind != Attorney {
		t.Errorf("lookup from the mapped file: %v %v", e, ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, b.Bytes()[:100]); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), path) {
		t.Errorf("truncated file: %v", err)
	}
	if _, err := Open(path + ".missing"); err == nil {
		t.Error("missing file opened")
	}
}
