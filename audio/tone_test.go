package audio

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// play returns n frames of src as one signal.
func play(t testing.TB, src Source, n int) []float64 {
	t.Helper()
	out := make([]float64, 0, n*FrameSamples)
	var f Frame
	for range n {
		if !src.Next(&f) {
			t.Fatal("endless source ended")
		}
		for _, s := range f {
			out = append(out, float64(s))
		}
	}
	return out
}

// goertzelAmp returns the peak amplitude of the component of x at hz.
func goertzelAmp(x []float64, hz float64) float64 {
	c := 2 * math.Cos(2*math.Pi*hz/SampleRate)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+c*s1-s2, s1
	}
	return 2 * math.Sqrt(s1*s1+s2*s2-c*s1*s2) / float64(len(x))
}

func TestToneFrequency(t *testing.T) {
	for _, hz := range []float64{350, 440, 1000, 1004, 2600, 3400} {
		t.Run(fmt.Sprint(hz), func(t *testing.T) {
			const amp = 0.5
			x := play(t, Tone(amp, hz), 50) // one second
			crossings := 0
			for i := 1; i < len(x); i++ {
				if (x[i-1] < 0) != (x[i] < 0) {
					crossings++
				}
			}
			if want := 2 * hz; math.Abs(float64(crossings)-want) > 2 {
				t.Errorf("%d zero crossings in 1 s, want %v", crossings, want)
			}
			want := amp * math.MaxInt16
			if got := goertzelAmp(x, hz); math.Abs(got-want) > want/100 {
				t.Errorf("amplitude at %v Hz = %.0f, want %.0f", hz, got, want)
			}
			// Nothing 100 Hz away: a single clean sine.
			if got := goertzelAmp(x, hz+100); got > want/100 {
				t.Errorf("amplitude at %v Hz = %.0f", hz+100, got)
			}
		})
	}
}

func TestTonePhaseContinuous(t *testing.T) {
	const amp, hz = 0.8, 1234.5 // not a whole number of cycles per frame
	x := play(t, Tone(amp, hz), 20)
	// A sine never moves more than its slope allows between samples, frame edge or not.
	limit := amp*math.MaxInt16*2*math.Pi*hz/SampleRate + 1
	for i := 1; i < len(x); i++ {
		if d := math.Abs(x[i] - x[i-1]); d > limit {
			t.Fatalf("jump of %.0f at sample %d (frame edge: %v), limit %.0f", d, i, i%FrameSamples == 0, limit)
		}
	}
}

func TestToneClips(t *testing.T) {
	x := play(t, Tone(0.9, 300, 301), 100)
	lo, hi := 0.0, 0.0
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi != math.MaxInt16 || lo != math.MinInt16 {
		t.Errorf("range %v..%v: want the sum of two 0.9 sines to clip, not wrap", lo, hi)
	}
}

func TestRingbackCadence(t *testing.T) {
	const on, period = 100, 300 // frames: 2 s on, 4 s off
	src := Ringback()
	var f Frame
	var burst []float64
	for n := range 3 * period {
		if !src.Next(&f) {
			t.Fatal("ringback ended")
		}
		var energy float64
		for _, s := range f {
			energy += float64(s) * float64(s)
		}
		rms := math.Sqrt(energy / float64(FrameSamples))
		if n%period < on {
			if rms < 1000 {
				t.Fatalf("frame %d: RMS %.0f, want tone", n, rms)
			}
			if n < on {
				for _, s := range f {
					burst = append(burst, float64(s))
				}
			}
		} else if f != (Frame{}) {
			t.Fatalf("frame %d: want silence", n)
		}
	}
	// 440 and 480 Hz at -19 dBm0 each, and nothing at the frequencies of other tones.
	want := AmplitudeDBm0(-19) * math.MaxInt16
	for _, hz := range []float64{440, 480} {
		if got := goertzelAmp(burst, hz); math.Abs(got-want) > want/50 {
			t.Errorf("%v Hz: amplitude %.0f, want %.0f", hz, got, want)
		}
	}
	for _, hz := range []float64{350, 400, 620} {
		if got := goertzelAmp(burst, hz); got > want/50 {
			t.Errorf("%v Hz: amplitude %.0f, want none", hz, got)
		}
	}
	// The burst starts at zero and stops where the next sample would be zero again: no click.
	if burst[0] != 0 || math.Abs(burst[len(burst)-1]) > 2*want*2*math.Pi*480/SampleRate+1 {
		t.Errorf("burst edges %v .. %v", burst[0], burst[len(burst)-1])
	}
}

func TestAmplitudeDBm0(t *testing.T) {
	// G.711's overload point: a full-scale sine is +3.17 dBm0.
	if got := AmplitudeDBm0(3.17); math.Abs(got-1) > 1e-12 {
		t.Errorf("+3.17 dBm0 = %v of full scale, want 1", got)
	}
	if got := AmplitudeDBm0(-16.83); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("-16.83 dBm0 = %v of full scale, want 0.1", got)
	}
}

// sineTone is the plain oscillator the phasor replaces, one sine per sample per frequency: the
// benchmark's baseline.
type sineTone struct{ amp, phase, step [2]float64 }

func (s *sineTone) Next(f *Frame) bool {
	for i := range f {
		var v float64
		for k := range s.phase {
			v += s.amp[k] * math.Sin(2*math.Pi*s.phase[k])
			s.phase[k] += s.step[k]
			s.phase[k] -= math.Floor(s.phase[k])
		}
		f[i] = toSample(v)
	}
	return true
}

func BenchmarkToneFrame(b *testing.B) {
	for _, bc := range []struct {
		name string
		src  Source
	}{
		{"phasor", Tone(0.3, 350, 440)},
		{"baseline=sine-per-sample", &sineTone{amp: [2]float64{9830, 9830}, step: [2]float64{350.0 / SampleRate, 440.0 / SampleRate}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var f Frame
			b.SetBytes(int64(FrameSamples))
			b.ReportAllocs()
			for b.Loop() {
				bc.src.Next(&f)
			}
		})
	}
}

func BenchmarkRingbackFrame(b *testing.B) {
	src := Ringback()
	var f Frame
	b.SetBytes(int64(FrameSamples))
	b.ReportAllocs()
	for b.Loop() {
		src.Next(&f)
	}
}

func TestOffHookTone(t *testing.T) {
	const on, period = 5, 10 // frames: 0.1 s on, 0.1 s off
	src := OffHookTone(time.Second)
	var f Frame
	var burst []float64
	for n := range 50 {
		if !src.Next(&f) {
			t.Fatalf("ended after %d frames, want 50", n)
		}
		switch {
		case n%period >= on && f != (Frame{}):
			t.Fatalf("frame %d: want silence", n)
		case n < on:
			for _, s := range f {
				burst = append(burst, float64(s))
			}
		}
	}
	if src.Next(&f) {
		t.Error("played on after its second")
	}
	want := AmplitudeDBm0(-12) * math.MaxInt16
	for _, hz := range []float64{1400, 2060, 2450, 2600} {
		if got := goertzelAmp(burst, hz); math.Abs(got-want) > want/50 {
			t.Errorf("%v Hz: amplitude %.0f, want %.0f", hz, got, want)
		}
	}
	if got := goertzelAmp(burst, 440); got > want/50 {
		t.Errorf("440 Hz: amplitude %.0f, want none", got)
	}
}
