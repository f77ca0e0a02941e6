// Package sim is the simulated wall phone: a keypad, hook switch and handset that live in
// memory and are worked by commands (from a person at a terminal or from a script), so that
// the agent's real call logic runs on any computer. It is the embedded default board.
package sim

import (
	"fmt"
	"io"
	"sync"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
)

// Board is the simulated phone. Its methods are safe for concurrent use: commands arrive on
// one goroutine while the call loop polls on another.
type Board struct {
	mu      sync.Mutex // guards everything below
	offHook bool
	keys    []device.Key
	mic     audio.Source
	ear     io.Writer // raw earpiece audio, s16le 8 kHz mono; nil discards
	earErr  error
	heard   EarStats
}

// EarStats counts what reached the earpiece.
type EarStats struct {
	Frames       int // every frame played
	SoundFrames  int // frames that were not silence
	LastWasSound bool
}

var _ device.Keypad = (*Board)(nil)
var _ device.Hook = (*Board)(nil)
var _ device.Handset = (*Board)(nil)

// Options configure a simulated board.
type Options struct {
	// Mic is what the caller says; nil is silence.
	Mic audio.Source
	// Earpiece, if set, receives everything the earpiece plays as raw s16le at 8 kHz, so a
	// person can listen to a session afterwards (e.g. with sox or ffplay).
	Earpiece io.Writer
}

// New returns an on-hook simulated phone.
func New(o Options) *Board {
	return &Board{mic: o.Mic, ear: o.Earpiece}
}

// Device returns the board as the agent sees it.
func (b *Board) Device() device.Board {
	return device.Board{Name: "sim", Keypad: b, Hook: b, Handset: b}
}

// SetOffHook lifts (true) or replaces (false) the handset.
func (b *Board) SetOffHook(off bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.offHook = off
}

// Press queues key presses (a-d are taken as A-D); it refuses the whole string if any key
// is not on a keypad.
func (b *Board) Press(keys string) error {
	ks := make([]device.Key, 0, len(keys))
	for _, r := range keys {
		if r >= 'a' && r <= 'd' {
			r -= 'a' - 'A'
		}
		k := device.Key(r)
		if !device.ValidKey(k) {
			return fmt.Errorf("press %q: %q is not a key (keys are 0-9, *, # and A-D)", keys, r)
		}
		ks = append(ks, k)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.keys = append(b.keys, ks...)
	return nil
}

// PollKey implements device.Keypad.
func (b *Board) PollKey() (device.Key, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.keys) == 0 {
		return 0, false
	}
	k := b.keys[0]
	b.keys = b.keys[1:]
	return k, true
}

// OffHook implements device.Hook.
func (b *Board) OffHook() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.offHook
}

// Play implements device.Handset.
func (b *Board) Play(f *audio.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.heard.Frames++
	b.heard.LastWasSound = !isSilent(f)
	if b.heard.LastWasSound {
		b.heard.SoundFrames++
	}
	if b.ear != nil && b.earErr == nil {
		var buf [2 * audio.FrameSamples]byte
		for i, v := range f {
			buf[2*i], buf[2*i+1] = byte(v), byte(uint16(v)>>8)
		}
		_, b.earErr = b.ear.Write(buf[:])
	}
}

// Capture implements device.Handset.
func (b *Board) Capture(f *audio.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mic == nil || !b.offHook || !b.mic.Next(f) {
		f.Silence()
	}
}

// Heard returns what the earpiece has played so far.
func (b *Board) Heard() EarStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.heard
}

// EarpieceErr is the first error writing earpiece audio, if any; writing stops after it.
func (b *Board) EarpieceErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.earErr
}

// isSilent treats anything below about -50 dBFS as silence.
func isSilent(f *audio.Frame) bool {
	for _, v := range f {
		if v > 100 || v < -100 {
			return false
		}
	}
	return true
}
