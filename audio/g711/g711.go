// Package g711 converts between 16-bit linear samples and ITU-T G.711 µ-law and A-law, the
// 8-bit companded forms of narrowband telephony. The SIP trunk sends and receives it on the
// wire (PCMU and PCMA), recordings are stored in it, and the spoken prompts are shipped in it.
//
// The conversions follow the ITU-T reference implementation (the G.711 module of the G.191
// Software Tools Library), bit for bit: the encoder looks only at the most significant bits of
// a sample (14 for µ-law, 13 for A-law), truncating rather than rounding, and takes a negative
// sample's one's complement, so that x and -x-1 encode to the same magnitude. Widespread
// encoders differ: SoX rounds to the nearest 14 (13) bits, and the Sun Microsystems µ-law
// code that SoX and many others build on negates a negative sample. Between them they disagree
// with the reference on 510 of the 65536 samples for µ-law and 1020 for A-law, always by one
// step; the package tests pin that difference down.
//
// Every function is pure, safe for concurrent use and allocates nothing.
package g711

import "math/bits"

const (
	// UlawMax is the largest magnitude a µ-law byte decodes to; louder samples clip to it.
	UlawMax = 32124
	// AlawMax is the largest magnitude an A-law byte decodes to.
	AlawMax = 32256
)

// ulawClip is the largest biased 14-bit magnitude the µ-law segments cover.
const ulawClip = 0x1FFF

// ulawBias moves the µ-law decision levels onto powers of two so that the segment is the
// position of the leading one bit (33 in 14-bit units, 0x84 in 16-bit units).
const ulawBias = 33

// EncodeUlaw compands one linear sample to µ-law.
func EncodeUlaw(x int16) byte {
	// The sign bit is set for positive samples: µ-law transmits every bit inverted, so that
	// silence (all ones) keeps enough pulses on a T1 line.
	v, sign := int32(x), byte(0x80)
	if v < 0 {
		v, sign = ^v, 0
	}
	m := v>>2 + ulawBias
	if m > ulawClip {
		m = ulawClip
	}
	// m is at least 33, so its leading one is at bit 5 or higher: segment 0 starts there.
	exp := int32(bits.Len32(uint32(m))) - 6
	mant := (m >> (exp + 1)) & 0x0F
	return sign | (0x7F ^ byte(exp<<4|mant))
}

// DecodeUlaw expands one µ-law byte to a linear sample. Both 0xFF and 0x7F (positive and
// negative zero) decode to 0.
func DecodeUlaw(u byte) int16 { return ulawTable[u] }

// EncodeAlaw compands one linear sample to A-law.
func EncodeAlaw(x int16) byte {
	v, sign := int32(x), byte(0x80)
	if v < 0 {
		v, sign = ^v, 0
	}
	ix := v >> 4 // 0..2047: the 12 magnitude bits that A-law keeps
	if ix > 0x0F {
		// Segments 0 and 1 share one step size; above them the step doubles per segment.
		exp := int32(bits.Len32(uint32(ix))) - 4
		ix = exp<<4 | (ix>>(exp-1))&0x0F
	}
	// A-law inverts every other bit, for the same reason µ-law inverts them all.
	return (sign | byte(ix)) ^ 0x55
}

// DecodeAlaw expands one A-law byte to a linear sample.
func DecodeAlaw(a byte) int16 { return alawTable[a] }

// EncodeUlawFrame compands min(len(dst), len(src)) samples from src into dst and returns that
// count. Mismatched lengths are not an error so that a caller can pass a fixed packet buffer
// and a shorter final frame.
func EncodeUlawFrame(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, x := range src {
		dst[i] = EncodeUlaw(x)
	}
	return n
}

// DecodeUlawFrame expands min(len(dst), len(src)) bytes from src into dst and returns that
// count.
func DecodeUlawFrame(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, u := range src {
		dst[i] = ulawTable[u]
	}
	return n
}

// EncodeAlawFrame compands min(len(dst), len(src)) samples from src into dst and returns that
// count.
func EncodeAlawFrame(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, x := range src {
		dst[i] = EncodeAlaw(x)
	}
	return n
}

// DecodeAlawFrame expands min(len(dst), len(src)) bytes from src into dst and returns that
// count.
func DecodeAlawFrame(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	for i, a := range src {
		dst[i] = alawTable[a]
	}
	return n
}

// The decode tables are filled once from the reference formulas, which stay readable here,
// while decoding a frame costs one load per sample.
var (
	ulawTable = func() (t [256]int16) {
		for i := range t {
			t[i] = expandUlaw(byte(i))
		}
		return t
	}()
	alawTable = func() (t [256]int16) {
		for i := range t {
			t[i] = expandAlaw(byte(i))
		}
		return t
	}()
)

// expandUlaw decodes to the middle of the byte's quantisation interval.
func expandUlaw(u byte) int16 {
	c := ^u
	exp := int32(c>>4) & 0x07
	mant := int32(c) & 0x0F
	step := int32(8) << exp // in 16-bit units
	v := 0x80<<exp + step*mant + step/2 - 4*ulawBias
	if u&0x80 == 0 {
		v = -v
	}
	return int16(v)
}

// expandAlaw decodes to the middle of the byte's quantisation interval.
func expandAlaw(a byte) int16 {
	c := a ^ 0x55
	exp := int32(c>>4) & 0x07
	mant := int32(c) & 0x0F
	if exp > 0 {
		mant += 0x10 // the leading one that the encoder dropped
	}
	v := mant<<4 + 8
	if exp > 1 {
		v <<= exp - 1
	}
	if c&0x80 == 0 {
		v = -v
	}
	return int16(v)
}
