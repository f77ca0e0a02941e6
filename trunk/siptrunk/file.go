package siptrunk

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/wallphone/wallphone/trunk"
)

// ErrNoAccount is what a call gets when the phone has no usable SIP account: the caller hears that
// the call failed, and the log says why, once at start.
var ErrNoAccount = errors.New("no SIP account configured (sip.json)")

// noTrunk places no calls: the phone keeps running without a SIP account, as with any item of
// its configuration that is not installed.
type noTrunk struct{}

func (noTrunk) Dial(string) (trunk.Leg, error) { return nil, ErrNoAccount }

// OpenFile starts a trunk from the account in file (sip.json). A missing or bad file is
// logged and gives a trunk that fails every call, so that the phone keeps running as with any
// item of its configuration that is not installed; the returned function stops the trunk
// (hanging up a call still going).
func OpenFile(file string, log *slog.Logger) (trunk.Trunk, func()) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no SIP account: calls cannot be placed until sip.json is installed",
			"event", "sip_not_configured", "file", file)
		return noTrunk{}, func() {}
	}
	var c Config
	if err == nil {
		c, err = Parse(b)
	}
	var t *Trunk
	if err == nil {
		t, err = New(c, Options{Logger: log})
	}
	if err != nil {
		log.Error("SIP trunk not started: calls cannot be placed", "event", "sip_error",
			"file", file, "err", fmt.Sprint(err))
		return noTrunk{}, func() {}
	}
	return t, func() {
		if err := t.Close(); err != nil {
			log.Error("closing the SIP trunk", "event", "sip_error", "err", err)
		}
	}
}
