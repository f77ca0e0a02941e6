package agent

import (
	"io"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
)

// BenchmarkFrame is the agent's work per 20 ms frame of an idle phone (the call machine, the
// look for newly installed rules, the lights) beside the call machine's tick alone.
func BenchmarkFrame(b *testing.B) {
	data, _ := enrolled(b)
	a, _ := newAgent(b, data, io.Discard, func(c *Config) { c.Lights = Lights{InCall: &fakeLight{}, Recording: &fakeLight{}} })
	b.Cleanup(func() { a.Close() })
	now := time.Now()
	for _, bc := range []struct {
		name string
		tick func(time.Time)
	}{
		{"baseline=machine-tick", a.machine.Tick},
		{"agent-frame", a.tick},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				now = now.Add(audio.FrameDuration)
				bc.tick(now)
			}
		})
	}
}

// An idle phone's frame allocates nothing: it runs 50 times a second for as long as the phone
// is up.
func TestFrameAllocatesNothing(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters allocate")
	}
	data, _ := enrolled(t)
	a, _ := newAgent(t, data, io.Discard, func(c *Config) { c.Lights = Lights{InCall: &fakeLight{}, Recording: &fakeLight{}} })
	t.Cleanup(func() { a.Close() })
	now := time.Now()
	if n := testing.AllocsPerRun(200, func() { now = now.Add(audio.FrameDuration); a.tick(now) }); n != 0 {
		t.Errorf("%v allocations per idle frame", n)
	}
}
