package provisioning_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/provisioning"
)

var bg = context.Background()

func TestOnlyHelloBeforeAuthentication(t *testing.T) {
	r := newRig(t)
	h, err := r.client.Hello(bg)
	if err != nil {
		t.Fatal(err)
	}
	if h.DeviceID != "wp-0123abcd" || h.Firmware != "test" || h.Facility != "" ||
		h.KeyFingerprint != identity.Fingerprint(r.devKey) || len(h.Challenge) != 32 {
		t.Fatalf("hello: %+v", h)
	}
	h2, _ := r.client.Hello(bg)
	if bytes.Equal(h.Challenge, h2.Challenge) {
		t.Fatal("two hellos gave the same challenge")
	}
	for _, c := range []struct {
		name string
		typ  byte
		req  any
	}{
		{"status", provisioning.TypeStatus, nil},
		{"selftest", provisioning.TypeSelftest, nil},
		{"logs", provisioning.TypeLogs, provisioning.Logs{Lines: 5}},
		{"put", provisioning.TypePut, provisioning.Put{Name: "sip.json", Total: 2, Data: []byte("{}")}},
		{"enroll", provisioning.TypeEnroll, provisioning.Enroll{Items: map[string]string{}}},
		{"reset", provisioning.TypeReset, provisioning.Reset{}},
		{"reboot", provisioning.TypeReboot, nil},
	} {
		err := r.client.Call(bg, c.typ, c.req, nil)
		wantCode(t, err, provisioning.CodeNotAuthenticated)
	}
	if resets, reboots, selftests, status := r.phone.counts(); resets+reboots+selftests+status != 0 {
		t.Fatalf("something ran before authentication: resets %d reboots %d selftests %d status %d", resets, reboots, selftests, status)
	}
	if got := confFiles(t, r.data); len(got) != 0 {
		t.Fatalf("conf written: %v", got)
	}
	if n := r.audit.count("console_refused"); n != 7 {
		t.Fatalf("%d refusals audited, want 7", n)
	}
}

func TestEnrollment(t *testing.T) {
	r := newRig(t)
	r.login()
	items := map[string][]byte{
		"recipients.txt": []byte("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\n"),
		"sip.json":       bytes.Repeat([]byte(" "), 5000), // several chunks
		"audit.key":      []byte(strings.Repeat("ab", 32)),
	}
	items["sip.json"] = append(items["sip.json"], []byte(`{"registrar":"sip.example"}`)...)
	total := 0
	for _, b := range items {
		total += len(b)
	}
	var calls, last int
	e, err := r.client.Enroll(bg, items, func(sent, total int) { calls++; last = sent })
	if err != nil {
		t.Fatal(err)
	}
	if calls < 5 || last != total {
		t.Fatalf("progress: %d calls, last %d", calls, last)
	}
	if e.Facility != "county-jail" || !slices.Equal(e.Installed, []string{"audit.key", "recipients.txt", "sip.json"}) {
		t.Fatalf("enrolled: %+v", e)
	}
	for name, want := range items {
		got, err := os.ReadFile(filepath.Join(r.data, "conf", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if fac, _ := os.ReadFile(filepath.Join(r.data, "conf", "facility")); string(fac) != "county-jail\n" {
		t.Fatalf("facility file %q", fac)
	}
	// The phone made its own key: the private half is in device.key, only the public half came back.
	kb, err := os.ReadFile(filepath.Join(r.data, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	if pub := key.Public().(ed25519.PublicKey); !pub.Equal(ed25519.PublicKey(e.DeviceKey)) || e.KeyFingerprint != identity.Fingerprint(pub) {
		t.Fatal("answer does not match the stored key")
	}
	if pub := key.Public().(ed25519.PublicKey); pub.Equal(r.devKey) {
		t.Fatal("key not replaced")
	}
	h, err := r.client.Hello(bg)
	if err != nil {
		t.Fatal(err)
	}
	if h.Facility != "county-jail" || h.KeyFingerprint != e.KeyFingerprint {
		t.Fatalf("hello after enrolment: %+v", h)
	}
	// A restarted console knows the facility from conf/.
	r.stop()
	r.newServer()
	r.connect()
	if h, _ := r.client.Hello(bg); h.Facility != "county-jail" {
		t.Fatalf("after restart: facility %q", h.Facility)
	}
	if r.audit.count("console_command") < 5 {
		t.Fatalf("audit: %v", r.audit.entries)
	}
}

func TestEnrollmentRefusals(t *testing.T) {
	r := newRig(t)
	r.login()
	_, err := r.client.Enroll(bg, map[string][]byte{"policy.json": []byte("{}")}, nil)
	wantCode(t, err, provisioning.CodeRefused)
	_, err = r.client.Enroll(bg, map[string][]byte{"recipients.txt": []byte("not a key")}, nil)
	e := wantCode(t, err, provisioning.CodeRefused)
	if !strings.Contains(e.Message, "not an age recipient") {
		t.Fatalf("message %q", e.Message)
	}
	// An enroll naming content other than what was uploaded.
	if err := r.client.Call(bg, provisioning.TypePut, provisioning.Put{Name: "sip.json", Total: 2, Data: []byte("{}")}, nil); err != nil {
		t.Fatal(err)
	}
	err = r.client.Call(bg, provisioning.TypeEnroll, provisioning.Enroll{Items: map[string]string{"sip.json": strings.Repeat("0", 64)}}, nil)
	wantCode(t, err, provisioning.CodeRefused)
	// The facility is the certificate's: enrolment never takes one from the wire.
	err = r.client.Call(bg, provisioning.TypePut, provisioning.Put{Name: "facility", Total: 5, Data: []byte("other")}, nil)
	wantCode(t, err, provisioning.CodeRefused)
	if got := confFiles(t, r.data); len(got) != 0 {
		t.Fatalf("refused enrolments wrote %v", got)
	}
	if _, err := os.Stat(filepath.Join(r.data, "device.key")); err == nil {
		t.Fatal("refused enrolment made a key")
	}
}

func TestCommands(t *testing.T) {
	r := newRig(t)
	r.login()
	st, err := r.client.Status(bg)
	if err != nil || st.SpoolSegments != 9 || len(st.Calls) != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	checks, err := r.client.Selftest(bg)
	if err != nil || len(checks) != 1 || !checks[0].OK {
		t.Fatalf("selftest %+v %v", checks, err)
	}
	lines, err := r.client.Logs(bg, 10)
	if err != nil || len(lines) != 3 {
		t.Fatalf("logs %q %v", lines, err)
	}
	for _, l := range lines {
		if strings.Contains(l, "555") || strings.Contains(l, "512") {
			t.Fatalf("a number left the phone: %q", l)
		}
	}
	if !strings.Contains(lines[1], "[number removed]") {
		t.Fatalf("line %q", lines[1])
	}
	// Times and call ids hold digit runs but no number: they reach the technician whole.
	if want := "2026-01-01T09:00:01Z INFO call started call_id=\"20260101T090001Z-8f3a91c2d4e5b6a7\""; lines[0] != want {
		t.Fatalf("line %q, want %q", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "09:00:02 ") || !strings.Contains(lines[2], `at="2026-01-01 09:00:03.25 +0000 UTC"`) {
		t.Fatalf("times mangled: %q", lines)
	}
	if err := r.client.Reboot(bg); err != nil {
		t.Fatal(err)
	}
	r.phone.waitDone(t)
	if _, reboots, _, _ := r.phone.counts(); reboots != 1 {
		t.Fatalf("reboots %d", reboots)
	}
	if err := r.client.Bye(bg); err != nil {
		t.Fatal(err)
	}
	_, err = r.client.Status(bg)
	wantCode(t, err, provisioning.CodeNotAuthenticated)
}

func TestIdleSessionEnds(t *testing.T) {
	r := newRig(t)
	r.login()
	r.clock.Advance(provisioning.IdleTimeout + time.Second)
	_, err := r.client.Status(bg)
	wantCode(t, err, provisioning.CodeNotAuthenticated)
}

func TestFactoryResetNeedsFreshConfirmation(t *testing.T) {
	r := newRig(t)
	r.login()
	resets := func() int { n, _, _, _ := r.phone.counts(); return n }
	// A nonce the phone never gave.
	err := r.client.Call(bg, provisioning.TypeReset, provisioning.Reset{Nonce: make([]byte, 16)}, nil)
	wantCode(t, err, provisioning.CodeRefused)
	// The first step only asks.
	var first provisioning.ResetAnswer
	if err := r.client.Call(bg, provisioning.TypeReset, provisioning.Reset{}, &first); err != nil {
		t.Fatal(err)
	}
	if first.Unsent != 2 || len(first.Nonce) != 16 || resets() != 0 {
		t.Fatalf("first step %+v, resets %d", first, resets())
	}
	// Too late.
	r.clock.Advance(2 * time.Minute)
	err = r.client.Call(bg, provisioning.TypeReset, provisioning.Reset{Nonce: first.Nonce}, nil)
	wantCode(t, err, provisioning.CodeRefused)
	// Declined.
	ok, err := r.client.Reset(bg, func(provisioning.ResetAnswer) bool { return false })
	if ok || err != nil || resets() != 0 {
		t.Fatalf("declined reset: %v %v, %d resets", ok, err, resets())
	}
	// Confirmed, and the nonce cannot be used twice.
	var nonce []byte
	ok, err = r.client.Reset(bg, func(a provisioning.ResetAnswer) bool { nonce = a.Nonce; return true })
	r.phone.waitDone(t)
	if !ok || err != nil || resets() != 1 {
		t.Fatalf("confirmed reset: %v %v, %d resets", ok, err, resets())
	}
	err = r.client.Call(bg, provisioning.TypeReset, provisioning.Reset{Nonce: nonce}, nil)
	wantCode(t, err, provisioning.CodeRefused)
	if resets() != 1 {
		t.Fatalf("%d resets", resets())
	}
}

// TestAuthRefusals: each way of getting in without a valid, current, own-facility
// credential answering a fresh challenge fails, on a phone of its own.
func TestAuthRefusals(t *testing.T) {
	cases := []struct {
		name    string
		want    string
		granted int // logins the case itself needs before its wrong one
		try     func(r *rig) error
	}{
		{"replayed answer", "does not verify", 0, func(r *rig) error {
			h, _ := r.client.Hello(bg)
			old := provisioning.Auth{Certificate: r.tech.cert, Signature: ed25519.Sign(r.tech.key, provisioning.AuthMessage(h.DeviceID, h.Challenge))}
			r.client.Hello(bg)
			_, err := r.client.AnswerChallenge(bg, old)
			return err
		}},
		{"challenge used twice", "no open challenge", 1, func(r *rig) error {
			h, _ := r.client.Hello(bg)
			a := provisioning.Auth{Certificate: r.tech.cert, Signature: ed25519.Sign(r.tech.key, provisioning.AuthMessage(h.DeviceID, h.Challenge))}
			if _, err := r.client.AnswerChallenge(bg, a); err != nil {
				r.t.Fatal(err)
			}
			_, err := r.client.AnswerChallenge(bg, a)
			return err
		}},
		{"challenge expired", "no open challenge", 0, func(r *rig) error {
			h, _ := r.client.Hello(bg)
			r.clock.Advance(provisioning.ChallengeTTL + time.Second)
			_, err := r.client.AnswerChallenge(bg, provisioning.Auth{Certificate: r.tech.cert, Signature: ed25519.Sign(r.tech.key, provisioning.AuthMessage(h.DeviceID, h.Challenge))})
			return err
		}},
		{"no hello", "no open challenge", 0, func(r *rig) error {
			_, err := r.client.AnswerChallenge(bg, provisioning.Auth{Certificate: r.tech.cert, Signature: make([]byte, 64)})
			return err
		}},
		{"signed for another phone", "does not verify", 0, func(r *rig) error {
			h, _ := r.client.Hello(bg)
			_, err := r.client.AnswerChallenge(bg, provisioning.Auth{Certificate: r.tech.cert, Signature: ed25519.Sign(r.tech.key, provisioning.AuthMessage("wp-other", h.Challenge))})
			return err
		}},
		{"expired certificate", "expired", 0, func(r *rig) error {
			tc := r.home.issue(r.t, "Old", epoch.Add(-60*24*time.Hour), epoch.Add(-time.Second))
			_, _, err := r.client.Authenticate(bg, tc.cert, tc.key)
			return err
		}},
		{"certificate not yet valid", "not valid yet", 0, func(r *rig) error {
			tc := r.home.issue(r.t, "Early", epoch.Add(time.Hour), epoch.Add(48*time.Hour))
			_, _, err := r.client.Authenticate(bg, tc.cert, tc.key)
			return err
		}},
		{"other facility on an enrolled phone", "another facility", 1, func(r *rig) error {
			r.enrollAs(r.home)
			// state-prison's key is trusted on unenrolled phones; this phone is county-jail's.
			other := newFacility(r.t, "state-prison")
			r.writeTrust(r.home.trustLine() + "\n" + other.trustLine() + "\n")
			tc := other.issue(r.t, "Visitor", epoch.Add(-time.Hour), epoch.Add(time.Hour))
			_, _, err := r.client.Authenticate(bg, tc.cert, tc.key)
			return err
		}},
		{"signed by an unknown key", "not signed by a provisioning key", 0, func(r *rig) error {
			tc := newFacility(r.t, "county-jail").issue(r.t, "Forger", epoch.Add(-time.Hour), epoch.Add(time.Hour))
			_, _, err := r.client.Authenticate(bg, tc.cert, tc.key)
			return err
		}},
		{"facility's key signing for another facility", "not signed by a provisioning key", 0, func(r *rig) error {
			// A key trusted for state-prison must not vouch for county-jail.
			sp := newFacility(r.t, "state-prison")
			r.writeTrust(sp.trustLine() + "\n")
			tc := facility{id: "county-jail", key: sp.key}.issue(r.t, "Crosser", epoch.Add(-time.Hour), epoch.Add(time.Hour))
			_, _, err := r.client.Authenticate(bg, tc.cert, tc.key)
			return err
		}},
		{"wrong technician key", "does not verify", 0, func(r *rig) error {
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			_, _, err := r.client.Authenticate(bg, r.tech.cert, other)
			return err
		}},
		{"altered certificate", "not signed by a provisioning key", 0, func(r *rig) error {
			tampered := tamperName(r.t, r.tech.cert)
			_, _, err := r.client.Authenticate(bg, tampered, r.tech.key)
			return err
		}},
		{"garbage certificate", "certificate unreadable", 0, func(r *rig) error {
			_, _, err := r.client.Authenticate(bg, []byte("-----BEGIN CERTIFICATE-----"), r.tech.key)
			return err
		}},
		{"no trust file", "trust file unreadable", 0, func(r *rig) error {
			os.Remove(r.trust)
			_, _, err := r.client.Authenticate(bg, r.tech.cert, r.tech.key)
			return err
		}},
		{"empty trust file", "trusts no provisioning key", 0, func(r *rig) error {
			r.writeTrust("# nobody\n")
			_, _, err := r.client.Authenticate(bg, r.tech.cert, r.tech.key)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			err := c.try(r)
			e := wantCode(t, err, provisioning.CodeAuthFailed)
			if !strings.Contains(e.Message, c.want) {
				t.Fatalf("message %q, want %q", e.Message, c.want)
			}
			_, err = r.client.Status(bg)
			wantCode(t, err, provisioning.CodeNotAuthenticated)
			if r.audit.count("console_auth_failed") != 1 || r.audit.count("console_auth_ok") != c.granted {
				t.Fatalf("audit: %v", r.audit.entries)
			}
			if n, _, _ := r.db.ConsoleFailures(); n != 1 {
				t.Fatalf("failures stored: %d", n)
			}
		})
	}
}

// enrollAs enrols the rig's phone through the console with the facility's technician, and
// logs out.
func (r *rig) enrollAs(f facility) {
	r.t.Helper()
	tc := f.issue(r.t, "Enroller", epoch.Add(-time.Hour), epoch.Add(time.Hour))
	if _, _, err := r.client.Authenticate(bg, tc.cert, tc.key); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.client.Enroll(bg, map[string][]byte{"audit.key": []byte("k")}, nil); err != nil {
		r.t.Fatal(err)
	}
	r.client.Bye(bg)
}

func TestBackoffThenLockSurvivesRestart(t *testing.T) {
	r := newRig(t)
	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		_, _, err := r.client.Authenticate(bg, r.tech.cert, wrong)
		if e := wantCode(t, err, provisioning.CodeAuthFailed); e.RetryAfter != wait {
			t.Fatalf("failure %d: retry after %s, want %s", i+1, e.RetryAfter, wait)
		}
		// Even the right credential waits out the backoff.
		_, _, err = r.client.Authenticate(bg, r.tech.cert, r.tech.key)
		wantCode(t, err, provisioning.CodeBackoff)
		r.clock.Advance(wait)
	}
	_, _, err := r.client.Authenticate(bg, r.tech.cert, wrong)
	if e := wantCode(t, err, provisioning.CodeLocked); e.RetryAfter != provisioning.LockFor {
		t.Fatalf("locked for %s", e.RetryAfter)
	}
	r.clock.Advance(provisioning.LockFor - time.Second)
	// A restart does not lift the lock.
	r.stop()
	r.newServer()
	r.connect()
	_, _, err = r.client.Authenticate(bg, r.tech.cert, r.tech.key)
	wantCode(t, err, provisioning.CodeLocked)
	r.clock.Advance(time.Second)
	r.login()
	if n, _, _ := r.db.ConsoleFailures(); n != 0 {
		t.Fatalf("failures after a good login: %d", n)
	}
	if r.audit.count("console_locked") != 1 {
		t.Fatalf("audit: %v", r.audit.entries)
	}
}

func TestThousandWrongAttemptsEndLocked(t *testing.T) {
	r := newRig(t)
	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	imposter := newFacility(t, "county-jail").issue(t, "Imposter", epoch.Add(-time.Hour), epoch.Add(time.Hour))
	tries := []func() error{
		func() error { _, _, err := r.client.Authenticate(bg, r.tech.cert, wrong); return err },
		func() error { _, _, err := r.client.Authenticate(bg, imposter.cert, imposter.key); return err },
		func() error {
			_, err := r.client.AnswerChallenge(bg, provisioning.Auth{Certificate: r.tech.cert, Signature: make([]byte, 64)})
			return err
		},
	}
	codes := map[string]int{}
	for i := range 1000 {
		err := tries[i%len(tries)]()
		var e *provisioning.Error
		if !errors.As(err, &e) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		codes[e.Code]++
		if i%10 == 0 {
			if _, err := r.client.Status(bg); err == nil {
				t.Fatalf("attempt %d: status granted", i+1)
			}
		}
		r.clock.Advance(30 * time.Second)
	}
	if codes[provisioning.CodeLocked] == 0 || codes[provisioning.CodeAuthFailed] != provisioning.LockAfter-1 {
		t.Fatalf("codes: %v", codes)
	}
	// Locked at the end, even for the right technician; nothing was granted.
	_, _, err := r.client.Authenticate(bg, r.tech.cert, r.tech.key)
	wantCode(t, err, provisioning.CodeLocked)
	if n := r.audit.count("console_auth_ok"); n != 0 {
		t.Fatalf("%d logins granted", n)
	}
	if n := r.audit.count("console_auth_failed"); n != 1001 {
		t.Fatalf("%d failures audited, want 1001", n)
	}
	if resets, reboots, selftests, status := r.phone.counts(); resets+reboots+selftests+status != 0 {
		t.Fatal("a command ran")
	}
}

func TestWrongTypesAndFields(t *testing.T) {
	r := newRig(t)
	r.login()
	err := r.client.Call(bg, 0x42, nil, nil)
	wantCode(t, err, provisioning.CodeBadRequest)
	err = r.client.Call(bg, provisioning.TypeLogs, map[string]any{"lines": 5, "rm": "-rf"}, nil)
	wantCode(t, err, provisioning.CodeBadRequest)
	err = r.client.Call(bg, provisioning.TypePut, provisioning.Put{Name: "../device.key", Total: 1, Data: []byte("x")}, nil)
	wantCode(t, err, provisioning.CodeBadRequest)
	if _, err := r.client.Status(bg); err != nil {
		t.Fatalf("session did not go on: %v", err)
	}
}

// A lock stored by a clock that ran ahead (or read by one set back) lasts at most MaxLock.
func TestLockNeverLongerThanMaxLock(t *testing.T) {
	r := newRig(t)
	if err := r.db.SetConsoleFailures(9, epoch.AddDate(5, 0, 0)); err != nil {
		t.Fatal(err)
	}
	_, _, err := r.client.Authenticate(bg, r.tech.cert, r.tech.key)
	if e := wantCode(t, err, provisioning.CodeLocked); e.RetryAfter != provisioning.MaxLock {
		t.Fatalf("retry after %s", e.RetryAfter)
	}
	r.clock.Advance(provisioning.MaxLock)
	r.login()
}

// The refusals say what happened: a wrong credential says why and how many attempts are
// left before the lock, the wait after it is not called a lock, and only a lock says locked.
func TestSignInMessagesSayWhatHappened(t *testing.T) {
	r := newRig(t)
	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	_, _, err := r.client.Authenticate(bg, r.tech.cert, wrong)
	e := wantCode(t, err, provisioning.CodeAuthFailed)
	first := e.Message
	for _, want := range []string{"signature", fmt.Sprintf("%d attempts left before the console locks", provisioning.LockAfter-1)} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("first failure: %q, want %q", e.Message, want)
		}
	}
	_, _, err = r.client.Authenticate(bg, r.tech.cert, r.tech.key)
	e = wantCode(t, err, provisioning.CodeBackoff)
	if want := fmt.Sprintf("1 failed attempt in a row; %d left before the console locks", provisioning.LockAfter-1); !strings.Contains(e.Message, want) {
		t.Errorf("backoff: %q, want %q", e.Message, want)
	}
	for i, m := range []string{first, e.Message} {
		if strings.Contains(m, "too many") || strings.Contains(m, "locked") {
			t.Errorf("message %d before the lock: %q", i, m)
		}
	}
	wait := time.Second
	for n := 2; n < provisioning.LockAfter; n++ {
		r.clock.Advance(wait)
		_, _, err = r.client.Authenticate(bg, r.tech.cert, wrong)
		e = wantCode(t, err, provisioning.CodeAuthFailed)
		if want := fmt.Sprintf("%d attempts left", provisioning.LockAfter-n); n < provisioning.LockAfter-1 && !strings.Contains(e.Message, want) {
			t.Errorf("failure %d: %q, want %q", n, e.Message, want)
		}
		wait = e.RetryAfter
	}
	if !strings.Contains(e.Message, "1 attempt left before the console locks") {
		t.Errorf("last failure before the lock: %q", e.Message)
	}
	r.clock.Advance(wait)
	_, _, err = r.client.Authenticate(bg, r.tech.cert, wrong)
	e = wantCode(t, err, provisioning.CodeLocked)
	if want := fmt.Sprintf("the console is locked after %d failed attempts in a row", provisioning.LockAfter); !strings.Contains(e.Message, want) || !strings.Contains(e.Message, "signature") {
		t.Errorf("locking failure: %q, want the reason and %q", e.Message, want)
	}
	_, _, err = r.client.Authenticate(bg, r.tech.cert, r.tech.key)
	e = wantCode(t, err, provisioning.CodeLocked)
	if want := fmt.Sprintf("locked after %d failed attempts in a row", provisioning.LockAfter); !strings.Contains(e.Message, want) {
		t.Errorf("locked: %q, want %q", e.Message, want)
	}
	if !strings.Contains(e.Error(), "try again in 15m0s") {
		t.Errorf("locked: %q does not say for how long", e.Error())
	}
	r.clock.Advance(provisioning.LockFor)
}
