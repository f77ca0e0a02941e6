package bootenv

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecodeCopy: no image makes the parser panic, and whatever it accepts re-encodes to an
// image that reads back the same. The CRC is set right before parsing, or almost every input
// would stop at it. The corpus in testdata holds images written by fw_setenv and mkenvimage,
// one copy and two.
func FuzzDecodeCopy(f *testing.F) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeCopy")
	seeds, err := os.ReadDir(dir)
	if err != nil || len(seeds) == 0 {
		f.Fatalf("empty seed corpus in %s: %v", dir, err)
	}
	f.Add([]byte("\x00\x00\x00\x00\x00"), false)
	f.Fuzz(func(t *testing.T, img []byte, redundant bool) {
		if h := headerSize(redundant); len(img) > h {
			binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(img[h:]))
		}
		flag, vars, err := decodeCopy(img, redundant)
		if err != nil {
			return
		}
		out := make([]byte, len(img))
		if err := encodeCopy(out, vars, redundant, flag); err != nil {
			t.Fatalf("re-encode of an accepted image: %v", err)
		}
		flag2, vars2, err := decodeCopy(out, redundant)
		if err != nil || flag2 != flag || !slices.Equal(vars, vars2) {
			t.Fatalf("round trip: %v, flag %d→%d, %v → %v", err, flag, flag2, vars, vars2)
		}
	})
}

// The seeds in testdata are real tools' output and must parse, or the fuzzer starts from noise.
func TestFuzzSeedsParse(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeCopy")
	seeds, _ := os.ReadDir(dir)
	if len(seeds) == 0 {
		t.Fatal("empty seed corpus")
	}
	for _, s := range seeds {
		b, err := os.ReadFile(filepath.Join(dir, s.Name()))
		if err != nil {
			t.Fatal(err)
		}
		img, redundant := seedImage(t, string(b))
		if _, vars, err := decodeCopy(img, redundant); err != nil || len(vars) == 0 {
			t.Errorf("seed %s: %d variables, %v", s.Name(), len(vars), err)
		}
	}
}

// seedImage reads the two values of a corpus file written as "go test fuzz v1".
func seedImage(t *testing.T, file string) ([]byte, bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(file), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("corpus file not in the expected form: %.60q", file)
	}
	lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s), lines[2] == "bool(true)"
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"/dev/mtd1 0x0 0x40000\n", "/e 0 1000\n/f -0x1000 1000 1000 2 1\n", "# c\n\n/e 010 0x1000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(strings.NewReader(s))
		if err != nil {
			return
		}
		if n := len(c.Copies); n < 1 || n > 2 || c.Copies[0].Size > maxSize {
			t.Fatalf("accepted %+v", c)
		}
	})
}
