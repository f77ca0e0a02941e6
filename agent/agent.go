// Package agent is the wall phone's agent: what cmd/wallphoned wires to a board. It opens the
// data directory (the enrolment in conf/, the device key, the state database, the audit log,
// the spool), runs the call loop on the frames its driver gives it, and beside the loop the
// update checks, the provisioning console and the uplink, each on a goroutine it owns and
// waits for before it closes what they use.
//
// It keeps promises 1, 5 and 6 together: a call is decided from the verified registry and
// policy in force when it started, and what the update goroutine installs takes effect only
// between calls, after which the destroy-on-discovery sweep runs (see between). It signs
// nothing but its own audit log and purge requests: rules come from a repository or, on the
// simulated phone only, from local files.
package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/call"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/store"
	"github.com/wallphone/wallphone/trunk"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/updates"
)

// Clock is the agent's time: when updates are checked, when a sweep or a status says it
// happened. The call loop's own time is the frames' (see Config.Drive).
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time                         { return time.Now() }
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config is what an agent is built from. DataDir, Devices, Trunk and Drive are required.
type Config struct {
	// DataDir holds everything the phone keeps: device.key, conf/ (the enrolment), state.db,
	// audit.log, installed/ (the verified rules), tuf/, spool/, uplink.db.
	DataDir string
	// Devices are the board's keypad, hook switch and handset; Trunk is where calls go. The
	// agent uses them and closes none of them: their owner does, after Run returns.
	Devices device.Board
	Trunk   trunk.Trunk
	// Drive moves the phone on: it calls tick once per 20 ms frame with the frame's time, on
	// the goroutine that called Run, until ctx is done or it has nothing more to give (the
	// simulated phone's script ended). What it returns, Run returns.
	Drive func(ctx context.Context, tick func(now time.Time)) error
	// Lights are the phone's lights, if it has them.
	Lights Lights

	// Slots are the phone's firmware slots and bootloader environment; nil: the phone does not
	// update its firmware. After an update, Run returns ErrReboot once the phone is idle.
	Slots *Slots
	// LocalPolicy and LocalRegistry are files used instead of the repository's (the simulated
	// phone's tests and bench work only; LocalRegistry "none" is no registry at all).
	LocalPolicy, LocalRegistry string
	// UpdateInterval is how often the repository is asked for news, with jitter; 0 asks only
	// once, at start (the simulated phone on its virtual clock, whose scripts see only what
	// they do).
	UpdateInterval time.Duration
	// CheckAtStart asks the repository once before the first call even when rules are
	// installed already (a phone with none always asks).
	CheckAtStart bool

	// Console is the serial port of the provisioning console ("" for none), at ConsoleBaud;
	// ProvisioningPub the file of facility provisioning keys it trusts.
	Console         string
	ConsoleBaud     int
	ProvisioningPub string
	// Firmware is the version of this build, which the start-up line and the console report.
	Firmware string

	// Vault is where recordings go: "none", a local directory, or "" for conf/vault.json,
	// and without one DefaultVault ("" for none: recordings stay in the spool).
	Vault, DefaultVault string

	// Prompts are the spoken prompts; nil loads the embedded ones.
	Prompts *audio.Prompts
	// Clock is the agent's time; nil is the wall clock.
	Clock Clock
	// Logger receives the agent's events; nil discards them.
	Logger *slog.Logger
}

// Agent is one phone's agent, from New to the end of Run.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	ring    *logRing
	clock   Clock
	machine *call.Machine
	lights  lights

	dbMu     sync.RWMutex // guards db: compaction closes and reopens it while others read
	db       *store.DB
	spool    *spool.Spool
	deviceID string
	key      ed25519.PrivateKey
	prompts  *audio.Prompts
	audit    *audit.Log
	auditKey []byte
	// pinned are the recording recipients installed at enrolment: a policy may seal to
	// these and no others. Empty: not enrolled with any.
	pinned []string
	// facility is the facility id of the enrolment, "" if the phone is not enrolled.
	facility string

	// The call loop's own: what the update goroutine installs reaches these only through
	// between, on the call loop, while no call is in progress.
	recorder *recording.Recorder // nil until the phone has a policy
	policy   *policy.Policy      // nil: out of service until a verified policy arrives
	registry *registry.Set       // nil: no verified registry; nothing is recorded
	regPath  string
	// regSHA256 is the signed hash of the registry in force, for the audit log.
	regSHA256 string
	apply     bool // something installed waits for the phone to be idle
	// retained is when call records were last checked against the policy's retention.
	retained time.Time

	// fw is the firmware's state (the update goroutine's own after open); nil without Slots.
	fw *firmware
	// rebootWanted is set when new firmware waits to be booted: the call loop stops the agent
	// at its next idle moment.
	rebootWanted atomic.Bool
	// rebootUrgent is set with rebootWanted when firmware on trial is unhealthy: the reboot
	// does not wait for the policy's reboot window.
	rebootUrgent atomic.Bool
	// fwStatus is what the console's status says of the firmware, set by whoever changes it.
	fwStatus atomic.Pointer[string]
	// rebooting is set by the call loop when it stopped the agent for that reboot.
	rebooting bool
	// stopRun ends Run (set by Run, used by the call loop).
	stopRun context.CancelFunc

	updates *updates.Updates  // nil when the policy and registry are local files
	source  *tufclient.Client // nil when not enrolled with a repository
	// newKey carries an enrolment's new device key from the console to the call loop (1 buffered).
	newKey chan ed25519.PrivateKey
	// installed is signalled by the update goroutine after it installed something.
	installed chan struct{}
	// uplinkStatus says what the uplink does; set by Run before the console starts.
	uplinkStatus string
}

// defaultSpoolBytes bounds the spool of a phone that has no policy yet.
const defaultSpoolBytes = 256 << 20

// New opens the data directory and loads everything from it: the enrolment in conf/, the
// installed registry and policy (fetching them once if there are none yet), the device key,
// the state database, the audit log and the spool; then it runs the destroy-on-discovery
// sweep once. Close it with Run, or with Close if Run is never called.
func New(cfg Config) (*Agent, error) {
	if cfg.Drive == nil || cfg.Trunk == nil || cfg.Devices.Keypad == nil || cfg.Devices.Hook == nil || cfg.Devices.Handset == nil {
		return nil, errors.New("agent: Devices, Trunk and Drive are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log, ring := withRing(cfg.Logger)
	a := &Agent{cfg: cfg, log: log, ring: ring, clock: cfg.Clock, prompts: cfg.Prompts, installed: make(chan struct{}, 1), newKey: make(chan ed25519.PrivateKey, 1),
		lights: lights{Lights: cfg.Lights, log: log}}
	if err := a.open(); err != nil {
		return nil, err
	}
	m, err := call.New(call.Config{
		Keypad: cfg.Devices.Keypad, Hook: cfg.Devices.Hook, Handset: cfg.Devices.Handset, Trunk: cfg.Trunk,
		Prompts: a.prompts,
		Policy:  func() *policy.Policy { return a.policy },
		Registry: func() call.Registry {
			if a.registry == nil {
				return nil
			}
			return a.registry
		},
		Freshness: a.machineFreshness,
		Audit:     a, Recorder: agentRecorder{a}, Store: lockedStore{a}, DeviceID: a.deviceID,
		Logger: log,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.machine = m
	return a, nil
}

// Logger is the agent's logger: the one it was given, with the console's ring beside it.
func (a *Agent) Logger() *slog.Logger { return a.log }

// Run runs the phone until ctx is done, the driver stops, or a technician asks the console
// for a reset or a restart; then it ends a call in progress properly (far end released,
// recording closed, call record stored), stops what it started, and closes the data
// directory (wiping it after a confirmed factory reset).
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.stopRun = cancel
	con, err := a.newConsole(cancel)
	if err != nil {
		a.Close()
		return err
	}
	// Everything started here is waited for before Close: the console, the uplink and the
	// update checks all use the database, the spool or the installed rules.
	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(ctx)
	// The uplink first: the console reports what came of it.
	if u := a.newUplink(); u != nil {
		wg.Go(func() { u.run(bg) })
	}
	wg.Go(func() { con.run(bg) })
	if a.cfg.UpdateInterval > 0 && a.source != nil {
		wg.Go(func() { a.runUpdates(bg, a.cfg.UpdateInterval) })
	} else if a.fw != nil && a.source != nil {
		// No schedule (the virtual clock): the firmware takes its one step after the check at
		// start, as the schedule would after each check.
		wg.Go(func() { a.firmwareStep(bg, a.updates.State().LastError == "") })
	}

	runErr := a.cfg.Drive(ctx, a.tick)
	a.machine.Shutdown(a.clock.Now())
	stopBG()
	wg.Wait()
	if err := a.Close(); err != nil {
		a.log.Error("closing the data directory", "event", "agent_error", "err", err)
		runErr = errors.Join(runErr, err)
	}
	runErr = errors.Join(runErr, con.afterClose())
	a.log.Info("agent stopped", "event", "agent_stopped")
	if a.rebooting && runErr == nil {
		return ErrReboot
	}
	return runErr
}

// tick is one frame of the call loop.
func (a *Agent) tick(now time.Time) {
	a.machine.Tick(now)
	a.between(a.machine, now)
	a.lights.show(a.machine.InCall(), a.machine.Recording())
}

// agentRecorder starts recordings with the recorder of the policy in force.
type agentRecorder struct{ a *Agent }

func (r agentRecorder) CanRecord() error {
	if r.a.recorder == nil {
		return errors.New("no recorder: no facility policy")
	}
	return r.a.recorder.CanRecord()
}

func (r agentRecorder) Start(info call.RecordingInfo) (call.Recording, error) {
	if r.a.recorder == nil {
		return nil, errors.New("no recorder: no facility policy")
	}
	d := info.Decision
	rec, err := r.a.recorder.Start(recording.CallInfo{
		CallID: info.CallID, CallerID: info.CallerID, E164: info.E164, Started: info.Started,
		Decision: string(d.Kind), Reason: d.Reason, RegistryVersion: d.RegistryVersion, PolicyVersion: d.PolicyVersion,
	})
	if err != nil {
		return nil, err // not a nil *recording.Call in a non-nil call.Recording
	}
	return rec, nil
}

// newRecorder makes the recorder for the policy in force.
func (a *Agent) newRecorder() error {
	if a.recorder != nil {
		if err := a.recorder.Close(); err != nil {
			a.log.Error("closing the recorder", "event", "agent_error", "err", err)
		}
		a.recorder = nil
	}
	if a.policy == nil {
		return nil
	}
	r, err := recording.New(recording.Options{
		Spool: a.spool, Recipients: a.policy.Recording.Recipients, Segment: a.policy.Recording.Segment,
		DeviceID: a.deviceID, DeviceKey: a.key, Logger: a.log,
	})
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	a.recorder = r
	return nil
}

// Close seals what is still in flight and closes the spool and the database, in that order.
// Run calls it; call it only for an agent that is never run.
func (a *Agent) Close() error {
	var errs []error
	if a.recorder != nil {
		errs = append(errs, a.recorder.Close())
		a.recorder = nil
	}
	if a.spool != nil {
		errs = append(errs, a.spool.Close())
		a.spool = nil
	}
	if a.registry != nil {
		a.registry.Close()
		a.registry = nil
	}
	if a.updates != nil {
		a.updates.Close()
		a.updates = nil
	}
	if a.audit != nil {
		errs = append(errs, a.audit.Close())
		a.audit = nil
	}
	if a.db != nil {
		errs = append(errs, a.db.Close())
		a.db = nil
	}
	return errors.Join(errs...)
}
