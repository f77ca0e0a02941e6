package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The console's logs command reads the ring: a dialed number logged under any of the keys
// that carry one never reaches it, whatever the agent's own log shows.
func TestLogRingLeavesNumbersOut(t *testing.T) {
	var out bytes.Buffer
	log, ring := withRing(slog.New(slog.NewJSONHandler(&out, nil)))
	log.Info("dialing", "event", "dial", "to", "+15125550100", "number", "+15125550100", "call_id", "c1")
	log.With("dialed", "5125550100").Info("decided", "decision", "privileged")
	got := ring.last(10)
	if len(got) != 2 || !strings.Contains(got[0], `call_id="c1"`) || !strings.Contains(got[1], `decision="privileged"`) {
		t.Fatalf("ring: %q", got)
	}
	for _, l := range got {
		if strings.Contains(l, "555") {
			t.Fatalf("number in the ring: %q", l)
		}
	}
	// Free text loses anything number-like; times and ids stay whole, so that a call seen on
	// the console can be matched to its recording.
	at := time.Date(2026, 1, 1, 9, 0, 5, 250e6, time.UTC)
	log.Warn("dial failed", "call_id", "20260101T090005Z-8f3a91c2d4e5b6a7", "at", at,
		"err", "no route to +1 (512) 555-0100", "limit", 15*time.Minute, "registry_version", 1234567)
	l := ring.last(1)[0]
	for _, want := range []string{`call_id="20260101T090005Z-8f3a91c2d4e5b6a7"`, `at="2026-01-01T09:00:05.25Z"`,
		`err="no route to [number removed]"`, `limit="15m0s"`, `registry_version="1234567"`} {
		if !strings.Contains(l, want) {
			t.Errorf("ring line %q lacks %s", l, want)
		}
	}
	if strings.Contains(l, "555") {
		t.Fatalf("number in the ring: %q", l)
	}
	// The agent's own log is untouched by the ring.
	if !strings.Contains(out.String(), "+15125550100") {
		t.Fatal("the wrapped handler lost attributes")
	}
	for i := range ringSize + 5 {
		log.Info("tick", "n", i)
	}
	lines := ring.last(ringSize + 10)
	if len(lines) != ringSize || !strings.Contains(lines[len(lines)-1], `n="204"`) || !strings.Contains(lines[0], `n="5"`) {
		t.Fatalf("ring holds %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}

func TestConfValidators(t *testing.T) {
	v := ConfValidators()
	for _, name := range []string{"root.json", "repository.json", "recipients.txt", "audit.key", "vault.json", "sip.json"} {
		if v[name] == nil {
			t.Errorf("no validator for %s", name)
		}
	}
	if len(v) != 6 {
		t.Errorf("%d items, want the 6 of the agreed list", len(v))
	}
	for _, c := range []struct {
		name string
		data string
		ok   bool
	}{
		{"sip.json", `{"server":"sip.county.example:5060","user":"wp1"}`, true},
		{"sip.json", `{"registrar":"x"}`, false},
		{"sip.json", `[1]`, false},
		{"repository.json", `{"url":"https://tuf.vendor.example/repo"}`, true},
		{"repository.json", `{"url":"ftp://x"}`, false},
		{"root.json", `{"signed":{}}`, false},
		{"vault.json", `{}`, false},
		{"recipients.txt", "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\n", true},
		{"recipients.txt", "ssh-ed25519 AAAA", false},
		{"audit.key", strings.Repeat("ab", 32), true},
		{"audit.key", "abc", false},
	} {
		if err := v[c.name]([]byte(c.data)); (err == nil) != c.ok {
			t.Errorf("%s %q: %v", c.name, c.data, err)
		}
	}
}

func TestResetWipesOnlyWhenConfirmed(t *testing.T) {
	data := t.TempDir()
	for _, p := range []string{"device.key", "state.db", "policy.json", "conf/sip.json", "spool/x/000000.age"} {
		os.MkdirAll(filepath.Dir(filepath.Join(data, p)), 0o700)
		os.WriteFile(filepath.Join(data, p), []byte("x"), 0o600)
	}
	c := &console{a: &Agent{cfg: Config{DataDir: data}, log: slog.New(slog.DiscardHandler)}}
	if err := c.afterClose(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "device.key")); err != nil {
		t.Fatal("wiped without a confirmed reset")
	}
	c.reset.Store(true)
	if err := c.afterClose(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"device.key", "state.db", "conf", "spool"} {
		if _, err := os.Stat(filepath.Join(data, p)); !os.IsNotExist(err) {
			t.Errorf("%s survived the reset", p)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "policy.json")); err != nil {
		t.Error("the reset removed the policy, which it does not own")
	}
}
