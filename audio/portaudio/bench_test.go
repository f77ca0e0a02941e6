//go:build cgo && portaudio

package portaudio

import (
	"testing"

	"github.com/wallphone/wallphone/audio"
)

// BenchmarkFrame is what the call loop pays per 20 ms tick for the handset: one Play and one
// Capture, with both device goroutines running (against ALSA's null device, which takes and
// gives audio as fast as it is asked, so they contend as hard as they can), beside the bare
// cost of copying a frame into a ring slot and out again.
func BenchmarkFrame(b *testing.B) {
	b.Run("handset", func(b *testing.B) {
		nullDevice(b)
		h, err := Open(Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		var play, rec audio.Frame
		b.ReportAllocs()
		for b.Loop() {
			h.Play(&play)
			h.Capture(&rec)
		}
	})
	b.Run("bare-ring-copy", func(b *testing.B) {
		var (
			slots     [defaultBuffer]audio.Frame
			play, rec audio.Frame
			i         int
		)
		b.ReportAllocs()
		for b.Loop() {
			slots[i] = play
			rec = slots[i]
			i = (i + 1) % len(slots)
		}
		_ = rec
	})
}
