package call

import (
	"testing"
	"time"
)

// reach gets the machine to each state a session can be in.
var reach = []struct {
	state string
	leg   bool // a call to the far end exists
	rec   bool // a recording is running
	get   func(h *harness)
}{
	{"greeting", false, false, func(h *harness) { h.offhook() }},
	{"enter_id", false, false, func(h *harness) { h.offhook(); h.press("1") }},
	{"enter_pin", false, false, func(h *harness) { h.offhook(); h.press("1"); h.press("1001#") }},
	{"enter_number", false, false, func(h *harness) { h.login("1001", "1234") }},
	{"announce", false, false, func(h *harness) { h.login("1001", "1234"); h.press(dialRecorded + "#") }},
	{"ringing", true, false, func(h *harness) { h.login("1001", "1234"); h.dial(dialRecorded) }},
	{"notice", true, false, func(h *harness) { h.login("1001", "1234"); h.dial(dialRecorded); h.do("answer") }},
	{"await_accept", true, false, func(h *harness) { h.toAccept() }},
	{"talking", true, true, func(h *harness) { h.toAccept(); h.do("accept"); h.wait(time.Second) }},
	{"finished", false, false, func(h *harness) { h.login("1001", "1234"); h.press(dialBlocked + "#") }},
}

func TestOnHookInEveryState(t *testing.T) {
	for _, r := range reach {
		t.Run(r.state, func(t *testing.T) {
			h := newHarness(t)
			r.get(h)
			if h.m.State() != r.state {
				t.Fatalf("reached %s, want %s; %s", h.m.State(), r.state, h.names())
			}
			endedBefore := h.count("call_ended")
			h.onhook()
			h.wait(time.Second)
			if h.m.State() != "idle" || h.m.InCall() {
				t.Fatalf("state %s after on-hook", h.m.State())
			}
			if got := h.count("call_ended"); got != 1 {
				t.Fatalf("%d call_ended events", got)
			}
			if endedBefore == 0 {
				if e, _ := h.last("call_ended"); e.attrs["reason"] != "caller_hangup" {
					t.Errorf("reason %q", e.attrs["reason"])
				}
			}
			if st, ok := h.callee.Last(); r.leg && (!ok || st.HungUpBy != "phone") {
				t.Errorf("far end not released: %+v", st)
			}
			if r.rec && h.rec.closed != 1 {
				t.Errorf("recording closed %d times", h.rec.closed)
			}
			if len(h.records()) != 1 {
				t.Errorf("%d call records", len(h.records()))
			}
			// The phone is ready for the next caller.
			h.login("1002", "5678")
		})
	}
}

func TestFarEndHangupInEveryState(t *testing.T) {
	for _, r := range reach {
		if !r.leg {
			continue
		}
		t.Run(r.state, func(t *testing.T) {
			h := newHarness(t)
			r.get(h)
			want := "callee_hangup"
			if r.state == "ringing" {
				// A far end that gives up before answering refuses the call.
				h.do("decline")
				want = "rejected"
			} else {
				h.do("hangup")
			}
			e, ok := h.last("call_ended")
			if !ok || e.attrs["reason"] != want {
				t.Fatalf("%v %v; %s", e, ok, h.names())
			}
			if r.rec && h.rec.closed != 1 {
				t.Errorf("recording closed %d times", h.rec.closed)
			}
			framesAtEnd := h.rec.frames
			h.wait(5 * time.Second)
			if h.m.State() != "finished" {
				t.Errorf("state %s", h.m.State())
			}
			if h.rec.frames != framesAtEnd {
				t.Error("recorder kept getting frames after the call ended")
			}
			h.onhook()
			if h.count("call_ended") != 1 || h.m.State() != "idle" {
				t.Errorf("after on-hook: %s", h.names())
			}
		})
	}
}

func TestShutdownEndsTheCall(t *testing.T) {
	h := newHarness(t)
	h.toAccept()
	h.do("accept")
	h.wait(time.Second)
	h.m.Shutdown(h.now)
	e, ok := h.last("call_ended")
	if !ok || e.attrs["reason"] != "shutdown" {
		t.Fatalf("%v %v", e, ok)
	}
	if h.rec.closed != 1 {
		t.Error("recording not closed")
	}
	if st, _ := h.callee.Last(); st.HungUpBy != "phone" {
		t.Error("far end not released")
	}
	if r := h.onlyRecord(); r.EndReason != "shutdown" {
		t.Errorf("record %+v", r)
	}
}
