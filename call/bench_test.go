package call

import (
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
)

// BenchmarkTick measures the machine's work per 20 ms frame in each kind of moment, beside a
// baseline that moves the same frames between the same simulated devices with no machine at
// all: the difference is what the call logic adds to the audio path. %core is the share of one
// core that one phone's calls take at 50 ticks a second.
func BenchmarkTick(b *testing.B) {
	report := func(b *testing.B) {
		per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(per/float64(audio.FrameDuration.Nanoseconds())*100, "%core")
	}
	talking := func(b *testing.B, digits string) *harness {
		h := newHarness(b)
		h.login("1001", "1234")
		h.dial(digits)
		h.do("answer")
		if digits == dialRecorded {
			h.waitState("await_accept", 30*time.Second)
			h.do("accept")
		}
		h.waitState("talking", time.Second)
		// Long enough for any b.N, with no warnings on the way.
		h.m.s.endAt = h.now.Add(1000 * time.Hour)
		h.m.s.warn60, h.m.s.warn30 = time.Time{}, time.Time{}
		return h
	}
	b.Run("baseline=bare-frame-copy", func(b *testing.B) {
		h := talking(b, dialRecorded)
		leg := h.m.s.leg
		rec, err := h.rec.Start(RecordingInfo{})
		if err != nil {
			b.Fatal(err)
		}
		var mic, far audio.Frame
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			h.board.Capture(&mic)
			leg.Receive(&far)
			h.board.Play(&far)
			leg.Send(&mic)
			rec.Write(&mic, &far)
		}
		report(b)
	})
	b.Run("talking-recorded", func(b *testing.B) {
		h := talking(b, dialRecorded)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			h.tick()
		}
		b.StopTimer()
		if h.m.State() != "talking" {
			b.Fatalf("state %s", h.m.State())
		}
		report(b)
	})
	b.Run("talking-privileged", func(b *testing.B) {
		h := talking(b, dialPrivileged)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			h.tick()
		}
		report(b)
	})
	b.Run("idle", func(b *testing.B) {
		h := newHarness(b)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			h.tick()
		}
		report(b)
	})
}

// BenchmarkDecide is the once-per-call decision, dominated by parsing the number.
func BenchmarkDecide(b *testing.B) {
	pol := testPolicy(b)
	reg := testRegistry(b)
	caller, _ := pol.Caller("1001")
	b.ReportAllocs()
	for range b.N {
		if _, err := Decide(pol, reg, caller, dialRecorded); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTickAllocatesNothing: the audio path runs 50 times a second for as long as the phone is
// up; a tick in the middle of a recorded call must not allocate.
func TestTickAllocatesNothing(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters allocate")
	}
	h := newHarness(t)
	h.toAccept()
	h.do("accept")
	h.wait(time.Second)
	if n := testing.AllocsPerRun(200, h.tick); n != 0 {
		t.Errorf("%v allocations per tick while talking", n)
	}
	h.onhook()
	h.wait(time.Second)
	if n := testing.AllocsPerRun(200, h.tick); n != 0 {
		t.Errorf("%v allocations per tick while idle", n)
	}
}
