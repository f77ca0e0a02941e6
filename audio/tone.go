package audio

import (
	"math"
	"time"
)

// AmplitudeDBm0 returns the peak amplitude, as a fraction of full scale, of a sine at level
// dBm0, the unit in which telephone tones are specified. µ-law puts a full-scale sine at
// +3.17 dBm0.
func AmplitudeDBm0(level float64) float64 { return math.Pow(10, (level-3.17)/20) }

// Tone returns an endless Source of the sum of sines at freqs (in Hz, below SampleRate/2 to be
// heard as themselves), each with peak amplitude amp as a fraction of full scale. The sum
// clips at full scale. Each sine runs on from frame to frame, so frame edges do not click.
func Tone(amp float64, freqs ...float64) Source {
	return &tone{osc: newOscillator(amp, freqs)}
}

type tone struct{ osc oscillator }

func (t *tone) Next(f *Frame) bool {
	t.osc.fill(f)
	return true
}

// Ringback cadence and level as North American networks play them (the Precise Tone Plan),
// so that the caller hears what any phone plays while the far end rings.
const (
	ringbackLevel = -19 // dBm0, per frequency
	ringbackOn    = 2 * time.Second
	ringbackOff   = 4 * time.Second
)

// Ringback returns an endless Source of the North American ringback tone: 440 Hz plus 480 Hz
// at -19 dBm0 each, 2 s on, 4 s off, starting with the tone.
func Ringback() Source {
	return &cadence{
		osc:    newOscillator(AmplitudeDBm0(ringbackLevel), []float64{440, 480}),
		on:     int(ringbackOn / FrameDuration),
		period: int((ringbackOn + ringbackOff) / FrameDuration),
	}
}

// cadence switches an oscillator on for the first on frames of every period.
type cadence struct {
	osc        oscillator
	on, period int
	n          int // frame within the period
}

func (c *cadence) Next(f *Frame) bool {
	if c.n == 0 {
		// Every burst starts at a zero crossing of both sines, and two seconds hold a whole
		// number of cycles of 440 and 480 Hz, so a burst also ends at one: no click at either
		// edge.
		c.osc.reset()
	}
	if c.n < c.on {
		c.osc.fill(f)
	} else {
		f.Silence()
	}
	if c.n++; c.n == c.period {
		c.n = 0
	}
	return true
}

// oscillator sums sines, keeping each one's phase from sample to sample and frame to frame.
// Within a frame it turns a phasor by one sample's angle per sample, which costs a few
// multiplications instead of a sine; at each frame it starts the phasor afresh from the exact
// phase, so rounding cannot build up over hours of tone.
type oscillator struct {
	amp   float64   // peak of each sine, in sample units
	step  []float64 // per sine: cycles per sample
	phase []float64 // per sine: position in the cycle at the next frame's start, in [0, 1)
	// Per sine: the phasor (re, im) and its turn per sample (cos, sin).
	re, im, cos, sin []float64
}

func newOscillator(amp float64, freqs []float64) oscillator {
	n := len(freqs)
	o := oscillator{
		amp:   amp * math.MaxInt16,
		step:  make([]float64, n),
		phase: make([]float64, n),
		re:    make([]float64, n),
		im:    make([]float64, n),
		cos:   make([]float64, n),
		sin:   make([]float64, n),
	}
	for k, hz := range freqs {
		o.step[k] = hz / SampleRate
		o.sin[k], o.cos[k] = math.Sincos(2 * math.Pi * o.step[k])
	}
	return o
}

func (o *oscillator) reset() { clear(o.phase) }

func (o *oscillator) fill(f *Frame) {
	for k, p := range o.phase {
		o.im[k], o.re[k] = math.Sincos(2 * math.Pi * p)
		// Phase kept in cycles and wrapped stays exact however long the tone runs, where a
		// running angle would lose precision as it grew.
		p += o.step[k] * float64(FrameSamples)
		o.phase[k] = p - math.Floor(p)
	}
	for i := range f {
		var v float64
		for k, im := range o.im {
			v += im
			re := o.re[k]
			o.re[k] = re*o.cos[k] - im*o.sin[k]
			o.im[k] = re*o.sin[k] + im*o.cos[k]
		}
		f[i] = toSample(v * o.amp)
	}
}

func toSample(v float64) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	}
	return int16(math.Round(v))
}

// The receiver off-hook tone as North American networks play it to a handset left off-hook
// after a call: four high frequencies, 0.1 s on, 0.1 s off. Networks raise it up to +5 dBm0;
// a wall phone's earpiece is at the caller's ear, so it is played well below that.
const (
	offHookLevel = -12 // dBm0, per frequency
	offHookOn    = 100 * time.Millisecond
)

// OffHookTone returns a Source of d of the receiver off-hook tone (1400, 2060, 2450 and
// 2600 Hz, 0.1 s on and off), which tells a caller to hang up. Every burst holds a whole
// number of cycles of each frequency, so the bursts start and end without a click.
func OffHookTone(d time.Duration) Source {
	c := &cadence{
		osc:    newOscillator(AmplitudeDBm0(offHookLevel), []float64{1400, 2060, 2450, 2600}),
		on:     int(offHookOn / FrameDuration),
		period: int(2 * offHookOn / FrameDuration),
	}
	return &limited{src: c, left: int(d / FrameDuration)}
}

// limited plays the first left frames of src.
type limited struct {
	src  Source
	left int
}

func (l *limited) Next(f *Frame) bool {
	if l.left <= 0 || !l.src.Next(f) {
		return false
	}
	l.left--
	return true
}
