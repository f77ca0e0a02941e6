//go:build cgo && portaudio

package portaudio

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/wallphone/wallphone/audio"
)

// TestRingAgainstModel runs random pushes and pops on rings of several sizes beside a plain
// slice that keeps the newest size frames, so that every wrap of head is crossed.
func TestRingAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 2, 3, 10} {
		r := newRing(size)
		var model []int16 // the first sample of each frame held, oldest first
		next := int16(1)
		for range 2000 {
			if rng.IntN(2) == 0 {
				dropped := r.push(frame(next))
				wantDrop := len(model) == size
				if wantDrop {
					model = model[1:]
				}
				model = append(model, next)
				if dropped != wantDrop {
					t.Fatalf("size %d: push reported drop %v, want %v", size, dropped, wantDrop)
				}
				next++
			} else {
				var f audio.Frame
				ok := r.pop(&f)
				if ok != (len(model) > 0) {
					t.Fatalf("size %d: pop reported %v with %d held", size, ok, len(model))
				}
				if ok {
					if f != *frame(model[0]) {
						t.Fatalf("size %d: popped %d, want %d", size, f[0], model[0])
					}
					model = model[1:]
				}
			}
			if r.len() != len(model) {
				t.Fatalf("size %d: len %d, want %d", size, r.len(), len(model))
			}
		}
	}
}

func TestUpsamplerPassesSamplesAndClamps(t *testing.T) {
	var u upsampler
	in := frame(0)
	// Pairs of full-scale samples of opposite sign: the filter overshoots between each pair
	// by a third of full scale, which must saturate rather than wrap round.
	for i := range in {
		in[i] = math.MaxInt16
		if i/2%2 == 1 {
			in[i] = math.MinInt16
		}
	}
	out := make([]int16, 2*audio.FrameSamples)
	u.process(in, out)
	for j := 3; j < audio.FrameSamples; j++ {
		if out[2*j] != in[j-3] {
			t.Fatalf("out[%d] = %d, want in[%d] = %d", 2*j, out[2*j], j-3, in[j-3])
		}
		if between := out[2*j+1]; in[j-3] == in[j-2] && between != in[j-3] {
			t.Fatalf("between two samples of %d: %d, want %d (clamped)", in[j-3], between, in[j-3])
		}
	}
}

func TestResamplersKeepDC(t *testing.T) {
	var u upsampler
	var d downsampler
	in := frame(-1000)
	hi := make([]int16, 2*audio.FrameSamples)
	var back audio.Frame
	for range 2 { // the second frame is past the filters' start
		u.process(in, hi)
		d.process(hi, &back)
	}
	if !slices.Equal(hi, slices.Repeat([]int16{-1000}, len(hi))) {
		t.Errorf("upsampled DC is not DC: %v", hi)
	}
	if back != *in {
		t.Errorf("downsampled DC is not DC: %v", back)
	}
}

// TestResamplersRoundTrip carries a 1 kHz tone up to 16 kHz and back: it returns at its level,
// eight samples late (three at 8 kHz going up, five at 16 kHz coming down, rounded).
func TestResamplersRoundTrip(t *testing.T) {
	const frames = 10
	in := sine(frames*audio.FrameSamples, audio.SampleRate, 0.5, 1000)
	var (
		u   upsampler
		d   downsampler
		out []int16
	)
	hi := make([]int16, 2*audio.FrameSamples)
	for i := range frames {
		var f audio.Frame
		u.process(frameOf(in[i*audio.FrameSamples:]), hi)
		d.process(hi, &f)
		out = append(out, f[:]...)
	}
	body := out[audio.FrameSamples:]
	want := goertzel(in[audio.FrameSamples:], 1000, audio.SampleRate)
	if got := goertzel(body, 1000, audio.SampleRate); math.Abs(got-want) > want/500 {
		t.Errorf("1 kHz back at %.0f, want %.0f", got, want)
	}
	for _, hz := range []float64{2000, 3000} {
		if got := goertzel(body, hz, audio.SampleRate); got > want/1000 {
			t.Errorf("%v Hz at %.1f after the round trip", hz, got)
		}
	}
}

func TestApplyGain(t *testing.T) {
	for _, tc := range []struct {
		g       float64
		in, out int16
	}{
		{1, math.MinInt16, math.MinInt16},
		{2, 16383, 32766},
		{2, 16384, math.MaxInt16},
		{2, -16384, math.MinInt16},
		{2, -16385, math.MinInt16},
		{4, 30000, math.MaxInt16},
		{4, -30000, math.MinInt16},
		{0.5, 3, 2},
		{0.5, -3, -2},
		{0, math.MaxInt16, 0},
	} {
		f := frame(tc.in)
		applyGain(f, tc.g)
		if *f != *frame(tc.out) {
			t.Errorf("gain %v on %d = %d, want %d", tc.g, tc.in, f[0], tc.out)
		}
	}
}
