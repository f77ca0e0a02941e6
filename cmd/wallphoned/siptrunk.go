package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/siptrunk"
)

// errNoSIP is what a call gets when the phone has no usable SIP account: the caller hears that
// the call failed, and the log says why, once at start.
var errNoSIP = errors.New("no SIP account configured (sip.json)")

// noTrunk places no calls: the phone keeps running without a SIP account, as with any item of
// its configuration that is not installed.
type noTrunk struct{}

func (noTrunk) Dial(string) (trunk.Leg, error) { return nil, errNoSIP }

// openSIPTrunk starts the SIP trunk from the account in cfg.sipFile. A missing or bad file is
// logged and leaves the phone running with a trunk that fails every call; the returned
// function stops the trunk (hanging up a call still going).
func openSIPTrunk(cfg config, log *slog.Logger) (trunk.Trunk, func()) {
	b, err := os.ReadFile(cfg.sipFile)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no SIP account: calls cannot be placed until sip.json is installed",
			"event", "sip_not_configured", "file", cfg.sipFile)
		return noTrunk{}, func() {}
	}
	var c siptrunk.Config
	if err == nil {
		c, err = siptrunk.Parse(b)
	}
	var t *siptrunk.Trunk
	if err == nil {
		t, err = siptrunk.New(c, siptrunk.Options{Logger: log})
	}
	if err != nil {
		log.Error("SIP trunk not started: calls cannot be placed", "event", "sip_error",
			"file", cfg.sipFile, "err", fmt.Sprint(err))
		return noTrunk{}, func() {}
	}
	return t, func() {
		if err := t.Close(); err != nil {
			log.Error("closing the SIP trunk", "event", "sip_error", "err", err)
		}
	}
}
