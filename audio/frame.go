// Package audio is the phone's sound: the frame every other part exchanges, the spoken prompts
// in English and Spanish, and the tones. It keeps promise 2 (every recorded call is announced)
// by carrying the notices that the call state machine plays to both parties.
package audio

import "time"

const (
	// SampleRate is the rate of the handset and of the trunk: narrowband telephony.
	SampleRate = 8000
	// FrameDuration is the audio heartbeat: the call state machine moves one frame each way
	// per tick, and RTP packs one frame per packet.
	FrameDuration = 20 * time.Millisecond
	// FrameSamples is the number of samples in one frame.
	FrameSamples = SampleRate * int(FrameDuration/time.Millisecond) / 1000
)

// Frame is 20 ms of mono 16-bit linear audio. It is an array so that the audio path passes
// pointers to reused frames and allocates nothing per tick.
type Frame [FrameSamples]int16

// Silence sets every sample of f to zero.
func (f *Frame) Silence() { *f = Frame{} }

// Source yields audio one frame at a time.
type Source interface {
	// Next fills f with the next frame and reports whether there was one; after it returns
	// false it keeps returning false and leaves f untouched.
	Next(f *Frame) bool
}
