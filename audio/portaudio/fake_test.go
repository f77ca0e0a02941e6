//go:build cgo && portaudio

package portaudio

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	pa "github.com/gordonklaus/portaudio"

	"github.com/wallphone/wallphone/audio"
)

// The tests here put streams under the Handset that do exactly what each test says, when it
// says: what a real device does only now and then (underflow, overflow, fail), and orderings
// that a device running on its own could not be made to keep.

// fakeInput is an input stream whose every Read waits for the test to hand it a frame and
// the error to return with it.
type fakeInput struct {
	buf   []int16
	reads chan fakeRead
	stop  chan struct{} // closed: every Read returns silence at once, as a free-running device
}

type fakeRead struct {
	samples []int16
	err     error
}

func (f *fakeInput) Read() error {
	select {
	case r := <-f.reads:
		clear(f.buf)
		copy(f.buf, r.samples)
		return r.err
	case <-f.stop:
		clear(f.buf)
		return nil
	}
}

// fakeOutput is an output stream that records what each Write sent, says so on entered, and
// then waits for the test to say what Write returns.
type fakeOutput struct {
	buf     []int16
	entered chan struct{}
	results chan error
	stop    chan struct{} // closed: every Write returns nil at once

	mu      sync.Mutex // guards written
	written []audio.Frame
}

func (f *fakeOutput) Write() error {
	f.mu.Lock()
	f.written = append(f.written, *frameOf(f.buf))
	f.mu.Unlock()
	select {
	case f.entered <- struct{}{}:
	case <-f.stop:
		return nil
	}
	select {
	case err := <-f.results:
		return err
	case <-f.stop:
		return nil
	}
}

func (f *fakeOutput) frames() []audio.Frame {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.written)
}

type fakeHandset struct {
	*Handset
	in      *fakeInput
	out     *fakeOutput
	stopIn  sync.Once
	stopOut sync.Once
	log     bytes.Buffer // written by the handset's logger; read it only after Close

	releaseMu sync.Mutex // guards released
	released  int        // calls of the streams' release
}

// startFake starts a Handset on fake streams, and makes sure that it is closed and its
// goroutines gone by the end of the test.
func startFake(t *testing.T, cfg Config) *fakeHandset {
	t.Helper()
	fh := &fakeHandset{
		in: &fakeInput{buf: make([]int16, audio.FrameSamples), reads: make(chan fakeRead), stop: make(chan struct{})},
		out: &fakeOutput{buf: make([]int16, audio.FrameSamples), entered: make(chan struct{}),
			results: make(chan error), stop: make(chan struct{})},
	}
	cfg.Logger = slog.New(slog.NewTextHandler(&fh.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	fh.Handset = start(cfg, streams{
		in: fh.in, inBuf: fh.in.buf, inName: "fake mouthpiece",
		out: fh.out, outBuf: fh.out.buf, outName: "fake earpiece",
		release: func() error {
			fh.releaseMu.Lock()
			defer fh.releaseMu.Unlock()
			fh.released++
			return nil
		},
	})
	t.Cleanup(func() {
		fh.Close()
		checkGoroutinesGone(t)
	})
	return fh
}

func (fh *fakeHandset) releases() int {
	fh.releaseMu.Lock()
	defer fh.releaseMu.Unlock()
	return fh.released
}

// Close lets the fake devices run free, as real ones would, and closes the Handset.
func (fh *fakeHandset) Close() error {
	fh.freeInput()
	fh.stopOut.Do(func() { close(fh.out.stop) })
	return fh.Handset.Close()
}

// freeInput lets the fake input device run free.
func (fh *fakeHandset) freeInput() { fh.stopIn.Do(func() { close(fh.in.stop) }) }

// feed has the input device deliver a frame of samples, with err.
func (fh *fakeHandset) feed(t *testing.T, samples []int16, err error) {
	t.Helper()
	before := fh.Stats().Captured
	send(t, fh.in.reads, fakeRead{samples, err}, "a frame for the input device")
	waitFor(t, fh.Handset, "the frame to be captured", func() bool { return fh.Stats().Captured > before })
}

// frame returns a frame whose samples all say v.
func frame(v int16) *audio.Frame {
	var f audio.Frame
	for i := range f {
		f[i] = v
	}
	return &f
}

func TestCaptureUnderrunsOverflowsDiscards(t *testing.T) {
	h := startFake(t, Config{Buffer: 3})
	var f audio.Frame
	capture := func(want *audio.Frame) {
		t.Helper()
		f[0] = 12345 // so that silence has to be written
		h.Capture(&f)
		if f != *want {
			t.Fatalf("captured a frame of %d, want %d", f[0], want[0])
		}
	}

	// Nothing has been captured: silence, and an underrun.
	capture(&audio.Frame{})
	if st := h.Stats(); st.Underruns != 1 || st.Captured != 0 {
		t.Fatalf("stats %+v, want 1 underrun and nothing captured", st)
	}
	h.feed(t, frame(1)[:], nil)
	capture(frame(1))

	// An input overflow is counted, and the frame that came with it still arrives.
	h.feed(t, frame(2)[:], pa.InputOverflowed)
	if st := h.Stats(); st.InputOverflows != 1 {
		t.Fatalf("%d input overflows, want 1", st.InputOverflows)
	}
	capture(frame(2))

	// Four frames into a ring of three: the oldest goes.
	for v := int16(3); v <= 6; v++ {
		h.feed(t, frame(v)[:], nil)
	}
	if st := h.Stats(); st.Discarded != 1 {
		t.Fatalf("%d discarded, want 1", st.Discarded)
	}
	for v := int16(4); v <= 6; v++ {
		capture(frame(v))
	}
	capture(&audio.Frame{})
	want := Stats{Captured: 6, Underruns: 2, Discarded: 1, InputOverflows: 1}
	if st := h.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	if err := h.Err(); err != nil {
		t.Fatalf("Err() = %v after an overflow, which is no error", err)
	}
}

func TestPlayOverrunsUnderflows(t *testing.T) {
	h := startFake(t, Config{Buffer: 3})
	h.Play(frame(1))
	recv(t, h.out.entered, "the write of frame 1") // the writer holds frame 1 in Write; the ring is empty
	for v := int16(2); v <= 4; v++ {
		h.Play(frame(v))
	}
	if st := h.Stats(); st.Overruns != 0 {
		t.Fatalf("%d overruns filling the ring", st.Overruns)
	}
	h.Play(frame(5)) // the ring is full: frame 2 goes
	if st := h.Stats(); st.Overruns != 1 {
		t.Fatalf("%d overruns, want 1", st.Overruns)
	}

	// The device reports an underflow with frame 1: counted, and the writer goes on.
	send[error](t, h.out.results, pa.OutputUnderflowed, "the result of a write")
	for range 3 {
		recv(t, h.out.entered, "a write")
		send[error](t, h.out.results, nil, "the result of a write")
	}
	waitFor(t, h.Handset, "four frames played", func() bool { return h.Stats().Played == 4 })
	if st := h.Stats(); st.OutputUnderflows != 1 || st.Overruns != 1 {
		t.Fatalf("stats %+v, want 1 output underflow and 1 overrun", st)
	}
	if got, want := h.out.frames(), []audio.Frame{*frame(1), *frame(3), *frame(4), *frame(5)}; !slices.Equal(got, want) {
		t.Fatalf("wrote %d frames starting %v, want frames 1, 3, 4, 5", len(got), firstSamples(got))
	}
	if err := h.Err(); err != nil {
		t.Fatalf("Err() = %v after an underflow, which is no error", err)
	}

	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := h.releases(); n != 1 {
		t.Fatalf("streams released %d times, want once", n)
	}
	if !strings.Contains(h.log.String(), "event=handset_output_underflow") {
		t.Errorf("the underflow was not logged:\n%s", h.log.String())
	}
}

func TestCloseDrainsQueued(t *testing.T) {
	h := startFake(t, Config{})
	h.Play(frame(1))
	recv(t, h.out.entered, "the write of frame 1") // the writer holds frame 1
	h.Play(frame(2))
	h.Play(frame(3))
	h.freeInput() // but the output device stays in the test's hands
	closed := make(chan error)
	go func() { closed <- h.Handset.Close() }()
	recv(t, h.done, "Close to begin") // before the writer is let go
	for range 2 {
		send[error](t, h.out.results, nil, "the result of a write")
		recv(t, h.out.entered, "a write of what was queued before Close")
	}
	send[error](t, h.out.results, nil, "the result of a write")
	if err := recv(t, closed, "Close"); err != nil {
		t.Fatal(err)
	}
	if got := h.out.frames(); !slices.Equal(got, []audio.Frame{*frame(1), *frame(2), *frame(3)}) {
		t.Fatalf("wrote frames %v, want 1, 2, 3: Close dropped what Play had queued", firstSamples(got))
	}
	checkGoroutinesGone(t)
}

func TestDeviceErrorIsSticky(t *testing.T) {
	t.Run("input", func(t *testing.T) {
		h := startFake(t, Config{})
		send(t, h.in.reads, fakeRead{frame(1)[:], pa.DeviceUnavailable}, "a failing read")
		waitFor(t, h.Handset, "the error", func() bool { return h.Err() != nil })
		checkStickyError(t, h, "fake mouthpiece")
		var f audio.Frame
		h.Capture(&f)
		if f != (audio.Frame{}) {
			t.Error("captured a frame from a failed device")
		}
	})
	t.Run("output", func(t *testing.T) {
		h := startFake(t, Config{})
		h.Play(frame(1))
		recv(t, h.out.entered, "the write of frame 1")
		send[error](t, h.out.results, pa.DeviceUnavailable, "the result of a write")
		waitFor(t, h.Handset, "the error", func() bool { return h.Err() != nil })
		checkStickyError(t, h, "fake earpiece")
		if st := h.Stats(); st.Played != 0 {
			t.Errorf("%d frames counted as played by a failed device", st.Played)
		}
	})
}

func checkStickyError(t *testing.T, h *fakeHandset, device string) {
	t.Helper()
	err := h.Err()
	if !errors.Is(err, pa.DeviceUnavailable) || !strings.Contains(err.Error(), device) {
		t.Fatalf("Err() = %v, want the device's error naming %q", err, device)
	}
	if cerr := h.Close(); !errors.Is(cerr, pa.DeviceUnavailable) {
		t.Fatalf("Close() = %v, want the device's error", cerr)
	}
	if cerr := h.Close(); !errors.Is(cerr, pa.DeviceUnavailable) {
		t.Fatalf("second Close() = %v, want the device's error again", cerr)
	}
	if !strings.Contains(h.log.String(), "level=ERROR") || !strings.Contains(h.log.String(), "event=handset_error") {
		t.Errorf("the device error was not logged as an error:\n%s", h.log.String())
	}
}

func firstSamples(fs []audio.Frame) []int16 {
	var s []int16
	for _, f := range fs {
		s = append(s, f[0])
	}
	return s
}
