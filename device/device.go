// Package device is the hardware as the agent sees it: the keypad, the hook switch and the
// handset, each a small interface that a real driver (periph.io GPIO, PortAudio) or the
// simulated board implements, and the board that bundles them.
//
// The call state machine polls these once per audio frame, so every method must return at
// once: drivers buffer what happens between polls.
package device

import "github.com/wallphone/wallphone/audio"

// Key is one key of the phone's keypad: '0'–'9', '*', '#', and 'A'–'D' on 4x4 keypads.
type Key rune

// ValidKey reports whether k is a key that a wall phone keypad can have.
func ValidKey(k Key) bool {
	switch {
	case k >= '0' && k <= '9', k == '*', k == '#', k >= 'A' && k <= 'D':
		return true
	}
	return false
}

// Keypad reports key presses, one event per press, in the order they happened.
type Keypad interface {
	// PollKey returns the oldest press not yet returned, or false if there is none.
	PollKey() (Key, bool)
}

// Hook is the hook switch.
type Hook interface {
	// OffHook reports whether the handset is lifted (debounced).
	OffHook() bool
}

// Handset is the earpiece and the mouthpiece.
type Handset interface {
	// Play queues one frame for the earpiece.
	Play(f *audio.Frame)
	// Capture fills f with the next frame from the mouthpiece (silence if none is ready).
	Capture(f *audio.Frame)
}

// Board is one kind of wall phone, with its devices opened.
type Board struct {
	Name    string
	Keypad  Keypad
	Hook    Hook
	Handset Handset
}
