package call

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/trunk"
)

func TestDecide(t *testing.T) {
	pol := testPolicy(t)
	reg := testRegistry(t)
	c1001, _ := pol.Caller("1001")
	c1003, _ := pol.Caller("1003") // may call only +1 512 555 0123
	tests := []struct {
		name   string
		reg    Registry
		caller string
		digits string
		kind   Kind
		reason string
		e164   string
	}{
		{"privileged exact", reg, "1001", "5125550100", Privileged, ReasonRegistry, "+15125550100"},
		{"privileged with leading 1", reg, "1001", "15125550100", Privileged, ReasonRegistry, "+15125550100"},
		{"privileged seven digits", reg, "1001", "5550100", Privileged, ReasonRegistry, "+15125550100"},
		{"privileged mobile", reg, "1001", "5125550142", Privileged, ReasonRegistry, "+15125550142"},
		{"privileged by prefix", reg, "1001", "5125550175", Privileged, ReasonRegistry, "+15125550175"},
		{"next to the prefix block", reg, "1001", "5125550180", Recorded, ReasonDefaultRecords, "+15125550180"},
		{"privileged beats allowed list", reg, "1003", "5125550100", Privileged, ReasonRegistry, "+15125550100"},
		{"free", reg, "1001", "8006564673", Free, ReasonFacilityFree, "+18006564673"},
		{"free without registry", nil, "1001", "8006564673", Free, ReasonFacilityFree, "+18006564673"},
		{"no registry records nothing", nil, "1001", "5125550123", Unavailable, ReasonNoRegistry, "+15125550123"},
		{"no registry, would be privileged", nil, "1001", "5125550100", Unavailable, ReasonNoRegistry, "+15125550100"},
		{"blocked", reg, "1001", "5125550166", Blocked, ReasonFacilityBlock, "+15125550166"},
		{"not on allowed list", reg, "1003", "5125550124", Blocked, ReasonNotAllowed, "+15125550124"},
		{"on allowed list", reg, "1003", "5125550123", Recorded, ReasonDefaultRecords, "+15125550123"},
		{"recorded", reg, "1001", "5125550123", Recorded, ReasonDefaultRecords, "+15125550123"},
		{"invalid", reg, "1001", "12", Invalid, ReasonNotANumber, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller := c1001
			if tt.caller == "1003" {
				caller = c1003
			}
			d, err := Decide(pol, tt.reg, caller, tt.digits)
			if (err != nil) != (tt.kind == Invalid) {
				t.Fatalf("err = %v", err)
			}
			if d.Kind != tt.kind || d.Reason != tt.reason || d.E164 != tt.e164 {
				t.Fatalf("got %s/%s/%s, want %s/%s/%s", d.Kind, d.Reason, d.E164, tt.kind, tt.reason, tt.e164)
			}
			if d.PolicyVersion != pol.Version {
				t.Errorf("policy version %d, want %d", d.PolicyVersion, pol.Version)
			}
			if tt.reg != nil && d.RegistryVersion != tt.reg.Version() {
				t.Errorf("registry version %d, want %d", d.RegistryVersion, tt.reg.Version())
			}
			if d.Kind == Privileged && d.Privileged.Kind == "" {
				t.Error("privileged decision without its registry entry")
			}
		})
	}
}

// TestCallPaths runs whole calls through every decision and far-end answer, checking the
// event sequence, the call record and what the recorder and the called party got.
func TestCallPaths(t *testing.T) {
	type check func(t *testing.T, h *harness)
	tests := []struct {
		name      string
		run       func(h *harness)
		endReason string
		decision  Kind
		recorded  bool
		want      []string // events that must appear, in this order
		check     check
	}{
		{
			name: "recorded, accepted, caller hangs up",
			run: func(h *harness) {
				h.toAccept()
				h.do("accept")
				h.wait(10 * time.Second)
				h.onhook()
			},
			endReason: "caller_hangup", decision: Recorded, recorded: true,
			want: []string{"offhook", "pin_accepted", "decision", "notice_played", "dialing", "ringing",
				"answered", "notice_played", "callee_accepted", "recording_started", "connected",
				"recording_stopped", "call_ended", "onhook"},
			check: func(t *testing.T, h *harness) {
				if len(h.rec.starts) != 1 || h.rec.closed != 1 {
					t.Fatalf("recorder started %d closed %d times", len(h.rec.starts), h.rec.closed)
				}
				if got := h.rec.starts[0]; got.E164 != "+15125550123" || got.CallerID != "1001" {
					t.Errorf("recording info %+v", got)
				}
				// 10 s of talk at 50 frames a second, give or take the ticks around it.
				if h.rec.frames < 495 || h.rec.frames > 505 || h.rec.sound != h.rec.frames {
					t.Errorf("recorder got %d frames (%d with sound), want about 500", h.rec.frames, h.rec.sound)
				}
				st, _ := h.callee.Last()
				notice := h.prompts.Clip(audio.PromptNoticeCallee, audio.English).Frames()
				// The notice, then silence from the tick it ends until the accept.
				if st.HeardBeforeAccept != notice+1 {
					t.Errorf("called party heard %d frames before accepting, want the notice's %d and one of silence", st.HeardBeforeAccept, notice)
				}
				if st.HungUpBy != "phone" {
					t.Errorf("hung up by %q", st.HungUpBy)
				}
				r := h.onlyRecord()
				if r.Number != "+15125550123" || r.CallerID != "1001" || r.Connected.IsZero() {
					t.Errorf("record %+v", r)
				}
			},
		},
		{
			name:      "recorded, called party declines",
			run:       func(h *harness) { h.toAccept(); h.do("decline"); h.wait(time.Second) },
			endReason: "declined", decision: Recorded,
			want: []string{"decision", "answered", "notice_played", "callee_declined", "call_ended", "prompt"},
		},
		{
			name:      "recorded, no accept in time",
			run:       func(h *harness) { h.toAccept(); h.wait(h.pol.Limits.AcceptTimeout + time.Second) },
			endReason: "not_accepted", decision: Recorded,
			want: []string{"notice_played", "accept_timeout", "call_ended", "prompt"},
			check: func(t *testing.T, h *harness) {
				to, _ := h.last("accept_timeout")
				played := h.events()
				var noticeAt time.Time
				for _, e := range played {
					if e.name == "notice_played" && e.attrs["to"] == "callee" {
						noticeAt = e.at
					}
				}
				if got := to.at.Sub(noticeAt); got != h.pol.Limits.AcceptTimeout {
					t.Errorf("accept timed out %s after the notice, want %s", got, h.pol.Limits.AcceptTimeout)
				}
			},
		},
		{
			name: "recorded, the called party hangs up before accepting",
			run: func(h *harness) {
				h.toAccept()
				h.do("hangup")
			},
			endReason: "callee_hangup", decision: Recorded,
		},
		{
			name: "privileged: no notice, no recording",
			run: func(h *harness) {
				h.login("1001", "1234")
				h.dial(dialPrivileged)
				h.do("answer")
				h.wait(5 * time.Second)
				h.do("hangup")
				h.wait(time.Second)
			},
			endReason: "callee_hangup", decision: Privileged,
			want: []string{"decision", "prompt", "dialing", "answered", "connected", "call_ended"},
			check: func(t *testing.T, h *harness) {
				st, _ := h.callee.Last()
				if st.SoundHeard < 240 {
					t.Errorf("called party heard %d frames of the caller, want a conversation", st.SoundHeard)
				}
				d, _ := h.last("decision")
				if _, ok := d.attrs["number"]; ok {
					t.Error("the decision event holds the privileged number")
				}
				if d.attrs["kind"] != string(registry.PublicDefender) {
					t.Errorf("kind %q", d.attrs["kind"])
				}
				r := h.onlyRecord()
				if r.Number != "" || r.PrivilegedKind != string(registry.PublicDefender) {
					t.Errorf("record %+v", r)
				}
			},
		},
		{
			name: "free: unrecorded and no caller identity",
			run: func(h *harness) {
				h.login("1001", "1234")
				h.dial(dialFree)
				h.do("answer")
				h.wait(3 * time.Second)
				h.onhook()
			},
			endReason: "caller_hangup", decision: Free,
			want: []string{"decision", "dialing", "answered", "connected", "call_ended"},
			check: func(t *testing.T, h *harness) {
				r := h.onlyRecord()
				if r.CallerID != "" || r.Number != "" {
					t.Errorf("free call record keeps identity or number: %+v", r)
				}
				for _, e := range h.events() {
					for k, v := range e.attrs {
						if v == "1001" || strings.Contains(v, "8006564673") {
							t.Errorf("event %s %s=%s links the caller or the number", e.name, k, v)
						}
					}
				}
			},
		},
		{
			name:      "blocked by the facility",
			run:       func(h *harness) { h.login("1001", "1234"); h.press(dialBlocked + "#"); h.wait(time.Second) },
			endReason: "blocked", decision: Blocked,
			want: []string{"decision", "call_ended", "prompt"},
			check: func(t *testing.T, h *harness) {
				if _, ok := h.callee.Last(); ok {
					t.Error("a blocked number was dialed")
				}
			},
		},
		{
			name:      "not on the caller's allowed list",
			run:       func(h *harness) { h.login("1003", "2468"); h.press("5125550124#"); h.wait(time.Second) },
			endReason: "blocked", decision: Blocked,
		},
		{
			name:      "busy",
			run:       func(h *harness) { h.login("1001", "1234"); h.dial(dialRecorded); h.do("busy") },
			endReason: "busy", decision: Recorded,
		},
		{
			name:      "far end reports no answer",
			run:       func(h *harness) { h.login("1001", "1234"); h.dial(dialRecorded); h.do("noanswer") },
			endReason: "no_answer", decision: Recorded,
		},
		{
			name: "ring timeout",
			run: func(h *harness) {
				h.login("1001", "1234")
				h.dial(dialRecorded)
				h.wait(h.pol.Limits.RingTimeout + time.Second)
			},
			endReason: "no_answer", decision: Recorded,
			check: func(t *testing.T, h *harness) {
				dialing, _ := h.last("dialing")
				ended, _ := h.last("call_ended")
				if got := ended.at.Sub(dialing.at); got != h.pol.Limits.RingTimeout {
					t.Errorf("gave up after %s of ringing, want %s", got, h.pol.Limits.RingTimeout)
				}
				if st, _ := h.callee.Last(); st.HungUpBy != "phone" {
					t.Errorf("the phone did not cancel the call")
				}
			},
		},
		{
			name:      "rejected while ringing",
			run:       func(h *harness) { h.login("1001", "1234"); h.dial(dialRecorded); h.do("decline") },
			endReason: "rejected", decision: Recorded,
		},
		{
			name: "no registry: refused",
			run: func(h *harness) {
				h.reg = nil
				h.login("1001", "1234")
				h.press(dialRecorded + "#")
				h.wait(time.Second)
			},
			endReason: "unavailable", decision: Unavailable,
		},
		{
			name: "recorder cannot start: refused, not connected unrecorded",
			run: func(h *harness) {
				h.rec.startErr = errBoom
				h.toAccept()
				h.do("accept")
				h.wait(time.Second)
			},
			endReason: "recording_unavailable", decision: Recorded,
			check: func(t *testing.T, h *harness) {
				if h.count("connected") != 0 {
					t.Error("connected without a recording")
				}
				st, _ := h.callee.Last()
				if st.FramesHeard != st.HeardBeforeAccept {
					t.Errorf("called party heard %d frames after accepting", st.FramesHeard-st.HeardBeforeAccept)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.run(h)
			ended, ok := h.last("call_ended")
			if !ok {
				t.Fatalf("no call_ended; events: %s", h.names())
			}
			if ended.attrs["reason"] != tt.endReason {
				t.Errorf("end reason %q, want %q; events: %s", ended.attrs["reason"], tt.endReason, h.names())
			}
			if h.count("call_ended") != 1 {
				t.Errorf("%d call_ended events", h.count("call_ended"))
			}
			if d, _ := h.last("decision"); d.attrs["decision"] != string(tt.decision) {
				t.Errorf("decision %q, want %q", d.attrs["decision"], tt.decision)
			}
			if got := len(h.rec.starts) > 0; got != tt.recorded {
				t.Errorf("recorded = %v, want %v", got, tt.recorded)
			}
			if !tt.recorded && h.rec.frames != 0 {
				t.Errorf("recorder got %d frames of an unrecorded call", h.rec.frames)
			}
			if h.m.State() != "finished" && h.m.State() != "idle" {
				t.Errorf("state %s after the call", h.m.State())
			}
			r := h.onlyRecord()
			if r.EndReason != tt.endReason || r.Decision != string(tt.decision) || r.Recorded != tt.recorded {
				t.Errorf("record %+v", r)
			}
			if tt.want != nil {
				assertOrder(t, h, tt.want)
			}
			if tt.check != nil {
				tt.check(t, h)
			}
		})
	}
}

func assertOrder(t *testing.T, h *harness, want []string) {
	t.Helper()
	i := 0
	for _, e := range h.events() {
		if i < len(want) && e.name == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("events out of order or missing %q (want %v); got %s", want[i], want, h.names())
	}
}

// TestNoAudioBeforeAccept: on a recorded call the caller hears nothing of the called party,
// and the called party nothing of the caller, until the accept key.
func TestNoAudioBeforeAccept(t *testing.T) {
	h := newHarnessEar(t, new(bytes.Buffer))
	h.login("1001", "1234")
	h.dial(dialRecorded)
	h.do("answer")
	h.waitState("await_accept", 30*time.Second)
	atNotice, _ := h.callee.Last()
	notice := h.prompts.Clip(audio.PromptNoticeCallee, audio.English).Frames()
	if atNotice.FramesHeard != notice+1 {
		t.Errorf("called party heard %d frames by the end of the notice, want the notice (%d) and the silence of the tick it ended in", atNotice.FramesHeard, notice)
	}
	h.wait(5 * time.Second)
	st, _ := h.callee.Last()
	if st.FramesSaid != 0 {
		t.Errorf("%d frames of the called party taken before the accept", st.FramesSaid)
	}
	// While the called party decides, the stream goes on in silence: carriers and NATs drop a
	// call whose media stops, and nothing of the caller may be heard before the accept.
	if got, want := st.FramesHeard-atNotice.FramesHeard, int(5*time.Second/audio.FrameDuration); got < want-1 {
		t.Errorf("called party got %d frames in the 5 s wait for the accept, want a frame every 20 ms (%d)", got, want)
	}
	if st.SoundHeard != atNotice.SoundHeard {
		t.Errorf("called party heard %d frames of sound after the notice, before the accept", st.SoundHeard-atNotice.SoundHeard)
	}
	if h.rec.frames != 0 {
		t.Errorf("recorder got %d frames before the accept", h.rec.frames)
	}
	if h.m.Recording() {
		t.Error("the recording light is on before the accept")
	}
	acceptedAt := h.board.Heard().Frames
	h.do("accept")
	if !h.m.Recording() {
		t.Error("the recording light is off while recording")
	}
	h.wait(2 * time.Second)
	far := h.farEndFrames()
	for i, isFar := range far[:acceptedAt] {
		if isFar {
			t.Fatalf("earpiece frame %d carried the called party before the accept", i)
		}
	}
	heard := 0
	for _, isFar := range far[acceptedAt:] {
		if isFar {
			heard++
		}
	}
	if heard < 95 {
		t.Errorf("earpiece carried the called party in %d frames of the 2 s after the accept", heard)
	}
	if st, _ := h.callee.Last(); st.FramesSaid < 95 {
		t.Errorf("%d frames of the called party after the accept, want all of them", st.FramesSaid)
	}
}

// TestAcceptKeyDuringNoticeIgnored: pressing accept while the notice still plays does not
// connect the call; the called party must answer the whole notice.
func TestAcceptKeyDuringNoticeIgnored(t *testing.T) {
	h := newHarness(t)
	h.login("1001", "1234")
	h.dial(dialRecorded)
	h.do("answer")
	h.wait(500 * time.Millisecond)
	if h.m.State() != "notice" {
		t.Fatalf("state %s", h.m.State())
	}
	h.do("accept")
	h.waitState("await_accept", 30*time.Second)
	h.wait(time.Second)
	if h.count("connected") != 0 {
		t.Fatal("connected on a key pressed during the notice")
	}
	h.do("accept")
	if h.m.State() != "talking" {
		t.Fatalf("state %s after accepting", h.m.State())
	}
}

func TestTimeLimitWarnings(t *testing.T) {
	for _, tt := range []struct {
		caller, pin, digits string
		limit               func(h *harness) time.Duration
	}{
		{"1001", "1234", dialRecorded, func(h *harness) time.Duration { return h.pol.Limits.CallLimit }},
		{"1003", "2468", dialRecorded, func(h *harness) time.Duration { c, _ := h.pol.Caller("1003"); return c.CallLimit }},
		{"1001", "1234", dialPrivileged, func(h *harness) time.Duration { return h.pol.Limits.PrivilegedCallLimit }},
	} {
		t.Run(tt.caller+"/"+tt.digits, func(t *testing.T) {
			h := newHarness(t)
			h.login(tt.caller, tt.pin)
			h.dial(tt.digits)
			h.do("answer")
			if tt.digits == dialRecorded {
				h.waitState("await_accept", 30*time.Second)
				h.do("accept")
			} else {
				h.waitState("talking", time.Second)
			}
			connected, _ := h.last("connected")
			limit := tt.limit(h)
			if limit <= time.Minute {
				t.Fatalf("limit %s too short for this test", limit)
			}
			ended := h.waitFor("call_ended", limit+time.Second)
			if ended.attrs["reason"] != "time_limit" {
				t.Fatalf("ended for %s", ended.attrs["reason"])
			}
			if got := ended.at.Sub(connected.at); got != limit {
				t.Errorf("call ended after %s, want %s", got, limit)
			}
			warned := map[string]time.Duration{}
			for _, e := range h.events() {
				if e.name == "prompt" && strings.HasPrefix(e.attrs["prompt"], "warning_") {
					warned[e.attrs["prompt"]] = ended.at.Sub(e.at)
				}
			}
			if warned["warning_60"] != time.Minute || warned["warning_30"] != 30*time.Second || len(warned) != 2 {
				t.Errorf("warnings before the end: %v, want 1m and 30s", warned)
			}
		})
	}
}

func TestLockout(t *testing.T) {
	h := newHarness(t)
	max := h.pol.Limits.MaxPINAttempts
	// Wrong PINs across several sessions, as a person trying PINs would do.
	for i := 1; i < max; i++ {
		h.offhook()
		h.press("1")
		h.press("1001#")
		h.press("0000#")
		e, ok := h.last("pin_rejected")
		if !ok || e.attrs["failures"] != strconv.Itoa(i) {
			t.Fatalf("attempt %d: %v %v; %s", i, e, ok, h.names())
		}
		h.onhook()
	}
	h.offhook()
	h.press("1")
	h.press("1001#")
	h.press("0000#")
	if _, ok := h.last("locked_out"); !ok {
		t.Fatalf("no lockout after %d wrong PINs: %s", max, h.names())
	}
	h.onhook()
	// The right PIN does not help while locked.
	h.offhook()
	h.press("1")
	h.press("1001#")
	h.press("1234#")
	if h.count("pin_accepted") != 0 || h.count("locked_out") != 2 {
		t.Fatalf("locked ID got in: %s", h.names())
	}
	h.onhook()
	// Another caller is not affected.
	h.login("1002", "5678")
	h.onhook()
	// Once the lockout has run out the right PIN works, and the count starts afresh.
	h.wait(h.pol.Limits.Lockout)
	h.login("1001", "1234")
	h.onhook()
	if l, err := h.db.Lockout("1001"); err != nil || l.Failures != 0 {
		t.Fatalf("lockout after success: %+v %v", l, err)
	}
}

func TestWrongPINsInOneSession(t *testing.T) {
	h := newHarness(t)
	h.offhook()
	h.press("1")
	for i := 0; i < h.pol.Limits.MaxPINAttempts; i++ {
		// A different unknown ID each time: the handset still runs out of attempts.
		h.press("90" + strconv.Itoa(i) + "#")
		h.press("1111#")
	}
	ended, ok := h.last("call_ended")
	if !ok || ended.attrs["reason"] != "too_many_attempts" {
		t.Fatalf("%v; %s", ended, h.names())
	}
}

func TestEntry(t *testing.T) {
	t.Run("star clears", func(t *testing.T) {
		h := newHarness(t)
		h.offhook()
		h.press("1")
		h.press("99*1001#")
		h.press("12*1234#")
		if h.count("pin_accepted") != 1 {
			t.Fatal(h.names())
		}
	})
	t.Run("inter-digit timeout dials", func(t *testing.T) {
		h := newHarness(t)
		h.login("1001", "1234")
		h.press(dialRecorded)
		d := h.waitFor("decision", h.pol.Limits.InterDigitTimeout+time.Second)
		if d.attrs["decision"] != string(Recorded) {
			t.Fatal(d)
		}
	})
	t.Run("entry timeout ends", func(t *testing.T) {
		h := newHarness(t)
		h.offhook()
		h.press("1")
		e := h.waitFor("call_ended", time.Minute)
		if e.attrs["reason"] != "no_input" {
			t.Fatal(e)
		}
	})
	t.Run("invalid number asks again", func(t *testing.T) {
		h := newHarness(t)
		h.login("1001", "1234")
		h.press("12#")
		if h.m.State() != "enter_number" {
			t.Fatal(h.m.State())
		}
		h.dial(dialRecorded)
	})
	t.Run("Spanish chosen", func(t *testing.T) {
		h := newHarness(t)
		h.offhook()
		h.press("2")
		p, _ := h.last("prompt")
		if p.attrs["lang"] != "es" || p.attrs["prompt"] != "enter_id" {
			t.Fatal(p)
		}
	})
	t.Run("language from the policy when none chosen", func(t *testing.T) {
		h := newHarness(t)
		h.offhook()
		h.waitFor("language", time.Minute)
		h.press("1002#")
		h.press("5678#")
		p, _ := h.last("prompt")
		if p.attrs["lang"] != "es" || p.attrs["prompt"] != "enter_number" {
			t.Fatal(p)
		}
	})
}

// failingTrunk refuses every call, as a trunk with no route would.
type failingTrunk struct{}

func (failingTrunk) Dial(string) (trunk.Leg, error) { return nil, errBoom }

// failingStore fails every write, as a full or damaged flash would.
type failingStore struct{ Store }

func (failingStore) SetLockout(string, pin.Lockout) error { return errBoom }
func (failingStore) PutCall(string, []byte) error         { return errBoom }

func TestFaults(t *testing.T) {
	t.Run("dial fails", func(t *testing.T) {
		h := newHarness(t)
		h.m.cfg.Trunk = failingTrunk{}
		h.login("1001", "1234")
		h.press(dialRecorded + "#")
		e := h.waitFor("call_ended", 30*time.Second)
		if e.attrs["reason"] != "failed" {
			t.Fatal(e)
		}
		if p := h.closing(); p.attrs["prompt"] != string(audio.PromptCallFailed) {
			t.Fatal(p)
		}
	})
	t.Run("store cannot count a wrong PIN", func(t *testing.T) {
		h := newHarness(t)
		h.m.cfg.Store = failingStore{h.db}
		h.offhook()
		h.press("1")
		h.press("1001#")
		h.press("9999#")
		// A wrong PIN that cannot be counted ends the session: otherwise PINs could be tried
		// without limit while the store is broken.
		e, ok := h.last("call_ended")
		if !ok || e.attrs["reason"] != "phone_error" || h.count("pin_rejected") != 0 {
			t.Fatalf("%v; %s", e, h.names())
		}
		if p := h.closing(); p.attrs["prompt"] != string(audio.PromptUnavailable) {
			t.Fatal(p)
		}
	})
	t.Run("store cannot keep the call record", func(t *testing.T) {
		h := newHarness(t)
		h.m.cfg.Store = failingStore{h.db}
		h.login("1001", "1234")
		h.onhook()
		// The call still ends properly; the failure is logged.
		if h.count("call_ended") != 1 || h.m.State() != "idle" {
			t.Fatal(h.names())
		}
		if _, ok := h.last("store call record"); !ok {
			t.Fatal("the lost record was not reported")
		}
	})
}

// TestKeysForwardedWhileTalking: keys pressed while talking reach the called party (a far-end
// menu), and keys pressed before the call connected do not.
func TestKeysForwardedWhileTalking(t *testing.T) {
	h := newHarness(t)
	h.toAccept()
	h.press("5") // while the phone waits for the accept: the caller's key is not the called party's
	h.do("accept")
	if h.m.State() != "talking" {
		t.Fatalf("state %s after accepting", h.m.State())
	}
	h.press("12*#")
	h.wait(100 * time.Millisecond)
	st, _ := h.callee.Last()
	if st.KeysHeard != "12*#" {
		t.Fatalf("called party heard keys %q, want %q", st.KeysHeard, "12*#")
	}
}

// TestRecordingRoom: a recorded call that cannot be kept is never talked. With no room for
// it, the call is refused before the notice and before anything is dialled; a segment lost
// after all is written in the call's record, not hidden behind how the call ended.
func TestRecordingRoom(t *testing.T) {
	t.Run("no room before the notice", func(t *testing.T) {
		h := newHarness(t)
		h.rec.canErr = errBoom
		h.login("1001", "1234")
		h.press(dialRecorded + "#")
		e, _ := h.last("call_ended")
		if e.attrs["reason"] != "recording_unavailable" {
			t.Fatalf("ended %v; %s", e, h.names())
		}
		for _, n := range []string{"notice_played", "dialing", "answered"} {
			if h.count(n) != 0 {
				t.Errorf("%s happened on a call that could not be recorded: %s", n, h.names())
			}
		}
		if _, ok := h.callee.Last(); ok {
			t.Error("the called party was dialled")
		}
		if p := h.closing(); p.attrs["prompt"] != string(audio.PromptUnavailable) {
			t.Errorf("closing prompt %v", p)
		}
		if r := h.onlyRecord(); r.EndReason != "recording_unavailable" || r.Recorded {
			t.Errorf("record %+v", r)
		}
	})
	t.Run("free call needs no room", func(t *testing.T) {
		h := newHarness(t)
		h.rec.canErr = errBoom
		h.login("1001", "1234")
		h.dial(dialPrivileged)
		h.do("answer")
		if h.m.State() != "talking" {
			t.Fatalf("a privileged call was refused for want of recording room: %s", h.names())
		}
	})
	t.Run("last segment lost at hang-up", func(t *testing.T) {
		h := newHarness(t)
		h.rec.closeErr = errBoom
		h.toAccept()
		h.do("accept")
		h.wait(3 * time.Second)
		h.onhook()
		if h.count("recording_lost") != 1 {
			t.Errorf("no recording_lost event: %s", h.names())
		}
		r := h.onlyRecord()
		if !r.Recorded || r.RecordingError == "" {
			t.Errorf("the call record hides the lost recording: %+v", r)
		}
	})
}

// TestPleaseHangUp: a call that ends while the caller is still off-hook does what a real line
// does: the closing prompt, "please hang up", then the receiver off-hook tone for a minute,
// then silence. A caller is never left wondering in a dead earpiece.
func TestPleaseHangUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		call    func(h *harness)
		closing audio.PromptID
	}{
		{"blocked", func(h *harness) { h.press(dialBlocked + "#") }, audio.PromptBlocked},
		{"failed", func(h *harness) {
			h.m.cfg.Trunk = failingTrunk{}
			h.press(dialRecorded + "#")
			h.wait(10 * time.Second)
		}, audio.PromptCallFailed},
		{"far end hung up", func(h *harness) {
			h.dial(dialPrivileged)
			h.do("answer")
			h.wait(2 * time.Second)
			h.do("hangup")
		}, audio.PromptFarEndHangup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessEar(t, new(bytes.Buffer))
			h.login("1001", "1234")
			tc.call(h)
			if _, ok := h.last("call_ended"); !ok {
				t.Fatalf("the call did not end: %s", h.names())
			}
			h.wait(15 * time.Second) // the prompts
			var prompts []string
			for _, e := range h.events() {
				if e.name == "prompt" {
					prompts = append(prompts, e.attrs["prompt"])
				}
			}
			if n := len(prompts); n < 2 || prompts[n-2] != string(tc.closing) || prompts[n-1] != string(audio.PromptHangUp) {
				t.Fatalf("prompts %v: want %s then %s at the end", prompts, tc.closing, audio.PromptHangUp)
			}
			toneAt := h.board.Heard().Frames
			h.wait(2 * time.Second)
			if n := h.earFramesWith(toneAt, 1400); n < 40 {
				t.Errorf("%d of the 100 frames after the prompts carry the off-hook tone, want about half (its cadence)", n)
			}
			h.wait(70 * time.Second)
			quietAt := h.board.Heard().Frames
			h.wait(2 * time.Second)
			if n := h.earFramesWith(quietAt, 1400); n != 0 {
				t.Errorf("the off-hook tone still sounds after a minute (%d frames)", n)
			}
			h.onhook()
			if h.m.State() != "idle" {
				t.Errorf("state %s after on-hook", h.m.State())
			}
		})
	}
}

// TestRecordBeforeRecording: the call record, the only place the phone keeps a recorded
// call's number for destroy on discovery (promise 5), exists before the first frame is
// recorded: a power cut mid-call leaves it, not segments nobody can match to a number.
func TestRecordBeforeRecording(t *testing.T) {
	h := newHarness(t)
	h.toAccept()
	if rs := h.records(); len(rs) != 0 {
		t.Fatalf("records before the accept: %+v", rs)
	}
	h.do("accept")
	if !h.m.Recording() {
		t.Fatalf("not recording: %s", h.names())
	}
	r := h.onlyRecord()
	if !r.Recorded || r.Number != "+15125550123" || !r.Ended.IsZero() || r.EndReason != "" {
		t.Fatalf("record while recording %+v: want recorded, the number, not ended", r)
	}
	h.wait(time.Second)
	h.onhook()
	if r := h.onlyRecord(); !r.Recorded || r.Ended.IsZero() || r.EndReason != "caller_hangup" {
		t.Fatalf("record after the call %+v", r)
	}

	t.Run("no record, no recording", func(t *testing.T) {
		h := newHarness(t)
		h.m.cfg.Store = failingStore{h.db}
		h.toAccept()
		h.do("accept")
		if len(h.rec.starts) != 0 || h.count("connected") != 0 {
			t.Fatalf("a recorded call went ahead with no call record: %s", h.names())
		}
		if e, _ := h.last("call_ended"); e.attrs["reason"] != "phone_error" {
			t.Fatalf("ended %v", e)
		}
	})
}

// TestStreamUnbroken: from the answer to the accept, the called party gets one frame every
// tick, the tick in which the notice ends included: a missing frame puts the RTP timestamps
// behind the clock.
func TestStreamUnbroken(t *testing.T) {
	h := newHarness(t)
	h.login("1001", "1234")
	h.dial(dialRecorded)
	h.do("answer")
	ticks0 := h.board.Heard().Frames
	heard0, _ := h.callee.Last()
	h.waitState("await_accept", 30*time.Second)
	h.wait(time.Second)
	st, _ := h.callee.Last()
	if got, want := st.FramesHeard-heard0.FramesHeard, h.board.Heard().Frames-ticks0; got != want {
		t.Fatalf("called party got %d frames in %d ticks since the answer", got, want)
	}
}
