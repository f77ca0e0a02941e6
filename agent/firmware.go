package agent

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wallphone/wallphone/firmware/bootenv"
	"github.com/wallphone/wallphone/firmware/install"
	"github.com/wallphone/wallphone/firmware/release"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/tufclient"
)

// Slots are the phone's firmware: its two slots and the bootloader environment that chooses
// between them. A phone without them does not update its firmware.
type Slots struct {
	// Hardware names the board as releases do (firmware/<hardware>_<version>.img).
	Hardware string
	// Running is the slot this process runs from: bootenv.SlotA or SlotB.
	Running string
	// Env is where the bootloader's environment is.
	Env bootenv.Config
	// Image is the file that holds a slot: a board's partition (/dev/mmcblk0p2) with
	// BlockDevices, else a file (the simulated phone's), made Capacity bytes to write into.
	Image        func(slot string) string
	BlockDevices bool
	Capacity     int64
}

// ErrReboot is what Run returns after an update was installed and the phone, idle, stopped
// to boot it: whoever started the agent reboots the board (or, on the simulated phone, boots
// the slots again).
var ErrReboot = errors.New("agent: rebooting into new firmware")

// trialDeadline is how long new firmware on trial has to prove itself healthy (policy and
// registry in force, the repository reached) before the phone reboots, which counts against
// the bootloader's limit and, past it, falls back to the good slot.
const trialDeadline = 10 * time.Minute

// trialCheck is how often firmware on trial checks the repository and its health until it
// commits or its deadline passes.
const trialCheck = time.Minute

// firmwareState is what the phone keeps of its firmware, in the state database.
type firmwareState struct {
	// Committed is the version of the committed firmware (0: the factory's, never updated),
	// in slot CommittedSlot, an image of CommittedLength bytes.
	Committed       uint64 `json:"committed"`
	CommittedSlot   string `json:"committed_slot,omitempty"`
	CommittedLength int64  `json:"committed_length,omitempty"`
	// Floor is the highest anti-rollback floor seen in signed metadata.
	Floor uint64 `json:"floor"`
	// Failed are versions that did not commit here: never installed again by the phone
	// itself, only if a newer release says so.
	Failed []uint64 `json:"failed,omitempty"`
	// Pending is an update installed and marked to be tried, not yet committed.
	Pending *pendingFirmware `json:"pending,omitempty"`
}

type pendingFirmware struct {
	Version uint64 `json:"version"`
	Slot    string `json:"slot"`
	Length  int64  `json:"length"`
}

// firmware is the update goroutine's and the console's, one at a time (mu), but for reboot,
// which the call loop reads.
type firmware struct {
	// mu guards st and trial after open, and the inactive slot, the install's progress record
	// and its directory: one install at a time, from the network or from the console.
	mu      sync.Mutex
	slots   *Slots
	st      firmwareState
	trial   bool      // this process runs the pending firmware, on trial
	started time.Time // when this process started: the trial's deadline counts from here
}

func (a *Agent) loadFirmware() (firmwareState, error) {
	var st firmwareState
	b, err := lockedStore{a}.firmware()
	if err != nil || b == nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return firmwareState{}, fmt.Errorf("firmware state: %w", err)
	}
	return st, nil
}

func (a *Agent) saveFirmware(st firmwareState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return lockedStore{a}.setFirmware(b)
}

// openFirmware reads the firmware's state at start and settles what the last boot decided:
// the pending firmware is on trial here, or the bootloader fell back from it (a failure,
// recorded and reported), or it waits for the reboot that was cut short.
func (a *Agent) openFirmware() error {
	s := a.cfg.Slots
	if s == nil {
		return nil
	}
	st, err := a.loadFirmware()
	if err != nil {
		return err
	}
	env, err := bootenv.Open(s.Env)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	fw := &firmware{slots: s, started: a.clock.Now()}
	a.fw = fw
	changed := st.CommittedSlot == ""
	if changed {
		st.CommittedSlot = s.Running
		if n, err := s.size(s.Running); err == nil {
			st.CommittedLength = n
		}
	}
	trial, _ := env.Get("upgrade_available")
	boot, _ := env.Get("boot_slot")
	good, _ := env.Get("good_slot")
	failed, _ := env.Get("failed_slot")
	switch p := st.Pending; {
	case p == nil:
	case p.Slot == s.Running && trial == "1":
		fw.trial = true
		a.log.Info("new firmware on trial: it commits once the phone is healthy", "event", "firmware_trial",
			"version", p.Version, "slot", p.Slot)
	case trial == "1" && boot == p.Slot:
		// Installed and marked, and the phone stopped before it rebooted: reboot when idle.
		a.rebootWanted.Store(true)
	case p.Slot == s.Running && good == p.Slot:
		// Committed in the environment, and the phone stopped before it recorded the commit.
		st.commit()
		changed = true
		a.log.Info("new firmware committed before the phone stopped", "event", "firmware_committed", "version", p.Version, "slot", p.Slot)
		// The audit entry comes after the record in commitFirmware, so it is missing here.
		a.auditFirmware("firmware_committed", p)
	case failed != p.Slot:
		// Recorded, and the phone stopped before the switch: installed again (the slot checked).
		st.Pending, changed = nil, true
	default:
		// The bootloader gave up on it: boots without a commit, past the limit.
		st.Failed = append(st.Failed, p.Version)
		st.Pending, changed = nil, true
		a.log.Error("new firmware did not commit and the phone fell back: it will not be installed again by itself",
			"event", "firmware_failed", "version", p.Version, "slot", p.Slot, "running", s.Running)
		a.auditFirmware("firmware_failed", p)
	}
	fw.st = st
	a.log.Info("firmware", "event", "firmware_state", "committed", st.Committed, "slot", s.Running, "floor", st.Floor)
	a.setFirmwareStatus("%s", fw.summary())
	if n := len(st.Failed); n > 0 {
		a.setFirmwareStatus("%s; version %d failed here and is not retried", fw.summary(), st.Failed[n-1])
	}
	if !changed {
		return nil // nothing to write at an ordinary start
	}
	return a.saveFirmware(st)
}

// firmwareStep runs after each repository check, on the update goroutine: firmware on trial
// commits once the phone is healthy (the check succeeded with a policy and a registry in
// force) or asks for a reboot past its deadline; otherwise a newer release is looked for,
// installed into the inactive slot and marked to be tried, and the phone reboots into it
// once idle.
func (a *Agent) firmwareStep(ctx context.Context, checked bool) {
	fw := a.fw
	if fw == nil || a.rebootWanted.Load() {
		return
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.trial {
		failing := a.health(checked)
		switch {
		case len(failing) == 0:
			a.commitFirmware()
		case a.clock.Now().Sub(fw.started) > trialDeadline:
			a.log.Error("new firmware not healthy in time: rebooting, which the bootloader counts", "event", "firmware_unhealthy",
				"failing", strings.Join(failing, "; "))
			a.setFirmwareStatus("%s; not healthy in time (%s): reboots, and the bootloader falls back past its limit", fw.summary(), strings.Join(failing, "; "))
			a.rebootUrgent.Store(true)
			a.rebootWanted.Store(true)
		default:
			a.log.Warn("new firmware on trial not yet healthy", "event", "firmware_trial", "failing", strings.Join(failing, "; "))
			a.setFirmwareStatus("%s; not yet healthy: %s", fw.summary(), strings.Join(failing, "; "))
		}
		return
	}
	if !checked || fw.st.Pending != nil {
		return
	}
	if err := a.installFirmware(ctx, a.source); err != nil {
		a.log.Error("firmware update not installed; the running firmware stays", "event", "firmware_error", "err", err)
	}
}

// health is the check firmware on trial must pass to commit: the repository reached (the check
// that just ran succeeded) and every unattended self-test check passing, the policy and the
// registry in force among them. It returns what fails, each with why.
func (a *Agent) health(checked bool) []string {
	var failing []string
	if !checked {
		failing = append(failing, "repository: not reached")
	}
	for _, c := range a.unattendedChecks() {
		if !c.OK {
			failing = append(failing, c.Name+": "+c.Detail)
		}
	}
	return failing
}

func (a *Agent) commitFirmware() {
	fw := a.fw
	env, err := bootenv.Open(fw.slots.Env)
	if err == nil {
		err = bootenv.Commit(env, fw.slots.Running)
	}
	if err != nil {
		a.log.Error("new firmware healthy but not committed; trying again at the next check", "event", "firmware_error", "err", err)
		return
	}
	p := fw.st.Pending
	fw.st.commit()
	fw.trial = false
	if err := a.saveFirmware(fw.st); err != nil {
		a.log.Error("firmware state not saved", "event", "firmware_error", "err", err)
	}
	a.setFirmwareStatus("%s", fw.summary())
	a.log.Info("new firmware healthy and committed", "event", "firmware_committed", "version", p.Version, "slot", p.Slot)
	a.auditFirmware("firmware_committed", p)
}

// commit makes the pending firmware the committed one.
func (st *firmwareState) commit() {
	p := st.Pending
	st.Committed, st.CommittedSlot, st.CommittedLength, st.Pending = p.Version, p.Slot, p.Length, nil
}

// auditFirmware records what became of pending firmware in the audit log; a failure to is
// logged, and the firmware's state stands.
func (a *Agent) auditFirmware(kind string, p *pendingFirmware) {
	if err := a.audit.Append(kind, map[string]string{"version": fmt.Sprint(p.Version), "slot": p.Slot}); err != nil {
		a.log.Error("audit log: "+kind+" not recorded", "event", "audit_error", "err", err)
	}
}

// firmwareSource is where releases come from: the repository over the network
// (*tufclient.Client), or a technician's copy of it carried by the console.
type firmwareSource interface {
	Targets(prefix string) ([]tufclient.Target, error)
	install.Fetcher
}

// installFirmware looks for a release for this phone in src and installs it. The caller
// holds fw.mu.
func (a *Agent) installFirmware(ctx context.Context, src firmwareSource) error {
	rel, choice, err := a.installRelease(ctx, src, nil)
	if err != nil || rel != nil {
		return err
	}
	attrs := []any{"event", "firmware_current", "committed", a.fw.st.Committed}
	for _, s := range choice.Skipped {
		if errors.Is(s.Err, release.ErrFailed) {
			attrs = append(attrs, "not_retried", s.Target)
		}
	}
	a.log.Info("no firmware to install", attrs...)
	return nil
}

// installedRelease is what installRelease put in the inactive slot.
type installedRelease struct {
	Image   string
	Version uint64
	Slot    string
	Result  install.Result
}

// installRelease picks the release for this phone from src (release.Pick: its board, above
// the committed version and the floor, not failed here, in its rollout), installs it into
// the inactive slot, marks the slot to be tried and asks for the reboot. With nothing to
// install it returns a nil release and the choice, which says why. onBatch, if set, hears
// the install's progress. The caller holds fw.mu.
func (a *Agent) installRelease(ctx context.Context, src firmwareSource, onBatch func(done, total int64)) (*installedRelease, release.Choice, error) {
	fw, s := a.fw, a.fw.slots
	targets, err := src.Targets(release.Prefix)
	if err != nil {
		return nil, release.Choice{}, err
	}
	var list []release.Target
	byName := map[string]tufclient.Target{}
	for _, t := range targets {
		byName[t.Name] = t
		if _, _, err := release.ParseImageTarget(t.Name); err == nil {
			list = append(list, release.Target{Name: t.Name, Custom: t.Custom})
		}
	}
	choice := release.Pick(release.Phone{DeviceID: a.deviceID, Hardware: s.Hardware, Committed: fw.st.Committed,
		Floor: fw.st.Floor, Failed: fw.st.Failed}, list)
	if choice.Floor > fw.st.Floor {
		fw.st.Floor = choice.Floor
		if err := a.saveFirmware(fw.st); err != nil {
			return nil, choice, err
		}
	}
	if choice.Target == "" {
		return nil, choice, nil
	}
	rel := choice.Release
	image, index := byName[choice.Target], byName[rel.Index]
	if index.Name == "" {
		return nil, choice, fmt.Errorf("%s: its block index %s is not a signed target", choice.Target, rel.Index)
	}
	var idxSum [32]byte
	b, err := hex.DecodeString(rel.IndexSHA256)
	if err != nil || len(b) != len(idxSum) {
		return nil, choice, fmt.Errorf("%s: index_sha256 %q", choice.Target, rel.IndexSHA256)
	}
	copy(idxSum[:], b)
	inactive := bootenv.SlotB
	if s.Running == bootenv.SlotB {
		inactive = bootenv.SlotA
	}
	a.log.Info("installing new firmware into the inactive slot", "event", "firmware_installing",
		"version", rel.Version, "slot", inactive, "bytes", image.Length)
	a.setFirmwareStatus("%s; installing version %d into slot %s", fw.summary(), rel.Version, inactive)
	sl, err := s.open(inactive, image.Length)
	if err != nil {
		return nil, choice, err
	}
	defer sl.Close()
	running, err := os.Open(s.Image(s.Running))
	if err != nil {
		return nil, choice, err
	}
	defer running.Close()
	res, err := install.Install(ctx, install.Options{
		Fetcher: src, Image: image, Index: index, IndexSHA256: idxSum, Slot: sl,
		Running: running, RunningLen: fw.st.CommittedLength,
		Progress: firmwareProgress{a, inactive}, Dir: filepath.Join(a.cfg.DataDir, "firmware"), Log: a.log,
		OnBatch: func(done, total int64) {
			a.setFirmwareStatus("%s; installing version %d into slot %s: %d%%", fw.summary(), rel.Version, inactive, done*100/max(total, 1))
			if onBatch != nil {
				onBatch(done, total)
			}
		},
	})
	if err != nil {
		a.setFirmwareStatus("%s", fw.summary())
		return nil, choice, err
	}
	// Recorded before the switch, or a phone stopped between the two would boot the update on
	// trial without knowing it, and install it again into the good slot. A failed_slot left
	// from an earlier rollback goes first: then only a rollback of this update sets it, and
	// a record found without a trial or a rollback is an update never switched to.
	env, err := bootenv.Open(s.Env)
	if err == nil {
		if f, _ := env.Get("failed_slot"); f != "" {
			env.Unset("failed_slot")
			err = env.Save()
		}
	}
	if err != nil {
		return nil, choice, fmt.Errorf("mark slot %s to be tried: %w", inactive, err)
	}
	fw.st.Pending = &pendingFirmware{Version: rel.Version, Slot: inactive, Length: res.Length}
	if err := a.saveFirmware(fw.st); err != nil {
		return nil, choice, err
	}
	if err := bootenv.MarkTrial(env, inactive); err != nil {
		fw.st.Pending = nil
		return nil, choice, errors.Join(fmt.Errorf("mark slot %s to be tried: %w", inactive, err), a.saveFirmware(fw.st))
	}
	when := "when idle"
	if w := a.rebootWindow(); !w.Any() {
		when = "when idle inside the policy's reboot window, " + w.String()
	}
	a.setFirmwareStatus("%s; version %d installed in slot %s: reboots into it %s", fw.summary(), rel.Version, inactive, when)
	a.rebootWanted.Store(true)
	a.log.Info("new firmware installed and verified: the phone reboots into it when idle", "event", "firmware_ready",
		"version", rel.Version, "slot", inactive, "fetched", res.Fetched, "copied", res.Copied)
	return &installedRelease{Image: choice.Target, Version: rel.Version, Slot: inactive, Result: res}, choice, nil
}

// firmwareProgress keeps an install's progress in the state database, with the slot it is
// written into: the blocks a record counts as done are in that slot, so a record of the same
// release for the other slot (the slots swapped since) starts the install over.
type firmwareProgress struct {
	a    *Agent
	slot string
}

func (p firmwareProgress) Load() (install.Progress, error) {
	var pr install.Progress
	b, err := lockedStore{p.a}.firmwareProgress()
	if err != nil || b == nil {
		return pr, err
	}
	slot, rec, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return install.Progress{}, fmt.Errorf("%w: no slot", install.ErrProgress)
	}
	if string(slot) != p.slot {
		return pr, nil
	}
	if err := pr.UnmarshalBinary(rec); err != nil {
		return install.Progress{}, fmt.Errorf("%w: %w", install.ErrProgress, err)
	}
	return pr, nil
}

func (p firmwareProgress) Save(pr install.Progress) error {
	b, err := pr.MarshalBinary()
	if err != nil {
		return err
	}
	return lockedStore{p.a}.setFirmwareProgress(append([]byte(p.slot+"\n"), b...))
}

// setFirmwareStatus is what the console's status says of the firmware from now on.
func (a *Agent) setFirmwareStatus(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	a.fwStatus.Store(&s)
}

// summary says what is committed and where this process runs.
func (fw *firmware) summary() string {
	v := "the factory's"
	if fw.st.Committed > 0 {
		v = fmt.Sprintf("version %d", fw.st.Committed)
	}
	if fw.trial && fw.st.Pending != nil {
		return fmt.Sprintf("version %d on trial in slot %s (commits once healthy); %s committed", fw.st.Pending.Version, fw.slots.Running, v)
	}
	return fmt.Sprintf("%s, committed, running in slot %s", v, fw.slots.Running)
}

// mayReboot says whether the idle phone may reboot for its firmware now: inside the policy's
// reboot window, or at once when firmware on trial is unhealthy (the way back to the good slot
// goes through the bootloader's count, and waiting would keep a broken phone in service).
// Called by the call loop, which owns the policy.
func (a *Agent) mayReboot(now time.Time) bool {
	if a.rebootUrgent.Load() || a.policy == nil {
		return true
	}
	return a.policy.RebootWindow.Contains(now)
}

// rebootWindow is the reboot window of the newest policy installed, for what the phone says;
// mayReboot decides by the policy in force. Safe from any goroutine.
func (a *Agent) rebootWindow() policy.RebootWindow {
	if a.policyFromRepo() {
		if p := a.updates.Policy(); p != nil {
			return p.RebootWindow
		}
		return policy.RebootWindow{}
	}
	if a.policy != nil { // a local file, in force from start to end
		return a.policy.RebootWindow
	}
	return policy.RebootWindow{}
}
