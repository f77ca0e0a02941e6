package g711_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/wallphone/wallphone/audio/g711"
)

// The golden files come from SoX (testdata/gen.sh); see there for their layout.

func readGolden(tb testing.TB, name string, size int) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("%v (regenerate with testdata/gen.sh)", err)
	}
	if len(b) != size {
		tb.Fatalf("%s: %d bytes, want %d", name, len(b), size)
	}
	return b
}

// goldenEncoded returns SoX's code for every int16, indexed by x+32768.
func goldenEncoded(tb testing.TB, name string) []byte { return readGolden(tb, name, 1<<16) }

// goldenDecoded returns SoX's sample for every byte.
func goldenDecoded(tb testing.TB, name string) []int16 {
	b := readGolden(tb, name, 512)
	out := make([]int16, 256)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

type law struct {
	name    string
	encode  func(int16) byte
	decode  func(byte) int16
	encFile string
	decFile string
	// keep is how many of a sample's 16 bits the law looks at: 14 for µ-law, 13 for A-law.
	keep uint
	step func(byte) int32
}

var laws = []law{
	{"ulaw", g711.EncodeUlaw, g711.DecodeUlaw, "ulaw.enc", "ulaw.dec", 14, ulawStep},
	{"alaw", g711.EncodeAlaw, g711.DecodeAlaw, "alaw.enc", "alaw.dec", 13, alawStep},
}

func TestDecodeMatchesSoX(t *testing.T) {
	for _, l := range laws {
		t.Run(l.name, func(t *testing.T) {
			want := goldenDecoded(t, l.decFile)
			for b := range 256 {
				if got := l.decode(byte(b)); got != want[b] {
					t.Errorf("decode(%#02x) = %d, SoX says %d", b, got, want[b])
				}
			}
		})
	}
}

// TestEncodeMatchesITU checks every int16 against the ITU-T reference rule, built from SoX's
// output where SoX and the reference agree by construction. SoX rounds a sample to 14 (13)
// bits and the reference truncates, but on a sample whose low bits are already zero there is
// nothing to round, so SoX's code for x with its low bits cleared is the reference code for a
// non-negative x. The reference then encodes a negative x as the mirror image of its one's
// complement ^x (same magnitude code, sign bit cleared), which is what sets it apart from
// encoders that negate.
func TestEncodeMatchesITU(t *testing.T) {
	for _, l := range laws {
		t.Run(l.name, func(t *testing.T) {
			sox := goldenEncoded(t, l.encFile)
			drop := 16 - l.keep
			reference := func(x int16) byte {
				neg := x < 0
				if neg {
					x = ^x
				}
				c := sox[int(x>>drop<<drop)+32768]
				if neg {
					c ^= 0x80
				}
				return c
			}
			bad := 0
			for i := math.MinInt16; i <= math.MaxInt16; i++ {
				x := int16(i)
				if got, want := l.encode(x), reference(x); got != want {
					if bad++; bad <= 10 {
						t.Errorf("encode(%d) = %#02x, want %#02x", x, got, want)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of 65536 samples encode wrongly", bad)
			}
		})
	}
}

// TestSoXDifference pins down how SoX's encoder differs from the reference, so that the
// vectors in testdata are understood rather than merely tolerated: SoX rounds half up to 14
// (13) bits, clipping at the top, then companding agrees with the reference. Expressed with
// this package, SoX's code for x is the reference code for the 16-bit sample whose truncation
// is SoX's rounded value, taking the one's-complement view of negatives into account.
func TestSoXDifference(t *testing.T) {
	for _, l := range laws {
		t.Run(l.name, func(t *testing.T) {
			sox := goldenEncoded(t, l.encFile)
			drop := 16 - l.keep
			top := int32(1)<<(l.keep-1) - 1
			differ := 0
			for i := math.MinInt16; i <= math.MaxInt16; i++ {
				x := int16(i)
				v := min((int32(x)+1<<(drop-1))>>drop, top) // SoX's rounded sample
				// A negative reference sample x' has magnitude ^x' >> drop; pick the x' whose
				// magnitude is SoX's, which negates (µ-law) or complements (A-law) v.
				var equiv int32
				switch {
				case v >= 0:
					equiv = v << drop
				case l.name == "ulaw":
					// At the very bottom SoX's value lies one below int16; both clip alike.
					equiv = max(v<<drop-1, math.MinInt16)
				default:
					equiv = v << drop
				}
				want := sox[i+32768]
				if got := l.encode(int16(equiv)); got != want {
					t.Fatalf("SoX encodes %d as %#02x, but the reference gives %#02x for %d", x, want, got, equiv)
				}
				if got := l.encode(x); got != want {
					differ++
					// Rounding moves a sample at most into the neighbouring interval.
					a, b := int32(l.decode(got)), int32(l.decode(want))
					if d := abs(a - b); d > max(l.step(got), l.step(want)) {
						t.Fatalf("%d: SoX %#02x and reference %#02x decode %d apart", x, want, got, d)
					}
				}
			}
			// For the record: how many samples a SoX-made file would encode differently.
			t.Logf("%s: SoX and the ITU-T reference differ on %d of 65536 samples", l.name, differ)
			if differ == 0 {
				t.Error("SoX matches the reference everywhere: the golden files are not from SoX's rounding encoder")
			}
		})
	}
}

func TestKnownValues(t *testing.T) {
	// Zero and the two ends of the range, which every implementation agrees on, and a mid-range
	// sample worked by hand from the segment tables of G.711.
	enc := []struct {
		law  string
		x    int16
		want byte
	}{
		{"ulaw", 0, 0xFF},
		{"ulaw", -1, 0x7F},
		{"ulaw", 32767, 0x80},
		{"ulaw", -32768, 0x00},
		{"ulaw", 1000, 0xCE},
		{"alaw", 0, 0xD5},
		{"alaw", -1, 0x55},
		{"alaw", 32767, 0xAA},
		{"alaw", -32768, 0x2A},
		{"alaw", 1000, 0xFA},
	}
	for _, tc := range enc {
		f := g711.EncodeUlaw
		if tc.law == "alaw" {
			f = g711.EncodeAlaw
		}
		if got := f(tc.x); got != tc.want {
			t.Errorf("%s encode(%d) = %#02x, want %#02x", tc.law, tc.x, got, tc.want)
		}
	}
	dec := []struct {
		law  string
		b    byte
		want int16
	}{
		{"ulaw", 0xFF, 0},
		{"ulaw", 0x7F, 0},
		{"ulaw", 0x80, g711.UlawMax},
		{"ulaw", 0x00, -g711.UlawMax},
		{"ulaw", 0xFE, 8},
		{"alaw", 0xD5, 8},
		{"alaw", 0x55, -8},
		{"alaw", 0xAA, g711.AlawMax},
		{"alaw", 0x2A, -g711.AlawMax},
	}
	for _, tc := range dec {
		f := g711.DecodeUlaw
		if tc.law == "alaw" {
			f = g711.DecodeAlaw
		}
		if got := f(tc.b); got != tc.want {
			t.Errorf("%s decode(%#02x) = %d, want %d", tc.law, tc.b, got, tc.want)
		}
	}
}

// ulawStep and alawStep give the width of a code's quantisation interval in 16-bit units,
// read off the code's exponent.
func ulawStep(u byte) int32 { return 8 << ((^u >> 4) & 7) }

func alawStep(a byte) int32 {
	exp := ((a ^ 0x55) >> 4) & 7
	if exp == 0 {
		return 16
	}
	return 16 << (exp - 1)
}

func checkUlawSample(t *testing.T, x int16) {
	u := g711.EncodeUlaw(x)
	d := g711.DecodeUlaw(u)
	if err := abs(int32(d) - int32(x)); err > ulawStep(u)/2 {
		// µ-law's range ends short of int16's; beyond it a sample clips to the end.
		clipped := (x > g711.UlawMax && d == g711.UlawMax) || (x < -g711.UlawMax && d == -g711.UlawMax)
		if !clipped {
			t.Fatalf("ulaw: %d -> %#02x -> %d: off by %d, step %d", x, u, d, err, ulawStep(u))
		}
	}
}

func checkAlawSample(t *testing.T, x int16) {
	a := g711.EncodeAlaw(x)
	d := g711.DecodeAlaw(a)
	if err := abs(int32(d) - int32(x)); err > alawStep(a)/2 {
		t.Fatalf("alaw: %d -> %#02x -> %d: off by %d, step %d", x, a, d, err, alawStep(a))
	}
}

func abs(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// canonicalUlaw is the byte that decoding and re-encoding b yields: µ-law has two zeros and
// the encoder only makes the positive one.
func canonicalUlaw(b byte) byte {
	if b == 0x7F {
		return 0xFF
	}
	return b
}

func TestRoundTripEverySample(t *testing.T) {
	for i := math.MinInt16; i <= math.MaxInt16; i++ {
		checkUlawSample(t, int16(i))
		checkAlawSample(t, int16(i))
	}
}

func TestRoundTripEveryByte(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if got := g711.EncodeUlaw(g711.DecodeUlaw(b)); got != canonicalUlaw(b) {
			t.Errorf("ulaw %#02x -> %d -> %#02x", b, g711.DecodeUlaw(b), got)
		}
		if got := g711.EncodeAlaw(g711.DecodeAlaw(b)); got != b {
			t.Errorf("alaw %#02x -> %d -> %#02x", b, g711.DecodeAlaw(b), got)
		}
	}
}

func TestFrameLengths(t *testing.T) {
	const guard = 0x5A // marks what a helper must not touch
	for _, tc := range []struct{ dst, src int }{
		{0, 0}, {0, 5}, {5, 0}, {160, 160}, {160, 100}, {100, 160}, {1, 1},
	} {
		t.Run(fmt.Sprintf("dst%d_src%d", tc.dst, tc.src), func(t *testing.T) {
			want := min(tc.dst, tc.src)
			pcm := make([]int16, tc.src)
			for i := range pcm {
				pcm[i] = int16(i*397 - 30000)
			}
			codes := make([]byte, tc.src)
			for i := range codes {
				codes[i] = byte(i * 7)
			}
			for _, enc := range []struct {
				name string
				fn   func([]byte, []int16) int
				one  func(int16) byte
			}{{"ulaw", g711.EncodeUlawFrame, g711.EncodeUlaw}, {"alaw", g711.EncodeAlawFrame, g711.EncodeAlaw}} {
				dst := make([]byte, tc.dst)
				for i := range dst {
					dst[i] = guard
				}
				if n := enc.fn(dst, pcm); n != want {
					t.Fatalf("%s encode: n = %d, want %d", enc.name, n, want)
				}
				for i, b := range dst {
					if i < want && b != enc.one(pcm[i]) || i >= want && b != guard {
						t.Fatalf("%s encode: dst[%d] = %#02x", enc.name, i, b)
					}
				}
			}
			for _, dec := range []struct {
				name string
				fn   func([]int16, []byte) int
				one  func(byte) int16
			}{{"ulaw", g711.DecodeUlawFrame, g711.DecodeUlaw}, {"alaw", g711.DecodeAlawFrame, g711.DecodeAlaw}} {
				dst := make([]int16, tc.dst)
				for i := range dst {
					dst[i] = guard
				}
				if n := dec.fn(dst, codes); n != want {
					t.Fatalf("%s decode: n = %d, want %d", dec.name, n, want)
				}
				for i, s := range dst {
					if i < want && s != dec.one(codes[i]) || i >= want && s != guard {
						t.Fatalf("%s decode: dst[%d] = %d", dec.name, i, s)
					}
				}
			}
		})
	}
}

func TestFramesDoNotAllocate(t *testing.T) {
	pcm := make([]int16, 160)
	codes := make([]byte, 160)
	allocs := testing.AllocsPerRun(100, func() {
		g711.EncodeUlawFrame(codes, pcm)
		g711.DecodeUlawFrame(pcm, codes)
		g711.EncodeAlawFrame(codes, pcm)
		g711.DecodeAlawFrame(pcm, codes)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

// addSeeds seeds a fuzz target from the golden vectors, so that it starts from the codes and
// samples an independent implementation produced, and fails if they went missing.
func addSeeds(f *testing.F, l law) {
	seeds := 0
	add := func(b []byte) { f.Add(b); seeds++ }
	enc := goldenEncoded(f, l.encFile)
	// Around zero and at both ends of the range, where the segments are.
	add(enc[32768-160 : 32768+160])
	add(enc[:160])
	add(enc[len(enc)-160:])
	dec := readGolden(f, l.decFile, 512)
	add(dec) // read as samples: every decoded level; read as codes: arbitrary bytes
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	add(all)
	if seeds == 0 {
		f.Fatal("empty seed corpus")
	}
}

// fuzzLaw reads data both as codes, which must survive decode and re-encode (up to
// canonical), and as little-endian samples, which must come back within half a step.
func fuzzLaw(t *testing.T, data []byte, decFrame func([]int16, []byte) int, encFrame func([]byte, []int16) int,
	canonical func(byte) byte, checkSample func(*testing.T, int16)) {
	pcm := make([]int16, len(data))
	if n := decFrame(pcm, data); n != len(data) {
		t.Fatalf("decoded %d of %d", n, len(data))
	}
	back := make([]byte, len(data)+1) // longer than the input: only len(data) may be written
	back[len(data)] = 0x5A
	if n := encFrame(back, pcm); n != len(data) {
		t.Fatalf("encoded %d of %d", n, len(data))
	}
	for i, b := range data {
		if back[i] != canonical(b) {
			t.Fatalf("%#02x -> %d -> %#02x", b, pcm[i], back[i])
		}
	}
	if back[len(data)] != 0x5A {
		t.Fatal("encoder wrote past its input")
	}
	for i := 0; i+1 < len(data); i += 2 {
		checkSample(t, int16(binary.LittleEndian.Uint16(data[i:])))
	}
}

func FuzzUlaw(f *testing.F) {
	addSeeds(f, laws[0])
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLaw(t, data, g711.DecodeUlawFrame, g711.EncodeUlawFrame, canonicalUlaw, checkUlawSample)
	})
}

func FuzzAlaw(f *testing.F) {
	addSeeds(f, laws[1])
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLaw(t, data, g711.DecodeAlawFrame, g711.EncodeAlawFrame, func(b byte) byte { return b }, checkAlawSample)
	})
}

// encodeUlawBySearch and encodeAlawBySearch find the segment by walking up the decision
// levels, as the standard's tables are read: the benchmarks' baseline for the bit-length
// shortcut, and a second, plainer statement of the same rule.
func encodeUlawBySearch(x int16) byte {
	v, sign := int32(x), byte(0x80)
	if v < 0 {
		v, sign = -v-1, 0
	}
	m := min(v/4+33, 0x1FFF)
	seg := int32(0)
	for m >= 64<<seg {
		seg++
	}
	return sign | (0x7F ^ byte(seg<<4|(m>>(seg+1))&0x0F))
}

func encodeAlawBySearch(x int16) byte {
	v, sign := int32(x), byte(0x80)
	if v < 0 {
		v, sign = -v-1, 0
	}
	m := v / 16
	code := m // segment 0
	if m >= 16 {
		seg := int32(1)
		for m >= 16<<seg {
			seg++
		}
		code = seg<<4 | (m>>(seg-1))&0x0F
	}
	return (sign | byte(code)) ^ 0x55
}

func TestSearchEncodersAgree(t *testing.T) {
	for i := math.MinInt16; i <= math.MaxInt16; i++ {
		x := int16(i)
		if a, b := g711.EncodeUlaw(x), encodeUlawBySearch(x); a != b {
			t.Fatalf("ulaw %d: %#02x, by search %#02x", x, a, b)
		}
		if a, b := g711.EncodeAlaw(x), encodeAlawBySearch(x); a != b {
			t.Fatalf("alaw %d: %#02x, by search %#02x", x, a, b)
		}
	}
}

// speech returns a frame of something like speech levels, so that the encoders visit many
// segments rather than one.
func speech() ([]int16, []byte) {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = int16(12000 * math.Sin(float64(i)*0.37) * math.Sin(float64(i)*0.05))
	}
	codes := make([]byte, 160)
	g711.EncodeUlawFrame(codes, pcm)
	return pcm, codes
}

// Each benchmark runs beside its baseline: the plain per-sample form the package improves on.

func benchEncode(b *testing.B, frame func([]byte, []int16) int, search func(int16) byte) {
	pcm, codes := speech()
	b.Run("frame", func(b *testing.B) {
		b.SetBytes(int64(len(pcm)))
		b.ReportAllocs()
		for b.Loop() {
			frame(codes, pcm)
		}
	})
	b.Run("baseline=segment-search", func(b *testing.B) {
		b.SetBytes(int64(len(pcm)))
		for b.Loop() {
			for i, x := range pcm {
				codes[i] = search(x)
			}
		}
	})
}

func benchDecode(b *testing.B, encode func([]byte, []int16) int, frame func([]int16, []byte) int, formula func(byte) int16) {
	pcm, codes := speech()
	encode(codes, pcm)
	b.Run("frame", func(b *testing.B) {
		b.SetBytes(int64(len(pcm)))
		b.ReportAllocs()
		for b.Loop() {
			frame(pcm, codes)
		}
	})
	b.Run("baseline=formula", func(b *testing.B) {
		b.SetBytes(int64(len(pcm)))
		for b.Loop() {
			for i, c := range codes {
				pcm[i] = formula(c)
			}
		}
	})
}

func BenchmarkEncodeUlawFrame(b *testing.B) {
	benchEncode(b, g711.EncodeUlawFrame, encodeUlawBySearch)
}

func BenchmarkEncodeAlawFrame(b *testing.B) {
	benchEncode(b, g711.EncodeAlawFrame, encodeAlawBySearch)
}

func BenchmarkDecodeUlawFrame(b *testing.B) {
	benchDecode(b, g711.EncodeUlawFrame, g711.DecodeUlawFrame, g711.ExpandUlaw)
}

func BenchmarkDecodeAlawFrame(b *testing.B) {
	benchDecode(b, g711.EncodeAlawFrame, g711.DecodeAlawFrame, g711.ExpandAlaw)
}
