package blockindex_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/firmware/blockindex"
)

// vectorImage is the image of the test vector testdata/v1.bidx: 10000 bytes, i mod 251, in
// 4096-byte blocks (two whole blocks and one of 1808 bytes).
func vectorImage() []byte {
	b := make([]byte, 10000)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func encode(t testing.TB, x *blockindex.Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := x.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n != x.EncodedLen() {
		t.Fatalf("WriteTo says %d bytes, wrote %d, EncodedLen %d", n, buf.Len(), x.EncodedLen())
	}
	return buf.Bytes()
}

// The format, spelled out byte by byte against the test vector, so that a change to it
// cannot pass unnoticed: published indexes must stay readable by phones in the field.
func TestVector(t *testing.T) {
	img := vectorImage()
	want, err := os.ReadFile(filepath.Join("testdata", "v1.bidx"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := blockindex.Build(bytes.NewReader(img), 4096)
	if err != nil {
		t.Fatal(err)
	}
	got := encode(t, x)
	if !bytes.Equal(got, want) {
		t.Fatalf("Build of the vector image differs from testdata/v1.bidx")
	}
	// The layout, independently of the package.
	var hdr bytes.Buffer
	hdr.WriteString("WPBLKIDX")
	binary.Write(&hdr, binary.BigEndian, uint32(1))
	binary.Write(&hdr, binary.BigEndian, uint32(4096))
	binary.Write(&hdr, binary.BigEndian, uint64(len(img)))
	sum := sha256.Sum256(img)
	hdr.Write(sum[:])
	for off := 0; off < len(img); off += 4096 {
		h := sha256.Sum256(img[off:min(off+4096, len(img))])
		hdr.Write(h[:])
	}
	if !bytes.Equal(hdr.Bytes(), want) {
		t.Fatal("testdata/v1.bidx does not follow the documented layout")
	}
	p, err := blockindex.Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if p.BlockSize() != 4096 || p.Len() != 10000 || p.Blocks() != 3 || p.Sum() != sum {
		t.Fatalf("parsed %d-byte blocks, %d bytes, %d blocks", p.BlockSize(), p.Len(), p.Blocks())
	}
	for i := range int64(3) {
		off, n := p.Block(i)
		h, err := p.Hash(i)
		if err != nil {
			t.Fatal(err)
		}
		if h != sha256.Sum256(img[off:off+n]) {
			t.Errorf("hash of block %d", i)
		}
		if err := p.Check(i, img[off:off+n]); err != nil {
			t.Errorf("Check(%d): %v", i, err)
		}
	}
	if _, err := p.Hash(3); !errors.Is(err, blockindex.ErrBlockNumber) {
		t.Errorf("Hash(3): got %v, want ErrBlockNumber", err)
	}
	if _, err := p.Hash(-1); !errors.Is(err, blockindex.ErrBlockNumber) {
		t.Errorf("Hash(-1): got %v, want ErrBlockNumber", err)
	}
}

// Check names the block whose bytes do not match, and refuses a block of the wrong length.
func TestCheck(t *testing.T) {
	img := vectorImage()
	x, err := blockindex.Build(bytes.NewReader(img), 4096)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(img[4096:8192])
	bad[100] ^= 1
	err = x.Check(1, bad)
	if !errors.Is(err, blockindex.ErrMismatch) || !strings.Contains(err.Error(), "block 1") {
		t.Fatalf("got %v, want ErrMismatch naming block 1", err)
	}
	if err := x.Check(2, img[8192:]); err != nil {
		t.Fatal(err)
	}
	if err := x.Check(2, img[8192:9999]); !errors.Is(err, blockindex.ErrMismatch) {
		t.Fatalf("a short last block: got %v, want ErrMismatch", err)
	}
	if err := x.Check(0, img[:4095]); !errors.Is(err, blockindex.ErrMismatch) {
		t.Fatalf("a short block: got %v, want ErrMismatch", err)
	}
}

func TestBuildBadInput(t *testing.T) {
	if _, err := blockindex.Build(bytes.NewReader(nil), 4096); !errors.Is(err, blockindex.ErrEmpty) {
		t.Errorf("empty image: got %v, want ErrEmpty", err)
	}
	for _, bs := range []int{0, 256, 1000, 3 << 10, 2 << 20} {
		if _, err := blockindex.Build(bytes.NewReader([]byte{1}), bs); !errors.Is(err, blockindex.ErrFormat) {
			t.Errorf("block size %d: got %v, want ErrFormat", bs, err)
		}
	}
	boom := errors.New("boom")
	_, err := blockindex.Build(io.MultiReader(bytes.NewReader(make([]byte, 5000)), errReader{boom}), 4096)
	if !errors.Is(err, boom) {
		t.Errorf("a failing reader: got %v, want its error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// Build reads through short reads and exact multiples of the block size alike.
func TestBuildBoundaries(t *testing.T) {
	for _, n := range []int{1, 511, 512, 513, 4095, 4096, 4097, 3 * 4096, 3*4096 + 1} {
		img := randomBytes(uint64(n), n)
		x, err := blockindex.Build(io.LimitReader(&oneByteReader{bytes.NewReader(img)}, int64(n)), 512)
		if err != nil {
			t.Fatal(err)
		}
		if x.Len() != int64(n) || x.Blocks() != int64((n+511)/512) || x.Sum() != sha256.Sum256(img) {
			t.Fatalf("n=%d: len %d blocks %d", n, x.Len(), x.Blocks())
		}
		for i := range x.Blocks() {
			off, l := x.Block(i)
			if err := x.Check(i, img[off:off+l]); err != nil {
				t.Fatalf("n=%d: %v", n, err)
			}
		}
		back, err := blockindex.Parse(encode(t, x))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if back.Len() != x.Len() || back.Sum() != x.Sum() {
			t.Fatalf("n=%d: round trip", n)
		}
	}
}

type oneByteReader struct{ r io.Reader }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return r.r.Read(p)
}

// Open reads an index from a file without loading its hashes: what the phone does with the
// index of a large image.
func TestOpenFile(t *testing.T) {
	img := randomBytes(7, 100*4096+17)
	x, err := blockindex.Build(bytes.NewReader(img), 4096)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "img.bidx")
	if err := os.WriteFile(path, encode(t, x), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	y, err := blockindex.Open(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	for i := range y.Blocks() {
		off, n := y.Block(i)
		if err := y.Check(i, img[off:off+n]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "v1.bidx"))
	if err != nil {
		t.Fatal(err)
	}
	put32 := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[off:], v)
		return b
	}
	put64 := func(off int, v uint64) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
		says string
	}{
		{"empty", nil, blockindex.ErrFormat, "short header"},
		{"short header", good[:55], blockindex.ErrFormat, "short header"},
		{"bad magic", append([]byte("XPBLKIDX"), good[8:]...), blockindex.ErrNotIndex, ""},
		{"version 0", put32(8, 0), blockindex.ErrVersion, "version 0"},
		{"version 2", put32(8, 2), blockindex.ErrVersion, "version 2"},
		{"block size not a power of two", put32(12, 4000), blockindex.ErrFormat, "block size 4000"},
		{"block size too small", put32(12, 256), blockindex.ErrFormat, "block size 256"},
		{"block size too large", put32(12, 2<<20), blockindex.ErrFormat, "block size"},
		{"block size zero", put32(12, 0), blockindex.ErrFormat, "block size 0"},
		{"zero length", put64(16, 0), blockindex.ErrFormat, "length 0"},
		{"huge length", put64(16, 1<<63), blockindex.ErrFormat, "length"},
		{"length says fewer blocks", put64(16, 8192), blockindex.ErrFormat, "trailing"},
		{"length says more blocks", put64(16, 12289), blockindex.ErrFormat, "truncated"},
		{"trailing bytes", append(bytes.Clone(good), 0), blockindex.ErrFormat, "trailing"},
		{"truncated hashes", good[:len(good)-1], blockindex.ErrFormat, "truncated"},
		{"a hash missing", good[:len(good)-32], blockindex.ErrFormat, "truncated"},
	} {
		_, err := blockindex.Parse(tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %q should say %q", tc.name, err, tc.says)
		}
	}
	// The same length with another block size is fine as long as the hash count agrees.
	b := put32(12, 2048) // 10000 bytes in 2048-byte blocks is 5 hashes, not 3
	if _, err := blockindex.Parse(b); !errors.Is(err, blockindex.ErrFormat) {
		t.Errorf("block count disagreeing with the block size: got %v", err)
	}
}

// The fuzzer starts from the test vectors in testdata and from cut and patched copies of
// them.
func FuzzParse(f *testing.F) {
	vectors, err := filepath.Glob(filepath.Join("testdata", "*.bidx"))
	if err != nil {
		f.Fatal(err)
	}
	if len(vectors) == 0 {
		f.Fatal("no test vectors in testdata: the fuzzer would start from nothing")
	}
	for _, v := range vectors {
		b, err := os.ReadFile(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:56])
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), 0))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := blockindex.Parse(b)
		if err != nil {
			if !errors.Is(err, blockindex.ErrFormat) && !errors.Is(err, blockindex.ErrNotIndex) && !errors.Is(err, blockindex.ErrVersion) {
				t.Fatalf("an error of no documented kind: %v", err)
			}
			return
		}
		// What parses is canonical: it encodes back to the very same bytes, and every
		// block's hash and range can be read.
		var out bytes.Buffer
		if _, err := x.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatal("a parsed index encodes to other bytes")
		}
		var total int64
		for i := range x.Blocks() {
			off, n := x.Block(i)
			if off != total || n <= 0 || n > int64(x.BlockSize()) {
				t.Fatalf("block %d at %d, %d bytes", i, off, n)
			}
			total += n
			if _, err := x.Hash(i); err != nil {
				t.Fatal(err)
			}
		}
		if total != x.Len() {
			t.Fatalf("blocks cover %d bytes of %d", total, x.Len())
		}
	})
}
