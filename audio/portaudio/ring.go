//go:build cgo && portaudio

package portaudio

import (
	"sync"

	"github.com/wallphone/wallphone/audio"
)

// ring is a fixed number of frames waiting between the call loop and a device goroutine.
// When it is full, a push replaces the oldest frame: a phone would rather lose 20 ms of audio
// than fall further and further behind.
type ring struct {
	mu     sync.Mutex    // guards frames, head and n
	frames []audio.Frame // the slots, used circularly
	head   int           // slot of the oldest frame
	n      int           // frames held
}

func newRing(size int) *ring { return &ring{frames: make([]audio.Frame, size)} }

// push copies f in after the newest frame. If the ring was full it first drops the oldest
// frame, and reports that it did.
func (r *ring) push(f *audio.Frame) (dropped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == len(r.frames) {
		r.frames[r.head] = *f
		r.head = (r.head + 1) % len(r.frames)
		return true
	}
	r.frames[(r.head+r.n)%len(r.frames)] = *f
	r.n++
	return false
}

// pop moves the oldest frame into f, or reports false and leaves f alone if there is none.
func (r *ring) pop(f *audio.Frame) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return false
	}
	*f = r.frames[r.head]
	r.head = (r.head + 1) % len(r.frames)
	r.n--
	return true
}

// len returns the number of frames held.
func (r *ring) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
