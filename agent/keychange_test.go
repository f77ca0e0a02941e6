package agent

import (
	"bufio"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/identity"
)

// TestEnrolmentKeyChangeCutShort: enrolment stages the new device key, records the change in
// the audit log, then puts the key in place. A power cut between any two steps leaves a phone
// whose audit log still verifies from its first key: start-up finishes a change the log
// recorded, and drops one it did not.
func TestEnrolmentKeyChangeCutShort(t *testing.T) {
	for _, tc := range []struct {
		name     string
		recorded bool // the audit log recorded the change before the cut
	}{
		{"after the log recorded the change", true},
		{"before the log recorded the change", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, _ := enrolled(t)
			var log syncBuffer
			a, _ := newAgent(t, data, &log, nil)
			first := a.key.Public().(ed25519.PublicKey)
			a.Close()

			staged := filepath.Join(data, "device.key.new")
			next, err := identity.Create(staged)
			if err != nil {
				t.Fatal(err)
			}
			if tc.recorded {
				l, _, err := audit.Open(filepath.Join(data, "audit.log"), audit.Options{Key: a.key})
				if err != nil {
					t.Fatal(err)
				}
				if err := l.ChangeKey(next); err != nil {
					t.Fatal(err)
				}
				l.Close()
			}
			// The power comes back.
			log.Reset()
			a, _ = newAgent(t, data, &log, nil)
			a.Close()
			want := first
			if tc.recorded {
				want = next.Public().(ed25519.PublicKey)
			}
			if !a.key.Public().(ed25519.PublicKey).Equal(want) {
				t.Errorf("device key %s, want %s", identity.Fingerprint(a.key.Public().(ed25519.PublicKey)), identity.Fingerprint(want))
			}
			if _, err := os.Stat(staged); err == nil {
				t.Error("the staged key is still there")
			}
			f, err := os.Open(filepath.Join(data, "audit.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := audit.Verify(bufio.NewReader(f), first); err != nil {
				t.Fatalf("the audit log does not verify from the phone's first key: %v", err)
			}
			if !strings.Contains(log.String(), `"event":"device_key_change_finished"`) && tc.recorded ||
				!strings.Contains(log.String(), `"event":"device_key_change_dropped"`) && !tc.recorded {
				t.Errorf("the log does not say what start-up did:\n%s", log.String())
			}
		})
	}
}

// TestNewKeyInForceAfterEnrolment: the key an enrolment makes is the phone's at once, for
// everything it signs (manifests, purge requests), from the next idle moment: not only after
// a restart, while the audit log already signs with it.
func TestNewKeyInForceAfterEnrolment(t *testing.T) {
	data, _ := enrolled(t)
	var log syncBuffer
	a, _ := newAgent(t, data, &log, nil)
	t.Cleanup(func() { a.Close() })
	next, err := identity.Create(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	// What the console's enrolment does with the audit log it was given.
	if err := (consoleAudit{a}).ChangeKey(next); err != nil {
		t.Fatal(err)
	}
	a.between(idle(false), a.clock.Now())
	if a.key.Equal(next) {
		t.Fatal("the key changed under a call in progress")
	}
	a.between(idle(true), a.clock.Now())
	if !a.key.Equal(next) {
		t.Fatal("the enrolled key is not in force once idle")
	}
	if !strings.Contains(log.String(), `"event":"device_key_in_force"`) {
		t.Errorf("the log does not say so:\n%s", log.String())
	}
}
