package trunk

import "testing"

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{
		Ringing:       "ringing",
		Answered:      "answered",
		Busy:          "busy",
		NoAnswer:      "no_answer",
		Rejected:      "rejected",
		Failed:        "failed",
		HungUp:        "hung_up",
		Digit:         "digit",
		0:             "EventKind(0)",
		Digit + 1:     "EventKind(9)",
		EventKind(-3): "EventKind(-3)",
	} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
