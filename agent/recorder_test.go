package agent

import (
	"testing"

	"github.com/wallphone/wallphone/call"
	"github.com/wallphone/wallphone/recording"
)

// TestRecorderDecisionName: the machine's decision and the recorder's own check name the same
// decision, so that the recorder's refusal of any other call (promise 1, defence in depth;
// recording.TestRefusesUnrecordedDecisions) cannot be defeated by a renamed constant, nor
// turn into a refusal of every recorded call.
func TestRecorderDecisionName(t *testing.T) {
	if string(call.Recorded) != recording.DecisionRecorded {
		t.Fatalf("call.Recorded is %q, the recorder records only %q", call.Recorded, recording.DecisionRecorded)
	}
}
