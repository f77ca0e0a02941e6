package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/trunk/siptrunk"
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

// silentTrunk places no calls and cannot say how it stands.
type silentTrunk struct{}

func (silentTrunk) Dial(string) (trunk.Leg, error) { return nil, siptrunk.ErrNoAccount }

// The console's status says whether calls can be placed and, if not, why, as the trunk tells
// it: the simulated called party; a SIP trunk without an account; one whose listen address
// another process holds, with the cause and the next attempt; nothing from a trunk that
// cannot say.
func TestStatusReportsTrunk(t *testing.T) {
	data, _ := enrolled(t)
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	conf := filepath.Join(t.TempDir(), "sip.json")
	os.WriteFile(conf, fmt.Appendf(nil, `{"server": "127.0.0.1:5060", "user": "wall-1", "listen": %q}`, busy.LocalAddr()), 0o600)
	noAccount, stop := siptrunk.OpenFile(filepath.Join(t.TempDir(), "sip.json"), nil)
	defer stop()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	notStarted, stop := siptrunk.Open(conf, siptrunk.FileOptions{
		After: func(time.Duration) <-chan time.Time { return nil }, // the retry never comes
		Now:   func() time.Time { return now },
	})
	defer stop()
	for _, tc := range []struct {
		name string
		tr   trunk.Trunk // nil: the simulated called party
		want []string
	}{
		{"simulated", nil, []string{"simulated called party"}},
		{"no account", noAccount, []string{"no account (sip.json not installed)"}},
		{"port taken", notStarted, []string{"not started: sip listen: ", busy.LocalAddr().String(),
			"address already in use; retrying in "}},
		{"silent", silentTrunk{}, nil},
	} {
		a, _ := newAgent(t, data, &syncBuffer{}, func(c *Config) {
			if tc.tr != nil {
				c.Trunk = tc.tr
			}
		})
		st, err := agentPhone{a}.Status(context.Background())
		a.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.want == nil && st.SIP != "" {
			t.Errorf("%s: sip %q, want nothing", tc.name, st.SIP)
		}
		for _, w := range tc.want {
			if !strings.Contains(st.SIP, w) {
				t.Errorf("%s: sip %q does not say %q", tc.name, st.SIP, w)
			}
		}
	}
}

// TestUplinkWithoutRecipients: a phone enrolled without recording recipients keeps its call
// records, and says why in words, not with an empty error.
func TestUplinkWithoutRecipients(t *testing.T) {
	var log syncBuffer
	vault := t.TempDir()
	a, _ := newAgent(t, t.TempDir(), &log, func(c *Config) { c.Vault = vault })
	t.Cleanup(func() { a.Close() })
	a.newUplink()
	if !strings.Contains(log.String(), "no recording recipients pinned at enrolment: call records stay on the phone") ||
		strings.Contains(log.String(), `"err":null`) {
		t.Fatalf("log:\n%s", log.String())
	}
}
