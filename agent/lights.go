package agent

import "log/slog"

// A Light is one of the phone's indicator lights (device/output drives them on a board).
type Light interface {
	On() bool
	Set(on bool) error
}

// Lights are the phone's lights: in call, and recording. The caller can see that a call is
// recorded, and that a privileged one is not. A nil Light is one the board does not have.
type Lights struct {
	InCall, Recording Light
}

// lights shows the call loop's state on Lights after each frame.
type lights struct {
	Lights
	log    *slog.Logger
	failed bool // a failure is logged once, not 50 times a second
}

func (l *lights) show(inCall, recording bool) {
	for _, o := range []struct {
		light Light
		on    bool
	}{{l.InCall, inCall}, {l.Recording, recording}} {
		if o.light == nil || o.light.On() == o.on {
			continue
		}
		if err := o.light.Set(o.on); err != nil && !l.failed {
			l.failed = true
			l.log.Error("indicator light", "event", "board_error", "err", err)
		}
	}
}
