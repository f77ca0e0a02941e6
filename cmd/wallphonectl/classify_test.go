package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/provisioning"
)

// The technician reads what the phone said, without a lock claimed before there is one.
func TestClassifySignInRefusals(t *testing.T) {
	for _, c := range []struct {
		err     *provisioning.Error
		code    int
		want    string
		mustNot string
	}{
		{&provisioning.Error{Code: provisioning.CodeAuthFailed, Message: "challenge signature does not verify; 4 attempts left before the console locks", RetryAfter: time.Second},
			exitAuth, "refused: auth_failed: challenge signature does not verify; 4 attempts left before the console locks (try again in 1s)", "locked"},
		{&provisioning.Error{Code: provisioning.CodeBackoff, Message: "wait before the next attempt: 1 failed attempt in a row; 4 left before the console locks", RetryAfter: time.Second},
			exitLocked, "not signed in: backoff: wait before the next attempt", "locked"},
		{&provisioning.Error{Code: provisioning.CodeLocked, Message: "the console is locked after 5 failed attempts in a row", RetryAfter: 15 * time.Minute},
			exitLocked, "not signed in: locked: the console is locked after 5 failed attempts in a row (try again in 15m0s)", "locked: locked"},
	} {
		err := classify(c.err)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != c.code {
			t.Errorf("%s: %v, want exit status %d", c.err.Code, err, c.code)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, c.mustNot) {
			t.Errorf("%s: %q, want %q and not %q", c.err.Code, msg, c.want, c.mustNot)
		}
	}
}
