package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.bug.st/serial"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/recording/recipients"
	"github.com/wallphone/wallphone/trunk/siptrunk"
	"github.com/wallphone/wallphone/uplink"
)

// console is the provisioning console beside the call loop. It runs on its own goroutine and
// touches only what is safe to share with the call loop (the state database, the spool's
// counters, what was loaded at start), so nothing it does can hold up a call.
type console struct {
	cfg    config
	a      *agent
	log    *slog.Logger
	ring   *logRing
	stopFn context.CancelFunc // ends the agent: a reset or reboot asked on the console
	// reset is set when a technician confirmed a factory reset: the data directory is wiped
	// once the agent has closed it.
	reset atomic.Bool

	cancel context.CancelFunc
	done   chan struct{}
}

// startConsole serves the console on cfg.console, if set, until stop. stopAgent is called
// for a reset or a reboot.
func startConsole(ctx context.Context, cfg config, a *agent, ring *logRing, log *slog.Logger, stopAgent context.CancelFunc) (*console, error) {
	c := &console{cfg: cfg, a: a, log: log, ring: ring, stopFn: stopAgent, done: make(chan struct{})}
	if err := writeDemoProvisioning(cfg, log); err != nil {
		return nil, err
	}
	if cfg.console == "" {
		close(c.done)
		return c, nil
	}
	srv, err := provisioning.NewServer(provisioning.Config{
		DeviceID: a.deviceID, Firmware: firmwareVersion(), DataDir: cfg.dataDir,
		DeviceKey: a.key.Public().(ed25519.PublicKey), TrustFile: cfg.provisioningPub,
		Validators: confValidators(), Locks: lockedStore{a}, Audit: a.audit, Phone: agentPhone{cfg: cfg, a: a, ring: ring},
		Reset: func() error {
			log.Warn("factory reset confirmed on the console: the agent stops and wipes its keys, configuration, state and spool", "event", "console_reset")
			c.reset.Store(true)
			stopAgent()
			return nil
		},
		Reboot: func() error {
			log.Warn("restart asked on the console: the agent stops (its service manager starts it again)", "event", "console_reboot")
			stopAgent()
			return nil
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ctx, c.cancel = context.WithCancel(ctx)
	go c.run(ctx, srv)
	return c, nil
}

// run opens the port and serves it, again after every failure (a cable pulled, an adapter
// unplugged), until ctx is done.
func (c *console) run(ctx context.Context, srv *provisioning.Server) {
	defer close(c.done)
	const retry = 2 * time.Second
	logged := false
	for ctx.Err() == nil {
		port, err := serial.Open(c.cfg.console, &serial.Mode{BaudRate: c.cfg.consoleBaud})
		if err != nil {
			if !logged {
				c.log.Error("console port unavailable; trying again", "event", "console_error", "port", c.cfg.console, "err", err)
				logged = true
			}
		} else {
			logged = false
			c.log.Info("console listening", "event", "console_open", "port", c.cfg.console, "baud", c.cfg.consoleBaud)
			stop := context.AfterFunc(ctx, func() { port.Close() })
			err = srv.Serve(ctx, port)
			stop()
			port.Close()
			if err != nil {
				c.log.Warn("console line lost; opening it again", "event", "console_error", "port", c.cfg.console, "err", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// stop ends the console and waits for it.
func (c *console) stop() {
	if c.cancel != nil {
		c.cancel()
	}
	<-c.done
}

// afterClose wipes the data directory if a factory reset was confirmed; the agent has
// closed everything in it by now.
func (c *console) afterClose() error {
	if !c.reset.Load() {
		return nil
	}
	var errs []error
	// The key first: without it nothing the phone signed can be made again.
	for _, name := range []string{"device.key", "conf", "state.db", "spool", "installed", "tuf", "audit.log", "uplink.db"} {
		if err := os.RemoveAll(filepath.Join(c.cfg.dataDir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, atomicfile.SyncDir(c.cfg.dataDir))
	err := errors.Join(errs...)
	if err != nil {
		c.log.Error("factory reset incomplete", "event", "console_reset", "err", err)
		return err
	}
	c.log.Info("factory reset done: keys, configuration, state and spool wiped", "event", "console_reset")
	return nil
}

func firmwareVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// confValidators are the items an enrolment may install in <data>/conf/, each checked by the
// parser of the package that reads it, so a technician hears of a bad item at the phone.
func confValidators() map[string]func([]byte) error {
	return map[string]func([]byte) error{
		"root.json":       validRoot,
		"repository.json": func(b []byte) error { _, err := parseRepository(b); return err },
		"vault.json":      func(b []byte) error { _, err := uplink.ParseConfig(b); return err },
		"sip.json":        func(b []byte) error { _, err := siptrunk.Parse(b); return err },
		"recipients.txt":  func(b []byte) error { _, err := recipients.ParseFile(b); return err },
		"audit.key":       func(b []byte) error { _, err := audit.ParseKey(b); return err },
	}
}

// agentPhone is what the console reads from the agent.
type agentPhone struct {
	cfg  config
	a    *agent
	ring *logRing
}

// recentCalls is how many calls status lists.
const recentCalls = 10

func (p agentPhone) Status(context.Context) (provisioning.Status, error) {
	// The file, not the agent's copy: an enrolment during this run has just rewritten it.
	fac, _ := provisioning.ReadFacility(p.cfg.dataDir)
	u := p.a.spool.Usage()
	rules := p.a.rules(time.Now())
	st := provisioning.Status{
		DeviceID: p.a.deviceID, Facility: fac,
		PolicyVersion: rules.policyVersion, RegistryVersion: rules.registryVersion, RegistryAge: rules.freshness,
		SpoolSegments: u.Segments, SpoolCalls: u.Calls, SpoolBytes: u.Bytes,
		Uplink: "not configured (no conf/vault.json)",
	}
	if exists(filepath.Join(p.cfg.dataDir, "conf", "vault.json")) {
		st.Uplink = "configured (conf/vault.json); the phone's status object in the vault says how the drain goes"
	}
	var calls []provisioning.CallSummary
	err := lockedStore{p.a}.Calls(func(_ string, b []byte) error {
		r, err := callrecord.Parse(b)
		if err != nil {
			return nil
		}
		// Only what says how the phone behaved: never the number, never the caller.
		calls = append(calls, provisioning.CallSummary{CallID: r.CallID, Started: r.Started,
			Duration: r.Ended.Sub(r.Started), Decision: r.Decision, Recorded: r.Recorded, EndReason: r.EndReason})
		return nil
	})
	slices.SortFunc(calls, func(x, y provisioning.CallSummary) int { return x.Started.Compare(y.Started) })
	if len(calls) > recentCalls {
		calls = calls[len(calls)-recentCalls:]
	}
	st.Calls = calls
	return st, err
}

// Selftest checks what can be checked with nobody at the handset; the full test with keys,
// hook and audio is wallphoned selftest, run at the phone.
func (p agentPhone) Selftest(context.Context) ([]provisioning.Check, error) {
	var checks []provisioning.Check
	add := func(name string, err error, ok string) {
		c := provisioning.Check{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			c.Detail = err.Error()
		}
		checks = append(checks, c)
	}
	add("board", nil, fmt.Sprintf("%s: keypad, hook switch and handset open", p.cfg.board))
	tmp := filepath.Join(p.cfg.dataDir, ".selftest")
	err := atomicfile.Write(tmp, []byte("ok"), 0o600)
	if err == nil {
		err = os.Remove(tmp)
	}
	add("data directory writable", err, p.cfg.dataDir)
	_, err = lockedStore{p.a}.DeviceID()
	add("state database", err, "readable")
	add("spool", p.a.spool.CanRecord(), "room for a recorded call")
	rules := p.a.rules(time.Now())
	var polErr, regErr error
	if rules.policyVersion == 0 {
		polErr = errors.New("no verified policy: the phone is out of service")
	}
	add("policy", polErr, fmt.Sprintf("version %d", rules.policyVersion))
	if rules.registryVersion == 0 {
		regErr = errors.New("no verified registry: only free numbers connect")
	}
	add("registry", regErr, fmt.Sprintf("version %d, %s", rules.registryVersion, rules.freshness))
	return checks, nil
}

func (p agentPhone) Logs(n int) []string { return p.ring.last(n) }

// logRing keeps the agent's last log lines for the console; the attributes that can hold a
// dialed number are left out, and the console removes anything number-like besides.
type logRing struct {
	mu    sync.Mutex // guards lines and next
	lines []string
	next  int
}

const ringSize = 200

// numberKeys are the log attributes that can hold a dialed number.
var numberKeys = map[string]bool{"number": true, "to": true, "dialed": true, "e164": true, "callee": true, "digits": true}

// withRing returns a logger that writes to log's handler and keeps lines in a ring.
func withRing(log *slog.Logger) (*slog.Logger, *logRing) {
	r := &logRing{}
	return slog.New(ringHandler{next: log.Handler(), ring: r}), r
}

func (r *logRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < ringSize {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % ringSize
}

func (r *logRing) last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := append(slices.Clone(r.lines[r.next:]), r.lines[:r.next]...)
	return all[max(0, len(all)-n):]
}

type ringHandler struct {
	next  slog.Handler
	ring  *logRing
	attrs []slog.Attr
}

func (h ringHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ringHandler{next: h.next.WithAttrs(as), ring: h.ring, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h ringHandler) WithGroup(name string) slog.Handler {
	return ringHandler{next: h.next.WithGroup(name), ring: h.ring, attrs: h.attrs}
}

func (h ringHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Time.UTC().Format(time.TimeOnly))
	b.WriteString(" " + r.Level.String() + " " + r.Message)
	add := func(a slog.Attr) bool {
		if a.Key == "event" || numberKeys[a.Key] {
			return true
		}
		fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.ring.add(b.String())
	return h.next.Handle(ctx, r)
}

// demoFacility is the facility of the demo provisioning key: the demo facility the simulated
// phone is enrolled in.
const demoFacility = policy.DemoFacility

// writeDemoProvisioning gives the simulated phone a demo facility provisioning key, its
// trust file and a technician key with a certificate valid for a year, in the demo keys
// directory (never the data directory), so that the console can be tried at once. Like the
// demo policy, it is written only for the sim board with the default trust file.
func writeDemoProvisioning(cfg config, log *slog.Logger) error {
	if cfg.board != "sim" || cfg.boardFile != "" || cfg.provisioningPub != filepath.Join(cfg.demoKeys, "provisioning.pub") || exists(cfg.provisioningPub) {
		return nil
	}
	if err := os.MkdirAll(cfg.demoKeys, 0o700); err != nil {
		return fmt.Errorf("demo keys: %w", err)
	}
	_, prov, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	techPub, tech, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	cert, err := provisioning.IssueCertificate(provisioning.CertBody{Serial: 1, Name: "Demo Technician", Facility: demoFacility,
		PublicKey: techPub, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)}, prov)
	if err != nil {
		return err
	}
	provPEM, err := identity.MarshalPrivateKey(prov)
	if err != nil {
		return err
	}
	techPEM, err := identity.MarshalPrivateKey(tech)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"provisioning.key", provPEM},
		{"technician.key", techPEM},
		{"technician.cert", cert},
		// Last: its presence says the demo is complete.
		{"provisioning.pub", []byte(provisioning.PublicKeyLine(demoFacility, prov.Public().(ed25519.PublicKey)) + "\n")},
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(cfg.demoKeys, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("demo provisioning: %w", err)
		}
	}
	log.Info("wrote demo provisioning key and technician certificate (keep them off the phone)", "event", "demo_written", "dir", cfg.demoKeys)
	return nil
}
