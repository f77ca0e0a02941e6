//go:build cgo && portaudio

// Package portaudio is the handset of a real wall phone: its earpiece and mouthpiece, reached
// through PortAudio (ALSA on the phones' boards), as a [device.Handset] for the call loop.
//
// It needs cgo and PortAudio's C library (Debian's portaudio19-dev to build), so every file
// carries the build constraint "cgo && portaudio": it exists only in builds with
// -tags portaudio (make build-cgo), and the default and CGO_ENABLED=0 builds, which have the
// simulated board only, never see it.
//
// # Two clocks
//
// The call loop moves one 20 ms frame each way per tick of its own clock; the sound card plays
// and records on its crystal. The two never agree exactly, and neither waits for the other:
// [Handset.Play] and [Handset.Capture] only copy a frame into or out of a small ring, and two
// goroutines that the Handset owns move frames between the rings and the device with
// PortAudio's blocking read and write. Whatever the two clocks disagree on shows up in
// [Stats], never as a stall: Play on a full ring drops the oldest frame queued (an overrun),
// Capture on an empty ring returns silence (an underrun), a full capture ring loses its
// oldest frame, and the device's own underflows and overflows are counted and survived.
// Nothing here takes the device as a clock, so a device that runs faster than real time (the
// file-backed one of the tests) works as well as a real one.
//
// # Rates
//
// Frames are always 8 kHz ([audio.SampleRate]). A device that runs at 16 kHz gets and gives
// 16 kHz, converted with a half-band filter on the device goroutines, off the call loop.
package portaudio

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"

	pa "github.com/gordonklaus/portaudio"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
)

// Config says which sound devices the handset uses and how.
type Config struct {
	// Rate is the devices' sample rate: 8000 or 16000; 0 means 8000. Frames stay at 8 kHz to
	// the agent either way.
	Rate int
	// Input and Output name the mouthpiece's and the earpiece's device as PortAudio lists
	// them: with ALSA, a PCM of the ALSA configuration such as "default", or a card's device
	// such as "USB Audio Device: - (hw:1,0)"; "" means the default device. Open's error for a
	// name it cannot find lists the names there are.
	Input, Output string
	// Gain is the earpiece volume, a factor from 0 to 4; 0 means 1 (unchanged). To mute, use
	// [Handset.SetGain](0).
	Gain float64
	// Buffer is the number of frames each ring holds, from 1 to 500; 0 means 10 (200 ms).
	Buffer int
	// Logger gets the opening and closing of the devices, device errors at level Error, and
	// each device underflow and overflow at level Debug. Nil discards.
	Logger *slog.Logger
}

const (
	defaultBuffer = 10
	maxBuffer     = 500 // 10 s: far more than any phone should lag
	maxGain       = 4
)

// Stats counts what happened to the audio since Open. Each counter only grows.
type Stats struct {
	Played   uint64 // frames written to the output device
	Captured uint64 // frames read from the input device
	// Underruns counts Capture calls that found no captured frame waiting and returned
	// silence.
	Underruns uint64
	// Overruns counts Play calls that found the earpiece ring full and dropped its oldest
	// frame to make room.
	Overruns uint64
	// Discarded counts captured frames dropped unread because the mouthpiece ring was full:
	// Capture was not called as often as the device delivers.
	Discarded uint64
	// OutputUnderflows counts the times PortAudio reported that the output device had run out
	// of audio; InputOverflows the times it reported input lost because it was not read in
	// time. The streams go on after either.
	OutputUnderflows, InputOverflows uint64
}

// Handset is the earpiece and the mouthpiece of a phone, opened with [Open].
//
// Play, Capture, SetGain, Stats and Err are safe for concurrent use and never block; they may
// still be called after Close, when Play's frames go nowhere and Capture returns what was
// captured before Close and then silence.
type Handset struct {
	log     *slog.Logger
	rate    int
	inName  string // the input device's name, for errors
	outName string // the output device's name, for errors
	gain    atomic.Uint64

	out *ring // frames from Play waiting for the output device
	in  *ring // frames from the input device waiting for Capture
	// queued gets a token after each Play, to wake the writer when it found out empty.
	queued chan struct{}
	// progress gets a token whenever a frame reaches or leaves a device and when a device
	// goroutine stops, so that whoever waits for Stats to change (the tests) need not poll.
	progress chan struct{}

	played, captured, underruns, overruns, discarded atomic.Uint64
	outputUnderflows, inputOverflows                 atomic.Uint64

	errMu sync.Mutex // guards err
	err   error      // the first error that stopped a device goroutine

	done      chan struct{}  // closed by Close: the device goroutines finish
	wg        sync.WaitGroup // the device goroutines (the reader and the writer)
	release   func() error   // stops and closes the streams once the goroutines are gone
	closeOnce sync.Once
	closeErr  error // what Close returns, every time
}

var _ device.Handset = (*Handset)(nil)

// inputStream is the part of an input stream that the reader uses: Read fills the buffer the
// stream was opened with, blocking until the device has delivered that much.
type inputStream interface{ Read() error }

// outputStream is the part of an output stream that the writer uses: Write sends the buffer
// the stream was opened with, blocking while the device has no room for it.
type outputStream interface{ Write() error }

// streams are a handset's opened and started devices.
type streams struct {
	in      inputStream
	inBuf   []int16 // the input stream's buffer: one frame at the device's rate
	inName  string
	out     outputStream
	outBuf  []int16 // the output stream's buffer: one frame at the device's rate
	outName string
	// release stops and closes both streams; it is called once, after the last Read and
	// Write have returned.
	release func() error
}

// check validates cfg and fills in its defaults.
func (cfg *Config) check() error {
	switch cfg.Rate {
	case 0:
		cfg.Rate = audio.SampleRate
	case audio.SampleRate, 2 * audio.SampleRate:
	default:
		return fmt.Errorf("%w: rate %d Hz: want 8000 or 16000", ErrConfig, cfg.Rate)
	}
	switch {
	case cfg.Gain == 0:
		cfg.Gain = 1
	case !(cfg.Gain > 0 && cfg.Gain <= maxGain): // also refuses NaN
		return fmt.Errorf("%w: gain %v: want 0 to %d", ErrConfig, cfg.Gain, maxGain)
	}
	switch {
	case cfg.Buffer == 0:
		cfg.Buffer = defaultBuffer
	case cfg.Buffer < 0 || cfg.Buffer > maxBuffer:
		return fmt.Errorf("%w: buffer %d frames: want 1 to %d", ErrConfig, cfg.Buffer, maxBuffer)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// start makes the Handset around started streams and starts its device goroutines. cfg has
// been checked.
func start(cfg Config, s streams) *Handset {
	h := &Handset{
		log:      cfg.Logger,
		rate:     cfg.Rate,
		inName:   s.inName,
		outName:  s.outName,
		out:      newRing(cfg.Buffer),
		in:       newRing(cfg.Buffer),
		queued:   make(chan struct{}, 1),
		progress: make(chan struct{}, 1),
		done:     make(chan struct{}),
		release:  s.release,
	}
	h.gain.Store(math.Float64bits(cfg.Gain))
	h.wg.Add(2)
	// Done is called here rather than deferred inside the loops, so that once Close has
	// waited, no goroutine is even still returning from one.
	go func() {
		h.readLoop(s.in, s.inBuf)
		h.wg.Done()
	}()
	go func() {
		h.writeLoop(s.out, s.outBuf)
		h.wg.Done()
	}()
	return h
}

// Play queues f for the earpiece and returns at once. If the ring is full, the oldest frame
// queued is dropped (counted in Stats.Overruns).
func (h *Handset) Play(f *audio.Frame) {
	if h.out.push(f) {
		h.overruns.Add(1)
	}
	select {
	case h.queued <- struct{}{}:
	default:
	}
}

// Capture fills f with the oldest frame captured and not yet returned, or with silence if
// there is none (counted in Stats.Underruns). It returns at once.
func (h *Handset) Capture(f *audio.Frame) {
	if !h.in.pop(f) {
		f.Silence()
		h.underruns.Add(1)
	}
}

// SetGain sets the earpiece volume to g, clamped to 0 (mute) to 4; a NaN is ignored. It
// applies from the next frame written to the device, including frames already queued.
func (h *Handset) SetGain(g float64) {
	if math.IsNaN(g) {
		return
	}
	h.gain.Store(math.Float64bits(min(max(g, 0), maxGain)))
}

// Stats returns the counters. Each is read atomically, the set not as one snapshot.
func (h *Handset) Stats() Stats {
	return Stats{
		Played:           h.played.Load(),
		Captured:         h.captured.Load(),
		Underruns:        h.underruns.Load(),
		Overruns:         h.overruns.Load(),
		Discarded:        h.discarded.Load(),
		OutputUnderflows: h.outputUnderflows.Load(),
		InputOverflows:   h.inputOverflows.Load(),
	}
}

// Err returns the first device error that stopped the reader or the writer, or nil. After
// such an error the handset plays nothing (Play's frames pile up as overruns) or captures
// nothing (Capture returns silence), so the agent should treat it as out of order.
// Underflows and overflows are not errors.
func (h *Handset) Err() error {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	return h.err
}

// Close stops the device goroutines and the streams and releases PortAudio. Frames that
// Play queued before Close are still played, so Close returns once they and the device's
// own buffer have been (well under a second with the default Buffer). It returns the error
// of Err, if any, joined with any error in closing; calling it again returns the same.
func (h *Handset) Close() error {
	h.closeOnce.Do(func() {
		close(h.done)
		h.wg.Wait()
		err := h.release()
		st := h.Stats()
		h.log.Info("handset closed", "event", "handset_close",
			"played", st.Played, "captured", st.Captured, "underruns", st.Underruns,
			"overruns", st.Overruns, "discarded", st.Discarded,
			"output_underflows", st.OutputUnderflows, "input_overflows", st.InputOverflows)
		h.closeErr = errors.Join(h.Err(), err)
	})
	return h.closeErr
}

// readLoop moves frames from the input device into the capture ring until Close, or until the
// device fails.
func (h *Handset) readLoop(s inputStream, buf []int16) {
	defer h.signal()
	var (
		f    audio.Frame
		down downsampler
	)
	for {
		select {
		case <-h.done:
			return
		default:
		}
		if err := s.Read(); errors.Is(err, pa.InputOverflowed) {
			// PortAudio still filled buf: only earlier input was lost.
			h.inputOverflows.Add(1)
			h.log.Debug("input device overflowed", "event", "handset_input_overflow", "device", h.inName)
		} else if err != nil {
			h.fail(fmt.Errorf("handset: read input device %q: %w", h.inName, err))
			return
		}
		if h.rate == audio.SampleRate {
			copy(f[:], buf)
		} else {
			down.process(buf, &f)
		}
		if h.in.push(&f) {
			h.discarded.Add(1)
		}
		h.captured.Add(1)
		h.signal()
	}
}

// writeLoop moves frames from the earpiece ring to the output device until Close, and then the
// frames still queued, or until the device fails. When nothing is queued it waits for Play,
// letting the device run dry rather than making up audio.
func (h *Handset) writeLoop(s outputStream, buf []int16) {
	defer h.signal()
	var (
		f  audio.Frame
		up upsampler
	)
	for {
		select {
		case <-h.done:
			// What was queued before Close still goes out, but no more than the ring held.
			for n := h.out.len(); n > 0 && h.out.pop(&f); n-- {
				if !h.write(s, buf, &up, &f) {
					return
				}
			}
			return
		default:
		}
		if !h.out.pop(&f) {
			select {
			case <-h.queued:
			case <-h.done:
			}
			continue
		}
		if !h.write(s, buf, &up, &f) {
			return
		}
	}
}

// write sends f to the output device and reports whether the writer should go on.
func (h *Handset) write(s outputStream, buf []int16, up *upsampler, f *audio.Frame) bool {
	applyGain(f, math.Float64frombits(h.gain.Load()))
	if h.rate == audio.SampleRate {
		copy(buf, f[:])
	} else {
		up.process(f, buf)
	}
	if err := s.Write(); errors.Is(err, pa.OutputUnderflowed) {
		// The frame was written; the device had run dry before it.
		h.outputUnderflows.Add(1)
		h.log.Debug("output device underflowed", "event", "handset_output_underflow", "device", h.outName)
	} else if err != nil {
		h.fail(fmt.Errorf("handset: write output device %q: %w", h.outName, err))
		return false
	}
	h.played.Add(1)
	h.signal()
	return true
}

// fail records err as the handset's error if it is the first, and logs it.
func (h *Handset) fail(err error) {
	h.log.Error("handset device failed", "event", "handset_error", "err", err)
	h.errMu.Lock()
	defer h.errMu.Unlock()
	if h.err == nil {
		h.err = err
	}
}

func (h *Handset) signal() {
	select {
	case h.progress <- struct{}{}:
	default:
	}
}
