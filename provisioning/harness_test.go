package provisioning_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"github.com/wallphone/wallphone/provisioning/ptytest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/store"
)

// clock is a fake clock the test moves by hand.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// auditLog records every entry.
type auditLog struct {
	mu         sync.Mutex // guards entries and failChange
	entries    []string
	failChange error // what ChangeKey returns, if not nil
}

func (a *auditLog) ChangeKey(next ed25519.PrivateKey) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failChange != nil {
		return a.failChange
	}
	a.entries = append(a.entries, "device_key_changed "+identity.Fingerprint(next.Public().(ed25519.PublicKey)))
	return nil
}

func (a *auditLog) Append(kind string, fields map[string]string) error {
	b, _ := json.Marshal(fields)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, kind+" "+string(b))
	return nil
}

func (a *auditLog) count(prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.entries {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// phone is the agent as the console sees it; it counts what it was asked to do.
type phone struct {
	mu               sync.Mutex // guards the counters
	resets, reboots  int
	selftests, state int
	done             chan struct{}
}

func (p *phone) Status(context.Context) (provisioning.Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state++
	return provisioning.Status{DeviceID: "wp-test", SpoolCalls: 2, SpoolSegments: 9, Uplink: "not configured",
		Calls: []provisioning.CallSummary{{CallID: "c1", Decision: "recorded", Recorded: true}}}, nil
}

func (p *phone) Selftest(context.Context) ([]provisioning.Check, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.selftests++
	return []provisioning.Check{{Name: "keypad", OK: true}}, nil
}

func (p *phone) Logs(n int) []string {
	return []string{"2026-01-01T09:00:01Z INFO call started call_id=\"20260101T090001Z-8f3a91c2d4e5b6a7\"",
		"09:00:02 dialed +1 (512) 555-0100 privileged", "09:00:03 call ended at=\"2026-01-01 09:00:03.25 +0000 UTC\""}[:min(n, 3)]
}

// did counts a reset or reboot and tells waitDone.
func (p *phone) did(n *int) {
	p.mu.Lock()
	*n++
	p.mu.Unlock()
	p.done <- struct{}{}
}

// waitDone waits for a reset or reboot, which runs once its answer is on the wire.
func (p *phone) waitDone(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no reset or reboot")
	}
}

func (p *phone) counts() (resets, reboots, selftests, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resets, p.reboots, p.selftests, p.state
}

// facility is a provisioning key and the certificates it issues.
type facility struct {
	id  string
	key ed25519.PrivateKey
}

func newFacility(t testing.TB, id string) facility {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return facility{id: id, key: k}
}

func (f facility) trustLine() string {
	return provisioning.PublicKeyLine(f.id, f.key.Public().(ed25519.PublicKey))
}

// technician is a key and a certificate for it.
type technician struct {
	key  ed25519.PrivateKey
	cert []byte
}

func (f facility) issue(t testing.TB, name string, from, to time.Time) technician {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := provisioning.IssueCertificate(provisioning.CertBody{
		Serial: 7, Name: name, Facility: f.id, PublicKey: pub, NotBefore: from, NotAfter: to,
	}, f.key)
	if err != nil {
		t.Fatal(err)
	}
	return technician{key: key, cert: cert}
}

var epoch = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)

// rig is a phone's console on the slave end of a real pseudo-terminal, opened as a serial
// port, and a technician's client on the master end.
type rig struct {
	t       *testing.T
	data    string
	trust   string
	clock   *clock
	audit   *auditLog
	auditor provisioning.Auditor // the log the console writes to: audit, unless a test sets another
	phone   *phone
	db      *store.DB
	srv     *provisioning.Server
	devKey  ed25519.PublicKey
	home    facility
	tech    technician
	master  *os.File
	port    serial.Port
	client  *provisioning.Client
	cancel  context.CancelFunc
	served  chan error
	stopped bool
	// updater and after, if set before newServer, are the console's Updater and timer.
	updater provisioning.Updater
	after   func(time.Duration) <-chan time.Time
}

var validators = map[string]func([]byte) error{
	"recipients.txt": func(b []byte) error {
		if !strings.HasPrefix(string(b), "age1") {
			return errors.New("not an age recipient")
		}
		return nil
	},
	"sip.json": func(b []byte) error {
		var v map[string]any
		return json.Unmarshal(b, &v)
	},
	"audit.key": func([]byte) error { return nil },
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, data: t.TempDir(), clock: &clock{now: epoch}, audit: &auditLog{}, phone: &phone{done: make(chan struct{}, 10)}}
	r.auditor = r.audit
	r.home = newFacility(t, "county-jail")
	r.tech = r.home.issue(t, "Ana Tech", epoch.Add(-time.Hour), epoch.Add(30*24*time.Hour))
	r.trust = filepath.Join(t.TempDir(), "provisioning.pub")
	r.writeTrust("# demo\n" + r.home.trustLine() + "\n" + newFacility(t, "state-prison").trustLine() + "\n")
	db, err := store.Open(filepath.Join(r.data, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r.db = db
	r.devKey, _, _ = ed25519.GenerateKey(rand.Reader)
	r.newServer()
	r.connect()
	return r
}

func (r *rig) writeTrust(s string) {
	if err := os.WriteFile(r.trust, []byte(s), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// newServer makes the phone's console afresh, as after a restart.
func (r *rig) newServer() {
	srv, err := provisioning.NewServer(provisioning.Config{
		DeviceID: "wp-0123abcd", Firmware: "test", DataDir: r.data, DeviceKey: r.devKey,
		TrustFile: r.trust, Validators: validators, Locks: r.db, Audit: r.auditor, Phone: r.phone,
		Reset:   func() error { r.phone.did(&r.phone.resets); return nil },
		Reboot:  func() error { r.phone.did(&r.phone.reboots); return nil },
		Now:     r.clock.Now,
		Updater: r.updater, After: r.after,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
}

// connect opens a new pseudo-terminal pair and serves the console on it.
func (r *rig) connect() {
	t := r.t
	t.Helper()
	master, slave := ptytest.Open(t)
	port, err := serial.Open(slave.Name(), &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.master, r.port, r.cancel, r.served = master, port, cancel, make(chan error, 1)
	r.stopped = false
	go func() { r.served <- r.srv.Serve(ctx, port) }()
	r.client = provisioning.NewClient(master)
	r.client.Timeout = 5 * time.Second
	t.Cleanup(func() {
		r.stop()
		slave.Close()
	})
}

// stop ends the session from both ends and returns what Serve returned.
func (r *rig) stop() error {
	if r.stopped {
		return nil
	}
	r.stopped = true
	r.cancel()
	r.client.Close()
	r.port.Close()
	return <-r.served
}

func (r *rig) login() {
	r.t.Helper()
	if _, _, err := r.client.Authenticate(context.Background(), r.tech.cert, r.tech.key); err != nil {
		r.t.Fatalf("authenticate: %v", err)
	}
}

// wantCode checks that err is the phone's refusal with that code.
func wantCode(t *testing.T, err error, code string) *provisioning.Error {
	t.Helper()
	var e *provisioning.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got %v, want the phone's %q refusal", err, code)
	}
	return e
}

func confFiles(t *testing.T, data string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(data, "conf"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
