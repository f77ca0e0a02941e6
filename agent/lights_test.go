package agent

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type fakeLight struct {
	on     bool
	sets   int
	broken bool
}

func (l *fakeLight) On() bool { return l.on }

func (l *fakeLight) Set(on bool) error {
	l.sets++
	if l.broken {
		return errors.New("gpio: write failed")
	}
	l.on = on
	return nil
}

// The lights follow the call loop, are written only when they change, a board without one
// of them is fine, and a broken light is logged once, not fifty times a second.
func TestLights(t *testing.T) {
	in, rec := &fakeLight{}, &fakeLight{}
	var log strings.Builder
	l := lights{Lights: Lights{InCall: in, Recording: rec}, log: slog.New(slog.NewTextHandler(&log, nil))}
	for _, s := range []struct{ inCall, recording bool }{{true, false}, {true, false}, {true, true}, {true, true}, {false, false}} {
		l.show(s.inCall, s.recording)
		if in.on != s.inCall || rec.on != s.recording {
			t.Fatalf("lights %v %v, want %v %v", in.on, rec.on, s.inCall, s.recording)
		}
	}
	if in.sets != 2 || rec.sets != 2 {
		t.Errorf("sets: in call %d, recording %d; want 2 each", in.sets, rec.sets)
	}

	only := lights{Lights: Lights{InCall: &fakeLight{broken: true}}, log: slog.New(slog.NewTextHandler(&log, nil))}
	for range 50 {
		only.show(true, true)
	}
	if n := strings.Count(log.String(), "board_error"); n != 1 {
		t.Fatalf("a broken light logged %d times:\n%s", n, log.String())
	}
}
