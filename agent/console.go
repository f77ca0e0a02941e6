package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"go.bug.st/serial"

	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/provisioning"
)

// console is the provisioning console beside the call loop. It runs on its own goroutine and
// touches only what is safe to share with the call loop (the state database, the spool's
// counters, what was loaded at start), so nothing it does can hold up a call.
type console struct {
	a   *Agent
	srv *provisioning.Server // nil: no console port
	// reset is set when a technician confirmed a factory reset: the data directory is wiped
	// once the agent has closed it.
	reset atomic.Bool
}

// consoleRetry is how long a console port that failed waits before it is opened again.
const consoleRetry = 2 * time.Second

// newConsole prepares the console on Config.Console, if set. stop ends the agent: a reset
// or a restart asked on the console.
func (a *Agent) newConsole(stop context.CancelFunc) (*console, error) {
	c := &console{a: a}
	if a.cfg.Console == "" {
		return c, nil
	}
	log := a.log
	srv, err := provisioning.NewServer(provisioning.Config{
		DeviceID: a.deviceID, Firmware: a.cfg.Firmware, DataDir: a.cfg.DataDir,
		DeviceKey: a.key.Public().(ed25519.PublicKey), TrustFile: a.cfg.ProvisioningPub,
		Validators: ConfValidators(), Locks: lockedStore{a}, Audit: consoleAudit{a}, Phone: agentPhone{a},
		Reset: func() error {
			log.Warn("factory reset confirmed on the console: the agent stops and wipes its keys, configuration, state and spool", "event", "console_reset")
			c.reset.Store(true)
			stop()
			return nil
		},
		Reboot: func() error {
			log.Warn("restart asked on the console: the agent stops (its service manager starts it again)", "event", "console_reboot")
			stop()
			return nil
		},
		Updater: consoleUpdater{a},
		Logger:  log,
	})
	if err != nil {
		return nil, err
	}
	c.srv = srv
	return c, nil
}

// run opens the port and serves it, again after every failure (a cable pulled, an adapter
// unplugged), until ctx is done.
func (c *console) run(ctx context.Context) {
	if c.srv == nil {
		return
	}
	port, baud, log := c.a.cfg.Console, c.a.cfg.ConsoleBaud, c.a.log
	logged := false
	for ctx.Err() == nil {
		p, err := serial.Open(port, &serial.Mode{BaudRate: baud})
		if err != nil {
			if !logged {
				log.Error("console port unavailable; trying again", "event", "console_error", "port", port, "err", err)
				logged = true
			}
		} else {
			logged = false
			log.Info("console listening", "event", "console_open", "port", port, "baud", baud)
			stop := context.AfterFunc(ctx, func() { p.Close() })
			err = c.srv.Serve(ctx, p)
			stop()
			p.Close()
			if err != nil {
				log.Warn("console line lost; opening it again", "event", "console_error", "port", port, "err", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-c.a.clock.After(consoleRetry):
		}
	}
}

// resetWipes is what a factory reset removes from the data directory, the key first: without
// it nothing the phone signed can be made again.
var resetWipes = []string{"device.key", "conf", "state.db", "spool", "installed", "tuf", "audit.log", "uplink.db"}

// afterClose wipes the data directory if a factory reset was confirmed; the agent has
// closed everything in it by now.
func (c *console) afterClose() error {
	if !c.reset.Load() {
		return nil
	}
	dir, log := c.a.cfg.DataDir, c.a.log
	var errs []error
	for _, name := range resetWipes {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, atomicfile.SyncDir(dir))
	err := errors.Join(errs...)
	if err != nil {
		log.Error("factory reset incomplete", "event", "console_reset", "err", err)
		return err
	}
	log.Info("factory reset done: keys, configuration, state and spool wiped", "event", "console_reset")
	return nil
}

// agentPhone is what the console reads from the agent.
type agentPhone struct{ a *Agent }

// trunkStatus is a trunk that can say how it stands (whether it can place calls, and if not
// why); the SIP trunk and the simulated called party can.
type trunkStatus interface{ Status() string }

// recentCalls is how many calls status lists.
const recentCalls = 10

func (p agentPhone) Status(context.Context) (provisioning.Status, error) {
	a := p.a
	// The file, not the agent's copy: an enrolment during this run has just rewritten it.
	fac, _ := provisioning.ReadFacility(a.cfg.DataDir)
	u := a.spool.Usage()
	rules := a.rules(a.clock.Now())
	st := provisioning.Status{
		DeviceID: a.deviceID, Facility: fac,
		PolicyVersion: rules.policyVersion, RegistryVersion: rules.registryVersion, RegistryAge: rules.freshness,
		SpoolSegments: u.Segments, SpoolCalls: u.Calls, SpoolBytes: u.Bytes,
		Uplink: a.uplinkStatus,
	}
	if ts, ok := a.cfg.Trunk.(trunkStatus); ok {
		st.SIP = ts.Status()
	}
	if s := a.fwStatus.Load(); s != nil {
		st.Firmware = *s
	}
	var calls []provisioning.CallSummary
	err := lockedStore{a}.Calls(func(_ string, b []byte) error {
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
	return p.a.unattendedChecks(), nil
}

// unattendedChecks are the checks that need nobody at the handset: the console's selftest,
// and what new firmware on trial must pass before it commits.
func (a *Agent) unattendedChecks() []provisioning.Check {
	var checks []provisioning.Check
	add := func(name string, err error, ok string) {
		c := provisioning.Check{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			c.Detail = err.Error()
		}
		checks = append(checks, c)
	}
	add("board", nil, fmt.Sprintf("%s: keypad, hook switch and handset open", a.cfg.Devices.Name))
	// A file of its own: the console and the firmware's health check may run it at once.
	f, err := os.CreateTemp(a.cfg.DataDir, ".selftest-*")
	if err == nil {
		_, err = f.Write([]byte("ok"))
		err = errors.Join(err, f.Sync(), f.Close(), os.Remove(f.Name()))
	}
	add("data directory writable", err, a.cfg.DataDir)
	_, err = lockedStore{a}.DeviceID()
	add("state database", err, "readable")
	add("spool", a.spool.CanRecord(), "room for a recorded call")
	rules := a.rules(a.clock.Now())
	var polErr, regErr error
	if rules.policyVersion == 0 {
		polErr = errors.New("no verified policy: the phone is out of service")
	}
	add("policy", polErr, fmt.Sprintf("version %d", rules.policyVersion))
	if rules.registryVersion == 0 {
		regErr = errors.New("no verified registry: only free numbers connect")
	}
	add("registry", regErr, fmt.Sprintf("version %d, %s", rules.registryVersion, rules.freshness))
	return checks
}

func (p agentPhone) Logs(n int) []string { return p.a.ring.last(n) }

// consoleAudit is the audit log as the console uses it: an enrolment's new device key, once
// the log has recorded the change to it, is handed to the call loop, which puts it in force
// for everything else it signs at the next idle moment.
type consoleAudit struct{ a *Agent }

func (c consoleAudit) Append(kind string, fields map[string]string) error {
	return c.a.audit.Append(kind, fields)
}

func (c consoleAudit) ChangeKey(next ed25519.PrivateKey) error {
	if err := c.a.audit.ChangeKey(next); err != nil {
		return err
	}
	// Only the latest key matters: a pending one it replaces was never in force.
	select {
	case <-c.a.newKey:
	default:
	}
	c.a.newKey <- next
	return nil
}
