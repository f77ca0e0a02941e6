//go:build cgo && portaudio

package portaudio

import (
	"math"

	"github.com/wallphone/wallphone/audio"
)

// Devices that cannot run at 8 kHz usually can at 16 kHz, so the handset converts between the
// two with one half-band low-pass filter: the 11-tap maximally flat one (Lagrange
// interpolation of order 5), whose taps are
//
//	3, 0, -25, 0, 150, 256, 150, 0, -25, 0, 3  (divided by 512)
//
// Every other tap but the centre one is zero, so it costs three multiplications per output
// sample each way. At 16 kHz it passes 1 kHz at -0.005 dB, 2 kHz at -0.2 dB and 3.4 kHz at
// -3 dB, and stops 6 kHz by 32 dB and 7 kHz by 66 dB: the band edge of narrowband telephony
// is soft, and what would fold back into it is well down.

// upsampler turns 8 kHz frames into 16 kHz samples: each input sample, then the filter's
// estimate of the signal half-way to the next one. It delays the signal by three input
// samples (0.375 ms), the look-ahead the estimate needs.
type upsampler struct {
	hist [5]int16 // the last five input samples, oldest first
}

// process writes the 2*audio.FrameSamples samples at 16 kHz that follow from f into out.
func (u *upsampler) process(f *audio.Frame, out []int16) {
	var x [len(u.hist) + audio.FrameSamples]int16
	copy(x[:], u.hist[:])
	copy(x[len(u.hist):], f[:])
	_ = out[2*audio.FrameSamples-1]
	for j := range audio.FrameSamples {
		c := j + 2 // the sample passed through; the new one lies between x[c] and x[c+1]
		out[2*j] = x[c]
		v := 150*(int32(x[c])+int32(x[c+1])) - 25*(int32(x[c-1])+int32(x[c+2])) +
			3*(int32(x[c-2])+int32(x[c+3]))
		out[2*j+1] = clamp(roundShift(v, 8))
	}
	copy(u.hist[:], x[audio.FrameSamples:])
}

// downsampler turns 16 kHz samples into 8 kHz frames: low-pass filter, then keep every other
// sample. It delays the signal by five 16 kHz samples (0.3125 ms).
type downsampler struct {
	hist [10]int16 // the last ten input samples, oldest first
}

// process fills f from the 2*audio.FrameSamples samples at 16 kHz in in.
func (d *downsampler) process(in []int16, f *audio.Frame) {
	var x [len(d.hist) + 2*audio.FrameSamples]int16
	copy(x[:], d.hist[:])
	copy(x[len(d.hist):], in[:2*audio.FrameSamples])
	for j := range audio.FrameSamples {
		c := 2*j + 5 // the centre tap
		v := 256*int32(x[c]) + 150*(int32(x[c-1])+int32(x[c+1])) -
			25*(int32(x[c-3])+int32(x[c+3])) + 3*(int32(x[c-5])+int32(x[c+5]))
		f[j] = clamp(roundShift(v, 9))
	}
	copy(d.hist[:], x[2*audio.FrameSamples:])
}

// roundShift divides v by 2**s, rounding half away from zero so that the filters treat
// positive and negative samples alike.
func roundShift(v int32, s uint) int32 {
	half := int32(1) << (s - 1)
	if v < 0 {
		return -((-v + half) >> s)
	}
	return (v + half) >> s
}

func clamp(v int32) int16 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}

// applyGain multiplies every sample of f by g, rounding to the nearest sample and saturating
// at full scale rather than wrapping round.
func applyGain(f *audio.Frame, g float64) {
	if g == 1 {
		return
	}
	for i, s := range f {
		v := math.Round(float64(s) * g)
		switch {
		case v >= math.MaxInt16:
			f[i] = math.MaxInt16
		case v <= math.MinInt16:
			f[i] = math.MinInt16
		default:
			f[i] = int16(v)
		}
	}
}
