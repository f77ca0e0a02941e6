package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/call"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/internal/strictjson"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/recording/recipients"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/store"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/updates"
)

// agent is what every board shares: the data directory and what is loaded from it. Its
// policy, registry and recorder belong to the call loop: the update goroutine only installs
// files and signals, and the loop takes the new ones between calls (see between).
type agent struct {
	log      *slog.Logger
	cfg      config
	dbMu     sync.RWMutex // guards db against compaction while other goroutines read it
	db       *store.DB
	spool    *spool.Spool
	recorder *recording.Recorder // nil until the phone has a policy
	deviceID string
	key      ed25519.PrivateKey
	prompts  *audio.Prompts
	policy   *policy.Policy // nil: out of service until a verified policy arrives
	registry *registry.Set  // nil: no verified registry; nothing is recorded
	regPath  string

	audit    *audit.Log
	auditKey []byte
	// pinned are the recording recipients installed at enrolment: a policy may seal to
	// these and no others. Empty: not enrolled with any (the simulated phone's demo has them).
	pinned []string
	// facility is the facility id of the enrolment, "" if the phone is not enrolled.
	facility string

	updates *updates.Updates  // nil when the policy and registry are local files
	source  *tufclient.Client // nil when not enrolled with a repository
	// installed is signalled by the update goroutine after it installed something.
	installed chan struct{}
	apply     bool // something installed waits for the phone to be idle
}

// The enrolment files in <data>/conf.
const (
	confFacility   = "facility"
	confRoot       = "root.json"
	confRepository = "repository.json"
	confRecipients = "recipients.txt"
	confAuditKey   = "audit.key"
)

// defaultSpoolBytes bounds the spool of a phone that has no policy yet.
const defaultSpoolBytes = 256 << 20

// openAgent prepares the data directory and loads everything from it: the enrolment in
// conf/, the installed registry and policy (fetching them once if there are none yet), the
// device key, the state database, the audit log and the spool.
func openAgent(cfg config, log *slog.Logger) (*agent, error) {
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := writeDemo(cfg, log); err != nil {
		return nil, err
	}
	prompts, err := audio.LoadPrompts()
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	key, created, err := identity.LoadOrCreate(filepath.Join(cfg.dataDir, "device.key"))
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(cfg.dataDir, "state.db"))
	if err != nil {
		return nil, err
	}
	id, err := db.DeviceID()
	if err != nil {
		db.Close()
		return nil, err
	}
	a := &agent{log: log, cfg: cfg, db: db, deviceID: id, key: key, prompts: prompts, installed: make(chan struct{}, 1)}
	if err := a.openAudit(); err != nil {
		db.Close()
		return nil, err
	}
	if err := a.loadRules(); err != nil {
		a.closeQuiet()
		return nil, err
	}
	max, reserve := int64(defaultSpoolBytes), int64(0)
	if a.policy != nil {
		max, reserve = a.policy.Recording.SpoolMaxBytes, callReserve(a.policy)
	}
	a.spool, err = spool.Open(spool.Options{
		Dir: filepath.Join(cfg.dataDir, "spool"), MaxBytes: max, Reserve: reserve, Logger: log,
	})
	if err != nil {
		a.closeQuiet()
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := a.newRecorder(); err != nil {
		a.closeQuiet()
		return nil, err
	}
	attrs := []any{"event", "agent_started", "board", cfg.board, "data", cfg.dataDir,
		"device_id", id, "device_key", identity.Fingerprint(key.Public().(ed25519.PublicKey)), "device_key_created", created,
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
			a.close()
			return nil, err
		}
	}
	return a, nil
}

// loadRules finds the policy and registry: local files when given (the simulated phone's
// tests and bench work), else what the repository gave this phone.
func (a *agent) loadRules() error {
	cfg, log := a.cfg, a.log
	if cfg.policy != "" {
		p, err := policy.Load(cfg.policy)
		if err != nil {
			return fmt.Errorf("facility policy: %w", err)
		}
		a.policy = p
		log.Warn("facility policy from a local file, not from the repository: for tests only", "event", "policy_local", "file", cfg.policy)
	}
	if cfg.registry != "" {
		a.openLocalRegistry(cfg.registry)
	}
	if cfg.policy != "" && cfg.registry != "" {
		return nil
	}
	if err := a.openUpdates(); err != nil {
		return err
	}
	if a.updates == nil {
		if cfg.registry == "" {
			log.Error("not enrolled with a repository: no registry, calls other than to free numbers are refused", "event", "registry_missing")
		}
		return nil
	}
	if a.source != nil && (a.updates.Policy() == nil || a.updates.RegistryPath() == "" || cfg.clock == "virtual") {
		// A phone with nothing installed yet tries once before it takes calls; so does the
		// simulated phone on the virtual clock, whose scripts see only what happens at start.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		a.check(ctx)
		cancel()
	}
	if cfg.policy == "" {
		a.policy = a.updates.Policy()
	}
	if cfg.registry == "" {
		a.takeRegistry()
	}
	return nil
}

// openLocalRegistry loads a registry file given on the command line; a file that does not
// verify leaves the phone with none (nothing recorded, only free numbers connected).
func (a *agent) openLocalRegistry(path string) {
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
func (a *agent) openUpdates() error {
	conf := filepath.Join(a.cfg.dataDir, "conf")
	facility, err := provisioning.ReadFacility(a.cfg.dataDir)
	if err != nil {
		return err
	}
	a.facility = facility
	if facility == "" {
		return nil
	}
	if a.pinned, err = readRecipients(filepath.Join(conf, confRecipients)); err != nil {
		return err
	}
	a.updates, err = updates.Open(updates.Options{
		Dir: filepath.Join(a.cfg.dataDir, "installed"), Facility: facility,
		CheckPolicy: a.checkPolicy, Log: a.log,
	})
	if err != nil {
		return err
	}
	root, rerr := os.ReadFile(filepath.Join(conf, confRoot))
	repo, uerr := readRepository(filepath.Join(conf, confRepository))
	if err := errors.Join(rerr, uerr); err != nil {
		a.log.Error("no repository to update from: keeping what is installed", "event", "update_error", "err", err)
		return nil
	}
	a.source, err = tufclient.New(tufclient.Options{Dir: filepath.Join(a.cfg.dataDir, "tuf"), Root: root, URL: repo})
	if err != nil {
		a.log.Error("no repository to update from: keeping what is installed", "event", "update_error", "err", err)
		a.source = nil
	}
	return nil
}

// checkPolicy refuses a policy that would seal recordings to a key the technician did not
// install: whoever holds the policy-signing key must not be able to add an eavesdropper.
func (a *agent) checkPolicy(p *policy.Policy) error {
	if len(a.pinned) == 0 {
		return nil
	}
	for _, r := range p.Recording.Recipients {
		if !slices.Contains(a.pinned, r) {
			return fmt.Errorf("recording recipient %s is not one installed on this phone", r)
		}
	}
	return nil
}

// check asks the repository for news once, and logs what came of it.
func (a *agent) check(ctx context.Context) bool {
	ch, err := a.updates.Check(ctx, a.source)
	for _, d := range a.source.Damaged {
		a.log.Error("cached repository metadata damaged and dropped", "event", "update_damaged", "detail", d)
	}
	a.source.Damaged = nil
	if err != nil {
		a.log.Error("update refused or failed; what is installed stays in force", "event", "update_error", "err", err,
			"state", a.updates.State().Describe(time.Now()))
	}
	if f := a.updates.Freshness(time.Now()); f.Stale {
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

// runUpdates checks the repository every interval (with jitter, so that a facility's phones
// do not all ask at once), and sooner after a failure, with backoff, until ctx ends.
func (a *agent) runUpdates(ctx context.Context, interval time.Duration) {
	if a.source == nil {
		return
	}
	// The first check comes soon after start: a phone that was off for a while may have
	// missed a registry.
	wait, failures := jitter(20*time.Second), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if a.check(ctx) {
			select {
			case a.installed <- struct{}{}:
			default:
			}
		}
		if a.updates.State().LastError != "" {
			failures++
			wait = jitter(min(interval, time.Minute<<min(failures, 6)))
		} else {
			failures, wait = 0, jitter(interval)
		}
	}
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

// between runs in the call loop after each tick: what the update goroutine installed takes
// effect once the phone is idle, so a call keeps the rules it started with, and a recorded
// call in progress is in the call records before the destroy-on-discovery sweep runs.
func (a *agent) between(m interface{ InCall() bool }) {
	select {
	case <-a.installed:
		a.apply = true
	default:
	}
	if !a.apply || m.InCall() {
		return
	}
	a.apply = false
	if p := a.updates.Policy(); a.policyFromRepo() && p != nil && p != a.policy {
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
func (a *agent) takeRegistry() bool {
	path := a.updates.RegistryPath()
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
	a.registry, a.regPath = s, path
	a.log.Info("registry in force", "event", "registry_in_force", "version", s.Version(), "entries", s.Len())
	return true
}

// sweep destroys recordings whose number the registry in force now says is privileged,
// including those of calls decided while the registry was stale. It logs a failed sweep
// (the next install or start runs it again) and returns only a failure to reopen the state
// database after compacting it.
func (a *agent) sweep() error {
	n, err := purge.Sweep(a.registry, lockedStore{a}, a.spool, a.key, a.deviceID, time.Now(), a.log)
	if err != nil {
		a.log.Error("destroy-on-discovery sweep failed; it runs again at the next install or start", "event", "purge_error", "err", err)
	}
	if n > 0 {
		// The scrubbed numbers must not linger in the database file's free pages.
		return a.compactStore()
	}
	return nil
}

// newRecorder makes the recorder for the policy in force.
func (a *agent) newRecorder() error {
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
		return err
	}
	a.recorder = r
	return nil
}

// machineConfig is the call machine's view of the agent; the board gives the devices and
// the trunk.
func (a *agent) machineConfig(c call.Config) call.Config {
	c.Prompts = a.prompts
	c.Policy = func() *policy.Policy { return a.policy }
	c.Registry = func() call.Registry {
		if a.registry == nil {
			return nil
		}
		return a.registry
	}
	c.Freshness = func(now time.Time) registry.Freshness {
		if !a.registryFromRepo() {
			return registry.Freshness{}
		}
		return a.updates.Freshness(now)
	}
	c.Audit = a
	c.Recorder = agentRecorder{a}
	c.Store = lockedStore{a}
	c.DeviceID = a.deviceID
	return c
}

// agentRecorder starts recordings with the recorder of the policy in force.
type agentRecorder struct{ a *agent }

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

// lockedStore is the state database in force, for every goroutine: compaction closes and
// reopens it under dbMu.
type lockedStore struct{ a *agent }

func (s lockedStore) db() (*store.DB, func()) {
	s.a.dbMu.RLock()
	return s.a.db, s.a.dbMu.RUnlock
}

func (s lockedStore) Lockout(id string) (pin.Lockout, error) {
	db, done := s.db()
	defer done()
	return db.Lockout(id)
}

func (s lockedStore) SetLockout(id string, l pin.Lockout) error {
	db, done := s.db()
	defer done()
	return db.SetLockout(id, l)
}

func (s lockedStore) PutCall(id string, rec []byte) error {
	db, done := s.db()
	defer done()
	return db.PutCall(id, rec)
}

func (s lockedStore) Calls(fn func(callID string, record []byte) error) error {
	db, done := s.db()
	defer done()
	return db.Calls(fn)
}

func (s lockedStore) DeviceID() (string, error) {
	db, done := s.db()
	defer done()
	return db.DeviceID()
}

func (s lockedStore) ConsoleFailures() (int, time.Time, error) {
	db, done := s.db()
	defer done()
	return db.ConsoleFailures()
}

func (s lockedStore) SetConsoleFailures(n int, until time.Time) error {
	db, done := s.db()
	defer done()
	return db.SetConsoleFailures(n, until)
}

// Decided appends a decision to the audit log. No number is written in clear, whatever the
// decision: the log cannot be scrubbed if a recorded number turns out privileged later. It
// runs on the call loop and waits for the fsync on purpose: the entry is on flash before
// anything is dialed, once per call, while a prompt plays (the handset's rings ride out the
// pause).
func (a *agent) Decided(callID string, at time.Time, d call.Decision) error {
	f := map[string]string{
		"call_id": callID, "decision": string(d.Kind), "reason": d.Reason,
		"registry_version": strconv.FormatUint(d.RegistryVersion, 10),
		"policy_version":   strconv.FormatInt(d.PolicyVersion, 10),
		"decided_at":       at.UTC().Format(time.RFC3339Nano),
	}
	if a.registryFromRepo() {
		f["registry_sha256"] = a.updates.State().Registry.SHA256
	}
	if d.E164 != "" {
		f["number_mac"] = audit.NumberMAC(a.auditKey, d.E164)
	}
	if d.Stale {
		f["registry_stale"] = "true"
	}
	if d.Kind == call.Privileged {
		f["privileged_kind"] = string(d.Privileged.Kind)
	}
	return a.audit.Append("decision", f)
}

// openAudit opens the audit log and its key. A phone enrolled without a key gets a random
// one of its own: its hashes then match nothing outside the phone, which is safe.
func (a *agent) openAudit() error {
	path := filepath.Join(a.cfg.dataDir, "conf", confAuditKey)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if a.auditKey, err = audit.ParseKey(b); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		a.auditKey = make([]byte, 32)
		rand.Read(a.auditKey)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(path, []byte(hex.EncodeToString(a.auditKey)+"\n"), 0o600); err != nil {
			return err
		}
		a.log.Warn("no audit key installed: made one for this phone alone", "event", "audit_key_created", "file", path)
	default:
		return err
	}
	l, repaired, err := audit.Open(filepath.Join(a.cfg.dataDir, "audit.log"), audit.Options{Key: a.key})
	if err != nil {
		return fmt.Errorf("%w (move the file aside to start a new log; keep it for the auditors)", err)
	}
	if repaired {
		a.log.Warn("audit log: an entry cut short by a power cut was removed", "event", "audit_repaired")
	}
	a.audit = l
	return nil
}

func (a *agent) registryVersion() uint64 {
	if a.registry == nil {
		return 0
	}
	return a.registry.Version()
}

// compactStore rewrites the state database without its freed pages.
func (a *agent) compactStore() error {
	a.dbMu.Lock()
	defer a.dbMu.Unlock()
	path := a.db.Path()
	if err := a.db.Close(); err != nil {
		return err
	}
	if err := store.Compact(path); err != nil {
		a.log.Error("compacting the state database failed: scrubbed numbers may remain in its free pages", "event", "purge_error", "err", err)
	}
	db, err := store.Open(path)
	if err != nil {
		return err
	}
	a.db = db
	return nil
}

// close seals what is still in flight and closes the spool and the database, in that order.
func (a *agent) close() error {
	var errs []error
	if a.recorder != nil {
		errs = append(errs, a.recorder.Close())
	}
	if a.spool != nil {
		errs = append(errs, a.spool.Close())
	}
	if a.registry != nil {
		a.registry.Close()
	}
	if a.updates != nil {
		a.updates.Close()
	}
	errs = append(errs, a.audit.Close(), a.db.Close())
	return errors.Join(errs...)
}

func (a *agent) closeQuiet() { _ = a.close() }

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

// readRecipients reads the pinned recording recipients; a missing file pins none.
func readRecipients(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := recipients.ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Repository is repository.json.
type Repository struct {
	URL string `json:"url"`
}

func readRepository(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	u, err := parseRepository(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

func parseRepository(b []byte) (string, error) {
	var r Repository
	if err := strictjson.Decode(b, &r); err != nil {
		return "", fmt.Errorf("want {\"url\": \"https://...\"}: %w", err)
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
		return "", fmt.Errorf("url %q: want an http, https or file URL", r.URL)
	}
	return r.URL, nil
}

// validRoot accepts root metadata that verifies against itself, as go-tuf will need it to.
func validRoot(b []byte) error {
	if _, err := trustedmetadata.New(b); err != nil {
		return fmt.Errorf("not a TUF root that verifies: %w", err)
	}
	return nil
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
func (a *agent) registryFromRepo() bool { return a.updates != nil && a.cfg.registry == "" }
func (a *agent) policyFromRepo() bool   { return a.updates != nil && a.cfg.policy == "" }

// rules reads the rules in force without touching what the call loop owns: from the
// installed state (guarded by its own lock), or from the local files, which never change.
func (a *agent) rules(now time.Time) rulesStatus {
	r := rulesStatus{freshness: "local files, not from a repository"}
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
	r.stale, r.freshUntil, r.freshness = f.Stale, st.FreshUntil, st.Describe(now)
	if a.updates.RegistryPath() != "" {
		r.registryVersion = st.Registry.Version
	}
	return r
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
