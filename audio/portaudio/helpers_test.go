//go:build cgo && portaudio

package portaudio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
)

// fileDevice makes PortAudio's default device, and one named "phone", a sound card that is a
// pair of files, as in the project's testing notes: what is played lands in the returned
// path, and capture reads in (raw 16-bit samples at the rate Open will use; silence if nil).
// It sets ALSA_CONFIG_PATH for the test, so it must be called before Open.
//
// The files are not played in real time: a second passes in a few milliseconds, and past the
// end of its file, capture repeats the last buffer it read.
func fileDevice(t testing.TB, in []int16) (out string) {
	t.Helper()
	dir := t.TempDir()
	out = filepath.Join(dir, "OUT.raw")
	inPath := "/dev/zero"
	if in != nil {
		inPath = filepath.Join(dir, "IN.raw")
		writeRaw(t, inPath, in)
	}
	pcm := fmt.Sprintf(`{
  type asym
  playback.pcm { type file  slave.pcm { type null }  file %q  format "raw" }
  capture.pcm  { type file  slave.pcm { type null }  file "/dev/null"  infile %q  format "raw" }
}`, out, inPath)
	conf := filepath.Join(dir, "asound.conf")
	if err := os.WriteFile(conf, []byte("pcm.default "+pcm+"\npcm.phone "+pcm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setAudioEnv(t, conf)
	return out
}

// setAudioEnv points ALSA at conf alone, and keeps PortAudio's JACK host API from starting a
// JACK server where one is installed.
func setAudioEnv(t testing.TB, conf string) {
	t.Setenv("ALSA_CONFIG_PATH", conf)
	t.Setenv("JACK_NO_START_SERVER", "1")
}

// nullDevice makes PortAudio's default device one that takes and gives audio as fast as it
// is asked, and keeps nothing.
func nullDevice(t testing.TB) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "asound.conf")
	if err := os.WriteFile(conf, []byte("pcm.default { type null }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setAudioEnv(t, conf)
}

func writeRaw(t testing.TB, path string, samples []int16) {
	t.Helper()
	b := make([]byte, 2*len(samples))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readRaw(t testing.TB, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%2 != 0 {
		t.Fatalf("%s: %d bytes, not whole samples", path, len(b))
	}
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s
}

// sine returns n samples of the sum of sines at freqs, each of peak amp (a fraction of full
// scale), at rate.
func sine(n, rate int, amp float64, freqs ...float64) []int16 {
	s := make([]int16, n)
	for i := range s {
		var v float64
		for _, hz := range freqs {
			v += math.Sin(2 * math.Pi * hz * float64(i) / float64(rate))
		}
		s[i] = int16(math.Round(v * amp * math.MaxInt16))
	}
	return s
}

// goertzel returns the peak amplitude of the component of x at hz, for x sampled at rate.
// It is exact when x holds a whole number of cycles of hz.
func goertzel(x []int16, hz float64, rate int) float64 {
	c := 2 * math.Cos(2*math.Pi*hz/float64(rate))
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = float64(v)+c*s1-s2, s1
	}
	return 2 * math.Sqrt(max(s1*s1+s2*s2-c*s1*s2, 0)) / float64(len(x))
}

// stuck is how long a test waits for a device goroutine before it calls it stuck: far longer
// than any step takes, even emulated, so that a broken handset fails the test rather than
// hanging it.
const stuck = 20 * time.Second

// waitFor waits until ok holds, woken by the device goroutines' progress rather than by a
// clock.
func waitFor(t testing.TB, h *Handset, what string, ok func() bool) {
	t.Helper()
	limit := time.NewTimer(stuck)
	defer limit.Stop()
	for !ok() {
		select {
		case <-h.progress:
		case <-limit.C:
			t.Fatalf("stuck waiting for %s; stats %+v, err %v", what, h.Stats(), h.Err())
		}
	}
}

// recv receives from ch, failing the test if nothing comes.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	limit := time.NewTimer(stuck)
	defer limit.Stop()
	select {
	case v := <-ch:
		return v
	case <-limit.C:
		t.Fatalf("stuck waiting for %s", what)
		panic("unreachable")
	}
}

// send sends v on ch, failing the test if nobody takes it.
func send[T any](t testing.TB, ch chan<- T, v T, what string) {
	t.Helper()
	limit := time.NewTimer(stuck)
	defer limit.Stop()
	select {
	case ch <- v:
	case <-limit.C:
		t.Fatalf("stuck: nobody took %s", what)
	}
}

// checkGoroutinesGone fails if any goroutine is still in a device loop.
func checkGoroutinesGone(t testing.TB) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, loop := range []string{"(*Handset).readLoop", "(*Handset).writeLoop"} {
		if bytes.Contains(buf, []byte(loop)) {
			t.Errorf("a goroutine is still in %s after Close:\n%s", loop, buf)
		}
	}
}

func frameOf(samples []int16) *audio.Frame {
	var f audio.Frame
	copy(f[:], samples)
	return &f
}
