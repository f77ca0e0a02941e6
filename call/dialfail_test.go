package call

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/trunk"
)

// notStartedTrunk fails every call as a SIP trunk does whose listen address another process
// holds.
type notStartedTrunk struct{ err error }

func (t notStartedTrunk) Dial(string) (trunk.Leg, error) { return nil, t.err }

// A call the trunk cannot place says why in dial_failed, the trunk's whole error (the busy
// port, when the trunk tries again), not a cause of the phone's own; the caller hears the
// call-failed prompt.
func TestDialFailedSaysWhy(t *testing.T) {
	bind := fmt.Errorf("sip listen: listen udp 127.0.0.1:5060: bind: %w", syscall.EADDRINUSE)
	err := fmt.Errorf("%w: %w (retrying in 8s)", errors.New("SIP trunk not started"), bind)
	h := newHarness(t)
	h.m.cfg.Trunk = notStartedTrunk{err}
	h.login("1001", "1234")
	h.press(dialFree + "#")
	e := h.waitFor("call_ended", 30*time.Second)
	if e.attrs["reason"] != "failed" {
		t.Fatal(e)
	}
	d, ok := h.last("dial_failed")
	if !ok || d.attrs["error"] != err.Error() {
		t.Fatalf("dial_failed %v, want the trunk's error %q", d.attrs, err)
	}
	if p := h.closing(); p.attrs["prompt"] != string(audio.PromptCallFailed) {
		t.Fatal(p)
	}
}
