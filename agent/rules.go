package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/store"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/updates"
)

// open prepares the data directory and loads what New promises.
func (a *Agent) open() error {
	cfg, log := a.cfg, a.log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if a.prompts == nil {
		p, err := audio.LoadPrompts()
		if err != nil {
			return fmt.Errorf("prompts: %w", err)
		}
		a.prompts = p
	}
	if err := a.finishKeyChange(); err != nil {
		return err
	}
	key, created, err := identity.LoadOrCreate(filepath.Join(cfg.DataDir, "device.key"))
	if err != nil {
		return err
	}
	a.key = key
	if a.db, err = store.Open(filepath.Join(cfg.DataDir, "state.db")); err != nil {
		return err
	}
	if a.deviceID, err = a.db.DeviceID(); err != nil {
		a.Close()
		return err
	}
	if err := a.openAudit(); err != nil {
		a.Close()
		return err
	}
	if err := a.completeCutShort(); err != nil {
		a.Close()
		return err
	}
	if err := a.loadRules(); err != nil {
		a.Close()
		return err
	}
	if err := a.openFirmware(); err != nil {
		a.Close()
		return err
	}
	max, reserve := int64(defaultSpoolBytes), int64(0)
	if a.policy != nil {
		max, reserve = a.policy.Recording.SpoolMaxBytes, callReserve(a.policy)
	}
	a.spool, err = spool.Open(spool.Options{
		Dir: filepath.Join(cfg.DataDir, "spool"), MaxBytes: max, Reserve: reserve, Logger: log,
	})
	if err != nil {
		a.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if err := a.newRecorder(); err != nil {
		a.Close()
		return err
	}
	attrs := []any{"event", "agent_started", "firmware", cfg.Firmware, "board", cfg.Devices.Name, "data", cfg.DataDir,
		"device_id", a.deviceID, "device_key", identity.Fingerprint(key.Public().(ed25519.PublicKey)), "device_key_created", created,
		"registry_version", a.registryVersion()}
	if a.policy != nil {
		attrs = append(attrs, "facility", a.policy.Facility, "policy_version", a.policy.Version)
	}
	log.Info("agent started", attrs...)
	if a.policy == nil {
		log.Error("no verified facility policy: the phone is out of service until one is installed", "event", "policy_missing")
	}
	if a.registry != nil {
		if err := a.sweep(); err != nil {
			a.Close()
			return err
		}
	}
	if err := a.retain(); err != nil {
		a.log.Error("call records past retention not scrubbed; tried again within the hour", "event", "agent_error", "err", err)
	}
	a.retained = a.clock.Now()
	return nil
}

// loadRules finds the policy and registry: local files when given (the simulated phone's
// tests and bench work), else what the repository gave this phone.
func (a *Agent) loadRules() error {
	cfg, log := a.cfg, a.log
	if cfg.LocalPolicy != "" {
		p, err := policy.Load(cfg.LocalPolicy)
		if err != nil {
			return fmt.Errorf("facility policy: %w", err)
		}
		a.policy = p
		log.Warn("facility policy from a local file, not from the repository: for tests only", "event", "policy_local", "file", cfg.LocalPolicy)
	}
	if cfg.LocalRegistry != "" {
		a.openLocalRegistry(cfg.LocalRegistry)
	}
	if cfg.LocalPolicy != "" && cfg.LocalRegistry != "" {
		return nil
	}
	if err := a.openUpdates(); err != nil {
		return err
	}
	if a.updates == nil {
		if cfg.LocalRegistry == "" {
			log.Error("not enrolled with a repository: no registry, calls other than to free numbers are refused", "event", "registry_missing")
		}
		return nil
	}
	if a.source != nil && (a.updates.Policy() == nil || a.updates.RegistryPath() == "" || cfg.CheckAtStart) {
		// A phone with nothing installed yet tries once before it takes calls.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		a.check(ctx)
		cancel()
	}
	if cfg.LocalPolicy == "" {
		a.policy = a.updates.Policy()
	}
	if cfg.LocalRegistry == "" {
		a.takeRegistry()
	}
	return nil
}

// openLocalRegistry loads a registry file given on the command line; a file that does not
// verify leaves the phone with none (nothing recorded, only free numbers connected).
func (a *Agent) openLocalRegistry(path string) {
	if path == "none" {
		a.log.Warn("no registry: calls other than to free numbers are refused", "event", "registry_missing")
		return
	}
	s, err := registry.Open(path)
	if err != nil {
		a.log.Error("registry unusable: calls other than to free numbers are refused", "event", "registry_missing", "file", path, "err", err)
		return
	}
	a.registry, a.regPath = s, path
}

// openUpdates opens the installed rules and, if the phone is enrolled with a repository,
// its client.
func (a *Agent) openUpdates() error {
	conf := filepath.Join(a.cfg.DataDir, "conf")
	facility, err := provisioning.ReadFacility(a.cfg.DataDir)
	if err != nil {
		return err
	}
	a.facility = facility
	if facility == "" {
		return nil
	}
	if a.pinned, err = readRecipients(filepath.Join(conf, provisioning.RecipientsFile)); err != nil {
		return err
	}
	a.updates, err = updates.Open(updates.Options{
		Dir: filepath.Join(a.cfg.DataDir, "installed"), Facility: facility,
		CheckPolicy: a.checkPolicy, Log: a.log,
		LocalPolicy: a.cfg.LocalPolicy != "", LocalRegistry: a.cfg.LocalRegistry != "",
	})
	if err != nil {
		return err
	}
	root, rerr := os.ReadFile(filepath.Join(conf, provisioning.RootFile))
	repo, uerr := readRepository(filepath.Join(conf, provisioning.RepositoryFile))
	if err := errors.Join(rerr, uerr); err != nil {
		a.log.Error("no repository to update from: keeping what is installed", "event", "update_error", "err", err)
		return nil
	}
	// Top-level targets only delegates: the registry is the keepers', the policy the
	// facility's, whatever the vendor's own targets key signs.
	a.source, err = tufclient.New(tufclient.Options{Dir: filepath.Join(a.cfg.DataDir, "tuf"), Root: root, URL: repo,
		TopLevelOnlyDelegates: true})
	if err != nil {
		a.log.Error("no repository to update from: keeping what is installed", "event", "update_error", "err", err)
		a.source = nil
	} else if ch := a.source.RootChanged; ch != nil {
		// What is installed stays (checked at rest, and its versions still bar older ones);
		// only the metadata trusted under the old root is gone.
		a.log.Warn("a new trust root was enrolled: the repository metadata trusted under the old one is dropped",
			"event", "trust_root_changed", "old_root_sha256", ch.Old, "new_root_sha256", ch.New)
		if err := a.audit.Append("trust_root_changed", map[string]string{"old_root_sha256": ch.Old, "new_root_sha256": ch.New}); err != nil {
			a.log.Error("audit log: trust root change not recorded", "event", "audit_error", "err", err)
		}
	}
	return nil
}

// checkPolicy refuses a policy that would seal recordings to a key the technician did not
// install: whoever holds the policy-signing key must not be able to add an eavesdropper. With
// none pinned, no policy passes: recipients are never taken on the policy's word alone.
func (a *Agent) checkPolicy(p *policy.Policy) error {
	if len(a.pinned) == 0 {
		return fmt.Errorf("no recording recipients were pinned at enrolment (%s): a phone records for no one until a technician installs them", provisioning.RecipientsFile)
	}
	for _, r := range p.Recording.Recipients {
		if !slices.Contains(a.pinned, r) {
			return fmt.Errorf("recording recipient %s is not one installed on this phone", r)
		}
	}
	return nil
}

// check asks the repository for news once, and logs what came of it. It reports whether
// anything was installed.
func (a *Agent) check(ctx context.Context) bool {
	ch, err := a.updates.Check(ctx, a.source)
	for _, d := range a.source.Damaged {
		a.log.Error("cached repository metadata damaged and dropped", "event", "update_damaged", "detail", d)
	}
	a.source.Damaged = nil
	now := a.clock.Now()
	a.log.Debug("repository checked", "event", "update_checked", "registry", ch.Registry, "policy", ch.Policy, "failed", err != nil)
	if err != nil {
		a.log.Error("update refused or failed; what is installed stays in force", "event", "update_error", "err", err,
			"state", a.updates.State().Describe(now))
	}
	if f := a.updates.Freshness(now); f.Stale && a.registryFromRepo() {
		a.log.Warn("registry stale: deciding from the last verified registry, and marking every call so decided",
			"event", "registry_stale", "since", f.Since, "registry_version", a.updates.State().Registry.Version)
	}
	if ch.Registry || ch.Policy {
		st := a.updates.State()
		fields := map[string]string{"policy_version": strconv.FormatUint(st.Policy.Version, 10), "policy_sha256": st.Policy.SHA256,
			"registry_version": strconv.FormatUint(st.Registry.Version, 10), "registry_sha256": st.Registry.SHA256}
		if err := a.audit.Append("installed", fields); err != nil {
			a.log.Error("audit log", "event", "audit_error", "err", err)
		}
	}
	return ch.Registry || ch.Policy
}

// firstCheck is how soon after start the repository is first asked: a phone that was off
// for a while may have missed a registry.
const firstCheck = 20 * time.Second

// runUpdates checks the repository every interval (with jitter, so that a facility's phones
// do not all ask at once), and sooner after a failure, with backoff from a minute, until ctx
// ends. What it installs, the call loop takes up between calls.
func (a *Agent) runUpdates(ctx context.Context, interval time.Duration) {
	wait, failures := jitter(firstCheck), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(wait):
		}
		if a.check(ctx) {
			select {
			case a.installed <- struct{}{}:
			default:
			}
		}
		a.firmwareStep(ctx, a.updates.State().LastError == "")
		if a.updates.State().LastError != "" {
			failures++
			wait = jitter(retryWait(failures, interval))
		} else {
			failures, wait = 0, jitter(interval)
		}
		if a.fw != nil && a.fw.trial {
			// Firmware on trial is judged within its deadline, not at the next scheduled check.
			wait = min(wait, trialCheck)
		}
	}
}

// retryWait is the wait after the nth failure in a row, before jitter: a minute, doubling,
// never more than the interval.
func retryWait(n int, interval time.Duration) time.Duration {
	return min(interval, time.Minute<<min(n, 6))
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= time.Second {
		return d
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d/2)))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(n.Int64())
}

// between runs in the call loop after each frame: what the update goroutine installed takes
// effect once the phone is idle, so a call keeps the rules it started with, and a recorded
// call in progress is in the call records before the destroy-on-discovery sweep runs. An idle
// phone also takes an enrolment's new device key here, and scrubs call records past their
// retention hourly, by the frame's time (now): no clock read on the audio path.
func (a *Agent) between(m interface{ InCall() bool }, now time.Time) {
	select {
	case <-a.installed:
		a.apply = true
	default:
	}
	if m.InCall() {
		return
	}
	if a.rebootWanted.Load() && !a.rebooting && a.stopRun != nil && a.mayReboot(now) {
		// Never during a call: the phone is idle, and new firmware waits.
		a.log.Warn("rebooting into new firmware", "event", "firmware_reboot")
		a.rebooting = true
		a.stopRun()
		return
	}
	select {
	case k := <-a.newKey:
		a.key = k
		if err := a.newRecorder(); err != nil {
			a.log.Error("recorder for the new device key", "event", "agent_error", "err", err)
		}
		a.log.Info("the device key an enrolment made is in force", "event", "device_key_in_force",
			"device_key", identity.Fingerprint(k.Public().(ed25519.PublicKey)))
	default:
	}
	if now.Sub(a.retained) >= retainEvery {
		a.retained = now
		if err := a.retain(); err != nil {
			a.log.Error("call records past retention not scrubbed; tried again within the hour", "event", "agent_error", "err", err)
		}
	}
	if !a.apply {
		return
	}
	a.apply = false
	if !a.policyFromRepo() {
		// A local policy file stays in force; only the registry may have changed.
	} else if p := a.updates.Policy(); p != nil && p != a.policy {
		a.policy = p
		if err := a.newRecorder(); err != nil {
			a.log.Error("recorder for the new policy", "event", "agent_error", "err", err)
		}
		a.log.Info("facility policy in force", "event", "policy_in_force", "version", p.Version)
	}
	if a.registryFromRepo() && a.takeRegistry() {
		// The sweep logs its own failures; what comes back is a state database that could
		// not be reopened after compaction.
		if err := a.sweep(); err != nil {
			a.log.Error("state database unusable after the sweep", "event", "agent_error", "err", err)
		}
	}
}

// takeRegistry opens the loop's own handle on the installed registry if it changed.
func (a *Agent) takeRegistry() bool {
	path, inst := a.updates.InstalledRegistry()
	if path == "" || path == a.regPath {
		return false
	}
	s, err := registry.Open(path)
	if err != nil {
		a.log.Error("installed registry does not open; keeping the one in force", "event", "registry_damaged", "file", path, "err", err)
		return false
	}
	if a.registry != nil {
		a.registry.Close()
	}
	a.registry, a.regPath, a.regSHA256 = s, path, inst.SHA256
	a.log.Info("registry in force", "event", "registry_in_force", "version", s.Version(), "entries", s.Len())
	return true
}

// sweep destroys recordings whose number the registry in force now says is privileged,
// including those of calls decided while the registry was stale. It logs a failed sweep
// (the next install or start runs it again) and returns only a failure to reopen the state
// database after compacting it.
func (a *Agent) sweep() error {
	n, err := purge.Sweep(a.registry, lockedStore{a}, a.spool, a.key, a.deviceID, a.clock.Now(), a.log)
	if err != nil {
		a.log.Error("destroy-on-discovery sweep failed; it runs again at the next install or start", "event", "purge_error", "err", err)
	}
	if n > 0 {
		// The scrubbed numbers must not linger in the database file's free pages.
		return a.compactStore()
	}
	return nil
}

func (a *Agent) registryVersion() uint64 {
	if a.registry == nil {
		return 0
	}
	return a.registry.Version()
}

// retainEvery is how often an idle phone scrubs the call records past their retention.
const retainEvery = time.Hour

// callReserve is the room the spool must have before a recorded call starts: the longest
// call a caller may make, sealed, with room for segment and manifest overheads.
func callReserve(pol *policy.Policy) int64 {
	longest := pol.Limits.CallLimit
	for _, c := range pol.Callers() {
		longest = max(longest, c.CallLimit)
	}
	const sealedBytesPerSecond = 16000 // two directions of µ-law
	segments := int64(longest/pol.Recording.Segment) + 1
	return int64(longest.Seconds())*sealedBytesPerSecond + segments*1024 + 64<<10
}

// rulesStatus is what other goroutines (the console, the uplink's status object) may know of
// the rules in force.
type rulesStatus struct {
	policyVersion   int64
	registryVersion uint64
	stale           bool
	freshUntil      time.Time
	freshness       string
}

// registryFromRepo and policyFromRepo say where the rules in force come from: the
// repository's installed state, or a local file given on the simulated phone's command line.
func (a *Agent) registryFromRepo() bool { return a.updates != nil && a.cfg.LocalRegistry == "" }
func (a *Agent) policyFromRepo() bool   { return a.updates != nil && a.cfg.LocalPolicy == "" }

// rules reads the rules in force without touching what the call loop owns: from the
// installed state (guarded by its own lock), or from the local files, which never change.
func (a *Agent) rules(now time.Time) rulesStatus {
	r := rulesStatus{freshness: "no repository (not enrolled with one)"}
	if a.cfg.LocalRegistry != "" {
		r.freshness = "a local file, not from a repository"
	}
	if a.policyFromRepo() {
		if a.updates.Policy() != nil {
			r.policyVersion = int64(a.updates.State().Policy.Version)
		}
	} else if a.policy != nil {
		r.policyVersion = a.policy.Version
	}
	if !a.registryFromRepo() {
		r.registryVersion = a.registryVersion()
		return r
	}
	st := a.updates.State()
	f := a.updates.Freshness(now)
	r.stale, r.freshUntil, r.freshness = f.Stale, st.FreshUntil, st.RegistryFreshness(now)
	if a.updates.RegistryPath() != "" {
		r.registryVersion = st.Registry.Version
	}
	return r
}

// machineFreshness is the freshness of the registry in force, the one that decides. A newer
// registry installed while the handset is up waits for the call to end; until then the one
// in force is known to be out of date, and the calls it decides are marked so (and checked
// again by the sweep when the newer one takes over).
func (a *Agent) machineFreshness(now time.Time) registry.Freshness {
	if !a.registryFromRepo() {
		return registry.Freshness{}
	}
	if _, inst := a.updates.InstalledRegistry(); a.registry != nil && inst.SHA256 != a.regSHA256 {
		return registry.Freshness{Stale: true, Since: inst.Installed}
	}
	return a.updates.Freshness(now)
}
