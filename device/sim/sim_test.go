package sim_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/sim"
)

// frames is a finite Source: the i-th frame has every sample set to vals[i].
type frames struct{ vals []int16 }

func (s *frames) Next(f *audio.Frame) bool {
	if len(s.vals) == 0 {
		return false
	}
	for i := range f {
		f[i] = s.vals[0]
	}
	s.vals = s.vals[1:]
	return true
}

func pollAll(b *sim.Board) string {
	var out []rune
	for {
		k, ok := b.PollKey()
		if !ok {
			return string(out)
		}
		out = append(out, rune(k))
	}
}

func TestDevice(t *testing.T) {
	b := sim.New(sim.Options{})
	d := b.Device()
	if d.Name != "sim" || d.Keypad != device.Keypad(b) || d.Hook != device.Hook(b) || d.Handset != device.Handset(b) {
		t.Errorf("Device() = %+v, want the board itself as every device", d)
	}
}

func TestHook(t *testing.T) {
	b := sim.New(sim.Options{})
	if b.OffHook() {
		t.Fatal("a new phone is off hook")
	}
	b.SetOffHook(true)
	if !b.OffHook() {
		t.Error("SetOffHook(true): still on hook")
	}
	b.SetOffHook(true)
	if !b.OffHook() {
		t.Error("lifting twice put it back")
	}
	b.SetOffHook(false)
	if b.OffHook() {
		t.Error("SetOffHook(false): still off hook")
	}
}

func TestPress(t *testing.T) {
	b := sim.New(sim.Options{})
	if _, ok := b.PollKey(); ok {
		t.Fatal("a new keypad has a key")
	}
	for _, keys := range []string{"123", "", "#*", "abcd", "ABCD", "0"} {
		if err := b.Press(keys); err != nil {
			t.Fatalf("Press(%q): %v", keys, err)
		}
	}
	if got, want := pollAll(b), "123#*ABCDABCD0"; got != want {
		t.Errorf("keys %q, want %q", got, want)
	}
	if _, ok := b.PollKey(); ok {
		t.Error("PollKey after the queue emptied returned a key")
	}
}

func TestPressRefusesWholeString(t *testing.T) {
	for _, keys := range []string{"12x", "x12", "1 2", "e", "E", "+1", "12\xff", "١٢"} {
		t.Run(keys, func(t *testing.T) {
			b := sim.New(sim.Options{})
			if err := b.Press("9"); err != nil {
				t.Fatal(err)
			}
			if err := b.Press(keys); err == nil {
				t.Errorf("Press(%q) accepted", keys)
			}
			if got := pollAll(b); got != "9" {
				t.Errorf("after the refused press the keypad gave %q, want only the earlier 9", got)
			}
		})
	}
}

func TestPressConcurrent(t *testing.T) {
	b := sim.New(sim.Options{})
	const n = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			if err := b.Press("1"); err != nil {
				t.Error(err)
			}
		}
	})
	got := 0
	for got < n {
		if _, ok := b.PollKey(); ok {
			got++
			continue
		}
		wg.Wait() // the presser has finished or the queue will fill up again
	}
	wg.Wait()
	if _, ok := b.PollKey(); ok {
		t.Error("more keys than pressed")
	}
}

func TestCapture(t *testing.T) {
	dirty := func() *audio.Frame {
		var f audio.Frame
		for i := range f {
			f[i] = 1234
		}
		return &f
	}
	silent := func(f *audio.Frame) bool { return *f == audio.Frame{} }

	t.Run("no mic", func(t *testing.T) {
		b := sim.New(sim.Options{})
		b.SetOffHook(true)
		f := dirty()
		b.Capture(f)
		if !silent(f) {
			t.Error("no mic, off hook: not silence")
		}
	})
	t.Run("mic", func(t *testing.T) {
		mic := &frames{vals: []int16{500, -700}}
		b := sim.New(sim.Options{Mic: mic})
		f := dirty()
		b.Capture(f)
		if !silent(f) {
			t.Error("on hook: not silence")
		}
		if len(mic.vals) != 2 {
			t.Error("on hook the mic was read")
		}
		b.SetOffHook(true)
		for _, want := range []int16{500, -700} {
			f := dirty()
			b.Capture(f)
			if f[0] != want || f[audio.FrameSamples-1] != want {
				t.Errorf("off hook: got %d…%d, want the mic's %d", f[0], f[audio.FrameSamples-1], want)
			}
		}
		f = dirty()
		b.Capture(f)
		if !silent(f) {
			t.Error("after the mic ran out: not silence")
		}
	})
}

// failAfter accepts n writes and then fails every one.
type failAfter struct {
	n      int
	writes int
	buf    bytes.Buffer
}

var errDiskFull = errors.New("disk full")

func (w *failAfter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > w.n {
		return 0, errDiskFull
	}
	return w.buf.Write(p)
}

func frameOf(v int16) *audio.Frame {
	var f audio.Frame
	for i := range f {
		f[i] = v
	}
	return &f
}

func TestPlayCounts(t *testing.T) {
	b := sim.New(sim.Options{})
	for i, tc := range []struct {
		f     *audio.Frame
		sound bool
	}{
		{frameOf(0), false},
		{frameOf(100), false},  // -50 dBFS and below is silence
		{frameOf(-100), false}, //
		{frameOf(101), true},
		{frameOf(-101), true},
		{func() *audio.Frame { f := frameOf(0); f[audio.FrameSamples-1] = 3000; return f }(), true},
		{frameOf(0), false},
	} {
		before := b.Heard()
		b.Play(tc.f)
		got := b.Heard()
		wantSound := before.SoundFrames
		if tc.sound {
			wantSound++
		}
		if got.Frames != i+1 || got.SoundFrames != wantSound || got.LastWasSound != tc.sound {
			t.Errorf("frame %d: Heard = %+v, want %d frames, %d of sound, last sound %v", i, got, i+1, wantSound, tc.sound)
		}
	}
	if err := b.EarpieceErr(); err != nil {
		t.Errorf("EarpieceErr without an earpiece writer = %v", err)
	}
}

func TestEarpieceBytes(t *testing.T) {
	var ear bytes.Buffer
	b := sim.New(sim.Options{Earpiece: &ear})
	var f audio.Frame
	f[0], f[1], f[2], f[3], f[4] = 1, -2, 0x1234, -32768, 32767
	b.Play(&f)
	b.Play(frameOf(-1))
	got := ear.Bytes()
	if len(got) != 2*2*audio.FrameSamples {
		t.Fatalf("%d bytes for two frames, want %d", len(got), 2*2*audio.FrameSamples)
	}
	// s16le: low byte first.
	want := []byte{0x01, 0x00, 0xfe, 0xff, 0x34, 0x12, 0x00, 0x80, 0xff, 0x7f, 0x00, 0x00}
	if !bytes.Equal(got[:len(want)], want) {
		t.Errorf("first samples % x, want % x", got[:len(want)], want)
	}
	if !bytes.Equal(got[len(want):2*audio.FrameSamples], make([]byte, 2*audio.FrameSamples-len(want))) {
		t.Error("the rest of the first frame is not zero")
	}
	if !bytes.Equal(got[2*audio.FrameSamples:], bytes.Repeat([]byte{0xff}, 2*audio.FrameSamples)) {
		t.Error("the second frame is not all -1")
	}
}

func TestEarpieceWriteFails(t *testing.T) {
	w := &failAfter{n: 2}
	b := sim.New(sim.Options{Earpiece: w})
	for range 5 {
		b.Play(frameOf(1000))
	}
	if w.writes != 3 {
		t.Errorf("%d writes, want 3: writing goes on after the first failure", w.writes)
	}
	if w.buf.Len() != 2*2*audio.FrameSamples {
		t.Errorf("%d bytes written, want two frames", w.buf.Len())
	}
	if err := b.EarpieceErr(); !errors.Is(err, errDiskFull) {
		t.Errorf("EarpieceErr = %v, want the writer's error", err)
	}
	// The earpiece itself goes on playing: the counts do not depend on the writer.
	if h := b.Heard(); h.Frames != 5 || h.SoundFrames != 5 {
		t.Errorf("Heard = %+v, want 5 frames of sound", h)
	}
}
