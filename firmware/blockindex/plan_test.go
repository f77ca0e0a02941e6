package blockindex_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/wallphone/wallphone/firmware/blockindex"
)

const pbs = 512 // block size of the plan tables

// blocks makes an image of one 512-byte block per letter, each letter's block distinct,
// then tail bytes of the letter '+' pattern as a short last block.
func blocks(letters string, tail int) []byte {
	var b []byte
	for _, c := range letters {
		b = append(b, letterBlock(byte(c), pbs)...)
	}
	return append(b, letterBlock('+', tail)...)
}

func letterBlock(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c ^ byte(i*7)
	}
	return b
}

func TestPlan(t *testing.T) {
	type C = blockindex.Copy
	type R = blockindex.Range
	for _, tc := range []struct {
		name     string
		running  []byte
		image    []byte
		maxRange int64
		copies   []C
		fetches  []R
	}{
		{"identical", blocks("ABCD", 0), blocks("ABCD", 0), 1 << 20,
			[]C{{From: 0, To: 0, Len: 4 * pbs}}, nil},
		{"no running slot", nil, blocks("ABCD", 0), 1 << 20,
			nil, []R{{Off: 0, Len: 4 * pbs}}},
		{"one block changed", blocks("ABCD", 0), blocks("ABXD", 0), 1 << 20,
			[]C{{0, 0, 2 * pbs}, {3 * pbs, 3 * pbs, pbs}}, []R{{2 * pbs, pbs}}},
		{"changes interleaved", blocks("ABCDEF", 0), blocks("XBYYEZ", 0), 1 << 20,
			[]C{{pbs, pbs, pbs}, {4 * pbs, 4 * pbs, pbs}},
			[]R{{0, pbs}, {2 * pbs, 2 * pbs}, {5 * pbs, pbs}}},
		{"content shifted by a block", blocks("ABCD", 0), blocks("ZABCD", 0), 1 << 20,
			[]C{{From: 0, To: pbs, Len: 4 * pbs}}, []R{{0, pbs}}},
		{"blocks reordered", blocks("ABCD", 0), blocks("DCBA", 0), 1 << 20,
			[]C{{3 * pbs, 0, pbs}, {2 * pbs, pbs, pbs}, {pbs, 2 * pbs, pbs}, {0, 3 * pbs, pbs}}, nil},
		{"a repeated block comes from its one copy", blocks("BA", 0), blocks("AAAA", 0), 1 << 20,
			[]C{{pbs, 0, pbs}, {pbs, pbs, pbs}, {pbs, 2 * pbs, pbs}, {pbs, 3 * pbs, pbs}}, nil},
		{"fetches capped", nil, blocks("ABCDE", 0), 2 * pbs,
			nil, []R{{0, 2 * pbs}, {2 * pbs, 2 * pbs}, {4 * pbs, pbs}}},
		{"cap rounded down to whole blocks", nil, blocks("ABCDE", 0), 3*pbs - 1,
			nil, []R{{0, 2 * pbs}, {2 * pbs, 2 * pbs}, {4 * pbs, pbs}}},
		{"cap below a block fetches one block a range", nil, blocks("AB", 0), 1,
			nil, []R{{0, pbs}, {pbs, pbs}}},
		{"same short last block", blocks("AB", 100), blocks("AB", 100), 1 << 20,
			[]C{{0, 0, 2*pbs + 100}}, nil},
		{"short last block grown", blocks("AB", 100), blocks("AB", 200), 1 << 20,
			[]C{{0, 0, 2 * pbs}}, []R{{2 * pbs, 200}}},
		{"running slot longer than the image", blocks("ABCDE", 0), blocks("AB", 0), 1 << 20,
			[]C{{0, 0, 2 * pbs}}, nil},
		{"running's short block is no whole block", blocks("A", 100), blocks("A+", 0), 1 << 20,
			[]C{{0, 0, pbs}}, []R{{pbs, pbs}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := blockindex.Build(bytes.NewReader(tc.image), pbs)
			if err != nil {
				t.Fatal(err)
			}
			d, err := blockindex.Plan(bytes.NewReader(tc.running), int64(len(tc.running)), x, tc.maxRange)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d.Copies, tc.copies) {
				t.Errorf("copies %v, want %v", d.Copies, tc.copies)
			}
			if !reflect.DeepEqual(d.Fetches, tc.fetches) {
				t.Errorf("fetches %v, want %v", d.Fetches, tc.fetches)
			}
			checkDelta(t, d, tc.running, tc.image, x)
		})
	}
}

// checkDelta rebuilds the image from the running slot and the fetched ranges of the full
// image, as the installer does, and checks that every byte is covered exactly once.
func checkDelta(t *testing.T, d *blockindex.Delta, running, image []byte, x *blockindex.Index) {
	t.Helper()
	out := make([]byte, len(image))
	covered := make([]int, len(image))
	var copied, fetched int64
	for _, c := range d.Copies {
		copy(out[c.To:c.To+c.Len], running[c.From:c.From+c.Len])
		for i := c.To; i < c.To+c.Len; i++ {
			covered[i]++
		}
		copied += c.Len
	}
	for _, r := range d.Fetches {
		copy(out[r.Off:r.Off+r.Len], image[r.Off:r.Off+r.Len])
		for i := r.Off; i < r.Off+r.Len; i++ {
			covered[i]++
		}
		fetched += r.Len
	}
	for i, n := range covered {
		if n != 1 {
			t.Fatalf("byte %d written %d times", i, n)
		}
	}
	if !bytes.Equal(out, image) {
		t.Fatal("the plan does not rebuild the image")
	}
	if copied != d.CopyBytes || fetched != d.FetchBytes {
		t.Fatalf("CopyBytes %d FetchBytes %d, counted %d and %d", d.CopyBytes, d.FetchBytes, copied, fetched)
	}
	for i := range x.Blocks() {
		off, n := x.Block(i)
		if err := x.Check(i, out[off:off+n]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRangeHeader(t *testing.T) {
	if got := (blockindex.Range{Off: 4096, Len: 8192}).Header(); got != "bytes=4096-12287" {
		t.Fatalf("got %q", got)
	}
}

// A running slot that cannot be read is an error, not a plan to copy nothing: the caller
// decides whether to fetch everything.
func TestPlanRunningUnreadable(t *testing.T) {
	x, err := blockindex.Build(bytes.NewReader(blocks("ABCD", 0)), pbs)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err = blockindex.Plan(failingReaderAt{boom}, 4*pbs, x, 1<<20)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the read error", err)
	}
	// A running slot shorter than it is said to be.
	_, err = blockindex.Plan(bytes.NewReader(blocks("AB", 0)), 4*pbs, x, 1<<20)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want ErrUnexpectedEOF", err)
	}
}

type failingReaderAt struct{ err error }

func (r failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, r.err }
