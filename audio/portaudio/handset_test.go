//go:build cgo && portaudio

package portaudio

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/audio"
)

// The tests here run PortAudio for real, against ALSA's file and null devices (see
// fileDevice): nothing but the sound card is missing.

func TestPlayPromptReachesDevice(t *testing.T) {
	out := fileDevice(t, nil)
	prompts, err := audio.LoadPrompts()
	if err != nil {
		t.Fatal(err)
	}
	var want []int16
	var frames []audio.Frame
	src := prompts.Clip(audio.PromptNoticeCaller, audio.English).Source()
	for f := (audio.Frame{}); src.Next(&f); {
		frames = append(frames, f)
		want = append(want, f[:]...)
	}

	h, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Keep fewer frames queued than the ring holds, as a call loop in step with the device
	// would: then no frame may be lost.
	for i := range frames {
		waitFor(t, h, "room in the ring", func() bool { return uint64(i)-h.Stats().Played < defaultBuffer })
		h.Play(&frames[i])
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readRaw(t, out); !slices.Equal(got, want) {
		t.Fatalf("the device got %d samples, not the prompt's %d exactly", len(got), len(want))
	}
	if st := h.Stats(); st.Played != uint64(len(frames)) || st.Overruns != 0 {
		t.Errorf("stats %+v, want %d played and no overruns", st, len(frames))
	}
	checkGoroutinesGone(t)
}

func TestPlayAt16kHz(t *testing.T) {
	out := fileDevice(t, nil)
	const n = 50 // frames: one second
	in := sine(n*audio.FrameSamples, audio.SampleRate, 0.5, 1000)
	// Play all of it at once into a ring that holds it all, and let Close drain it.
	h, err := Open(Config{Rate: 16000, Buffer: n})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		h.Play(frameOf(in[i*audio.FrameSamples:]))
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	got := readRaw(t, out)
	if len(got) != 2*len(in) {
		t.Fatalf("%d samples at 16 kHz, want %d", len(got), 2*len(in))
	}
	// Every even sample is an input sample, three samples late.
	for j := 3; j < len(in); j++ {
		if got[2*j] != in[j-3] {
			t.Fatalf("sample %d at 16 kHz = %d, want input sample %d = %d", 2*j, got[2*j], j-3, in[j-3])
		}
	}
	// Between them, the tone goes on: 1 kHz at its level, its image at 7 kHz far down.
	body := got[640 : len(got)-640] // whole cycles of 1 kHz, past the filter's start
	want := 0.5 * math.MaxInt16
	if a := goertzel(body, 1000, 16000); math.Abs(a-want) > want/200 {
		t.Errorf("1 kHz at %.0f, want %.0f", a, want)
	}
	for _, hz := range []float64{7000, 3000, 5000} {
		if a := goertzel(body, hz, 16000); a > want/1000 {
			t.Errorf("%v Hz at %.1f: the 1 kHz tone was not interpolated cleanly", hz, a)
		}
	}
}

func TestCapture(t *testing.T) {
	const amp = 0.4
	for _, tc := range []struct {
		rate  int
		freqs []float64 // in IN.raw
		alias float64   // where the filter's leak would land at 8 kHz
	}{
		{8000, []float64{1000}, 0},
		// 6 kHz would fold down to 2 kHz if the device's rate were halved without a filter.
		{16000, []float64{1000, 6000}, 2000},
	} {
		t.Run(fmt.Sprint(tc.rate), func(t *testing.T) {
			fileDevice(t, sine(20*tc.rate, tc.rate, amp, tc.freqs...)) // 20 s
			h, err := Open(Config{Rate: tc.rate})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			// Once more frames than the ring holds have come in, it is full, and stays full
			// until Capture takes from it: the first frame, with the filter's start, is gone.
			waitFor(t, h, "a full capture ring", func() bool { return h.Stats().Captured > defaultBuffer })
			tone := sine(audio.FrameSamples, audio.SampleRate, amp, 1000)
			want := amp * math.MaxInt16
			for i := range defaultBuffer {
				var f audio.Frame
				h.Capture(&f)
				if tc.rate == audio.SampleRate && !slices.Equal(f[:], tone) {
					t.Fatalf("frame %d is not the tone of IN.raw:\n%v\nwant\n%v", i, f, tone)
				}
				if a := goertzel(f[:], 1000, audio.SampleRate); math.Abs(a-want) > want/200 {
					t.Errorf("frame %d: 1 kHz at %.0f, want %.0f", i, a, want)
				}
				if tc.alias != 0 {
					if a := goertzel(f[:], tc.alias, audio.SampleRate); a > want/25 {
						t.Errorf("frame %d: %v Hz at %.0f: 6 kHz folded down", i, tc.alias, a)
					}
				}
			}
			if st := h.Stats(); st.Underruns != 0 {
				t.Errorf("%d underruns from a full ring", st.Underruns)
			}
		})
	}
}

func TestCloseKeepsCapturedThenSilence(t *testing.T) {
	fileDevice(t, sine(8000, audio.SampleRate, 0.5, 1000))
	h, err := Open(Config{Buffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, h, "a full capture ring", func() bool { return h.Stats().Captured >= 4 })
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	checkGoroutinesGone(t)
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The reader has stopped with a full ring: every frame it read is in it or was
	// discarded to make room.
	st := h.Stats()
	if st.Captured != st.Discarded+4 {
		t.Fatalf("captured %d, discarded %d: the ring of 4 does not add up", st.Captured, st.Discarded)
	}
	var f audio.Frame
	for i := range 4 {
		h.Capture(&f)
		if f == (audio.Frame{}) {
			t.Fatalf("frame %d of 4 captured before Close is silence", i)
		}
	}
	if st := h.Stats(); st.Underruns != 0 {
		t.Fatalf("%d underruns", st.Underruns)
	}
	h.Capture(&f)
	if f != (audio.Frame{}) {
		t.Fatal("a fifth frame from a ring of 4 after Close")
	}
	if st := h.Stats(); st.Underruns != 1 {
		t.Fatalf("%d underruns, want 1", st.Underruns)
	}
	h.Play(&f) // goes nowhere, and must not block
}

func TestGain(t *testing.T) {
	out := fileDevice(t, nil)
	in := []int16{0, 1, -1, 3, -3, 1000, -1000, 9000, -9000, 20000, -20000, math.MaxInt16, math.MinInt16}
	type step struct {
		set  float64 // passed to SetGain, unless 0
		gain float64 // the gain then in force
	}
	steps := []step{
		{0, 2}, // from Config
		{4, 4},
		{0.5, 0.5},
		{9, 4},               // clamped
		{math.NaN(), 4},      // ignored
		{1, 1},               // unchanged samples
		{-1, 0},              // clamped: muted
		{1.0 / 3, 1.0 / 3.0}, // rounding both ways
	}
	h, err := Open(Config{Gain: 2})
	if err != nil {
		t.Fatal(err)
	}
	var want []int16
	for i, s := range steps {
		if s.set != 0 {
			h.SetGain(s.set)
		}
		h.Play(frameOf(in))
		// Gain applies as frames reach the device: wait for this one before the next change.
		waitFor(t, h, "the frame to be played", func() bool { return h.Stats().Played == uint64(i+1) })
		var f audio.Frame
		for j, v := range in {
			f[j] = int16(max(min(math.Round(float64(v)*s.gain), math.MaxInt16), math.MinInt16))
		}
		want = append(want, f[:]...)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	got := readRaw(t, out)
	if len(got) != len(want) {
		t.Fatalf("%d samples played, want %d", len(got), len(want))
	}
	for i, s := range steps {
		g, w := got[i*audio.FrameSamples:][:len(in)], want[i*audio.FrameSamples:][:len(in)]
		if !slices.Equal(g, w) {
			t.Errorf("after SetGain(%v), gain %v: played\n%v\nwant\n%v", s.set, s.gain, g, w)
		}
	}
	// The saturating cases above would wrap round without the clamp: 20000*4 = 80000.
	if got[audio.FrameSamples+9] != math.MaxInt16 || got[audio.FrameSamples+10] != math.MinInt16 {
		t.Errorf("gain 4 did not saturate: %v", got[audio.FrameSamples:][:len(in)])
	}
}

func TestNamedDevice(t *testing.T) {
	out := fileDevice(t, nil)
	h, err := Open(Config{Input: "phone", Output: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	if h.inName != "phone" || h.outName != "phone" {
		t.Errorf("opened %q and %q, want phone", h.inName, h.outName)
	}
	f := frameOf(sine(audio.FrameSamples, audio.SampleRate, 0.5, 1000))
	h.Play(f)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readRaw(t, out); !slices.Equal(got, f[:]) {
		t.Errorf("the named device got %d samples, not the frame", len(got))
	}
}

func TestOpenErrors(t *testing.T) {
	fileDevice(t, nil)
	for _, tc := range []struct {
		cfg  Config
		is   error
		text []string
	}{
		{Config{Output: "earpiece"}, ErrNoDevice, []string{`output device "earpiece"`, `"default"`, `"phone"`}},
		{Config{Input: "mouthpiece"}, ErrNoDevice, []string{`input device "mouthpiece"`, `"default"`}},
		{Config{Rate: 44100}, ErrConfig, []string{"44100"}},
		{Config{Gain: 4.5}, ErrConfig, []string{"4.5"}},
		{Config{Gain: -1}, ErrConfig, []string{"-1"}},
		{Config{Gain: math.NaN()}, ErrConfig, []string{"NaN"}},
		{Config{Buffer: -1}, ErrConfig, []string{"-1"}},
		{Config{Buffer: 501}, ErrConfig, []string{"501"}},
	} {
		h, err := Open(tc.cfg)
		if err == nil {
			h.Close()
			t.Errorf("Open(%+v) succeeded", tc.cfg)
			continue
		}
		if !errors.Is(err, tc.is) {
			t.Errorf("Open(%+v) = %v, want %v", tc.cfg, err, tc.is)
		}
		for _, s := range tc.text {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Open(%+v) = %v, which does not say %s", tc.cfg, err, s)
			}
		}
	}
	// A failed Open lets PortAudio go, so that the next one starts afresh.
	out := fileDevice(t, nil)
	h, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	h.Play(&audio.Frame{1})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readRaw(t, out); len(got) != audio.FrameSamples || got[0] != 1 {
		t.Errorf("after failed Opens, the device got %d samples", len(got))
	}
}
