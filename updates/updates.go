// Package updates keeps the phone's privileged-number registry and facility policy current
// from the vendor's TUF repository, and installs them on the phone's flash. It keeps
// promises 1 and 6: the phone decides only from a registry and policy the repository's keys
// signed, never installs an older version or a registry whose removals are not listed,
// falls back to the last verified registry (never an empty one) when nothing fresh can be
// had, and knows when that registry went stale.
//
// Installed files live in one directory: registry-<version>.reg (the compact registry, mapped
// by the call loop), policy.json, and state.json, which says what is installed and until when
// it is fresh. A registry file is renamed into place only after it was verified, and
// state.json is written last, so a power cut at any point leaves the previous installation
// whole.
package updates

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/tufclient"
)

// Target names in the repository.
const (
	RegistryTarget = "registry.reg"
)

// PolicyTarget is the target name of a facility's policy.
func PolicyTarget(facility string) string { return "policy/" + facility + ".json" }

// DeltaTarget is the target name of the delta from one registry version to another.
func DeltaTarget(from, to uint64) string { return fmt.Sprintf("registry-delta/%d-%d.delta", from, to) }

// Custom is the custom metadata of registry and policy targets.
type Custom struct {
	Version uint64 `json:"version"`
}

// Source is the verified repository: tufclient.Client.
type Source interface {
	Refresh(ctx context.Context) (time.Time, error)
	Target(name string) (tufclient.Target, error)
	Fetch(ctx context.Context, t tufclient.Target, w io.Writer) error
}

// Options configure Open.
type Options struct {
	Dir      string
	Facility string
	// CheckPolicy refuses a policy the phone must not use (another facility's recipients,
	// say) beyond what policy.Parse checks; nil accepts.
	CheckPolicy func(*policy.Policy) error
	// LocalPolicy and LocalRegistry say that the phone runs on a local file for that item
	// (the simulated phone's tests and bench work): the repository's is then neither fetched
	// nor installed, so that no log line says a rule was installed that is not in force.
	LocalPolicy, LocalRegistry bool
	Log                        *slog.Logger
	Now                        func() time.Time
}

// Installed is one installed item.
type Installed struct {
	Version uint64 `json:"version"`
	// SHA256 is what the phone computed over the verified bytes it installed: what the file
	// on flash is checked against, whatever hashes the metadata carried.
	SHA256 string `json:"sha256"`
	Length int64  `json:"length"`
	// Signed are the target's signed hashes (hex, by algorithm), to know it again.
	Signed    map[string]string `json:"signed,omitempty"`
	Installed time.Time         `json:"installed"`
}

// newInstalled records what was installed from t, whose bytes have the SHA-256 sum.
func newInstalled(v uint64, t tufclient.Target, sum []byte, now time.Time) Installed {
	signed := map[string]string{}
	for alg, h := range t.Hashes {
		signed[alg] = hex.EncodeToString(h)
	}
	return Installed{Version: v, SHA256: hex.EncodeToString(sum), Length: t.Length, Signed: signed, Installed: now.UTC()}
}

// same says whether t is the target installed: the same length, and the same hash for
// every algorithm both name (at least one). An install recorded before the signed hashes
// were kept is known by its SHA-256.
func (inst Installed) same(t tufclient.Target) bool {
	if t.Length != inst.Length {
		return false
	}
	signed := inst.Signed
	if len(signed) == 0 {
		signed = map[string]string{"sha256": inst.SHA256}
	}
	n := 0
	for alg, h := range t.Hashes {
		if s, ok := signed[alg]; ok {
			if s != hex.EncodeToString(h) {
				return false
			}
			n++
		}
	}
	return n > 0
}

// State is what state.json holds.
type State struct {
	// FreshUntil is when the verified metadata behind the installed registry expires.
	FreshUntil  time.Time `json:"fresh_until"`
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Registry    Installed `json:"registry"`
	Policy      Installed `json:"policy"`
}

// Errors that say why an update was refused.
var (
	ErrRollback = errors.New("updates: older than the installed version")
	ErrMismatch = errors.New("updates: content does not match its signed metadata")
)

// Updates is the installed registry and policy. Its methods are safe for concurrent use: the
// call loop reads, the update goroutine installs.
type Updates struct {
	o  Options
	mu sync.Mutex
	st State
	// reg is Updates' own handle on the installed registry, the base for deltas and the
	// removal check; the call loop holds handles of its own.
	reg *registry.Set
	pol *policy.Policy
}

const (
	stateFile  = "state.json"
	policyFile = "policy.json"
)

func registryFile(v uint64) string { return fmt.Sprintf("registry-%d.reg", v) }

// Open reads what is installed. Damage is logged and costs only what is damaged: a registry
// that fails its checks is dropped (the phone records nothing until a verified one arrives),
// while the versions already seen still bar older ones.
func Open(o Options) (*Updates, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("updates: %w", err)
	}
	u := &Updates{o: o}
	b, err := os.ReadFile(filepath.Join(o.Dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("updates: %w", err)
	default:
		if err := json.Unmarshal(b, &u.st); err != nil {
			o.Log.Error("installed state damaged; starting from the files that verify", "event", "update_damaged", "file", filepath.Join(o.Dir, stateFile), "err", err)
			u.st = State{}
			u.recoverState()
		}
	}
	if u.st.Registry.Version > 0 {
		path := filepath.Join(o.Dir, registryFile(u.st.Registry.Version))
		err := checkInstalled(path, u.st.Registry)
		if err == nil {
			u.reg, err = registry.Open(path)
		}
		if err != nil {
			o.Log.Error("installed registry not verified: no registry until a verified one is fetched", "event", "registry_damaged", "file", path, "err", err)
			u.reg = nil
		}
	}
	if u.st.Policy.Version > 0 {
		path := filepath.Join(o.Dir, policyFile)
		err := checkInstalled(path, u.st.Policy)
		if err == nil {
			u.pol, err = policy.Load(path)
		}
		if err == nil && o.CheckPolicy != nil {
			// The phone's own rule may have changed since the install (a re-enrolment with
			// other recipients): what is installed meets today's.
			err = o.CheckPolicy(u.pol)
		}
		if err != nil {
			o.Log.Error("installed policy not verified: no policy until a verified one is fetched", "event", "policy_damaged", "file", path, "err", err)
			u.pol = nil
		}
	}
	u.removeStale()
	return u, nil
}

// recoverState rebuilds the versions from the files on flash, so that they still bar older
// ones; with no hash to check the files by, Open then uses none of them.
func (u *Updates) recoverState() {
	names, _ := filepath.Glob(filepath.Join(u.o.Dir, "registry-*.reg"))
	for _, n := range names {
		s, err := registry.Open(n)
		if err != nil {
			continue
		}
		if v := s.Version(); v > u.st.Registry.Version {
			u.st.Registry = Installed{Version: v}
		}
		s.Close()
	}
	if p, err := policy.Load(filepath.Join(u.o.Dir, policyFile)); err == nil {
		u.st.Policy = Installed{Version: uint64(p.Version)}
	}
}

// removeStale deletes registry files other than the installed one: leftovers of an install
// cut short, or of the one before (whose mappings, if any, outlive the name).
func (u *Updates) removeStale() {
	names, _ := filepath.Glob(filepath.Join(u.o.Dir, "registry-*"))
	keep := registryFile(u.st.Registry.Version)
	for _, n := range names {
		if filepath.Base(n) != keep || u.reg == nil {
			os.Remove(n)
		}
	}
}

// Close releases Updates' own registry handle.
func (u *Updates) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.reg != nil {
		return u.reg.Close()
	}
	return nil
}

// State returns what state.json says.
func (u *Updates) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.st
}

// Policy is the installed policy, or nil.
func (u *Updates) Policy() *policy.Policy {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pol
}

// RegistryPath is the installed registry's file, or "" if there is none: the call loop opens
// its own handle on it.
func (u *Updates) RegistryPath() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.reg == nil {
		return ""
	}
	return filepath.Join(u.o.Dir, registryFile(u.st.Registry.Version))
}

// Freshness says whether the installed registry is past the expiry of the metadata that
// vouched for it.
func (u *Updates) Freshness(now time.Time) registry.Freshness {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.reg == nil || now.Before(u.st.FreshUntil) {
		return registry.Freshness{}
	}
	return registry.Freshness{Stale: true, Since: u.st.FreshUntil}
}

// Changes says what a Check installed.
type Changes struct {
	Registry bool
	Policy   bool
	// Via is "delta" or "full" for a registry.
	Via string
}

// Check refreshes the metadata and installs a newer policy and registry if there are any. On
// any error what was installed stays installed; the error says what was refused and why.
func (u *Updates) Check(ctx context.Context, src Source) (Changes, error) {
	var ch Changes
	until, err := src.Refresh(ctx)
	now := u.o.Now()
	if err != nil {
		u.note(func(st *State) { st.LastError = err.Error() })
		return ch, err
	}
	var errs []error
	if !u.o.LocalPolicy {
		if ok, err := u.checkPolicy(ctx, src); err != nil {
			errs = append(errs, fmt.Errorf("policy: %w", err))
		} else {
			ch.Policy = ok
		}
	}
	current := false
	if !u.o.LocalRegistry {
		var via string
		var vouched time.Time
		current, via, vouched, err = u.checkRegistry(ctx, src)
		if !vouched.IsZero() && vouched.Before(until) {
			// The registry's own role may expire before the top-level metadata does.
			until = vouched
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("registry: %w", err))
		} else {
			ch.Registry, ch.Via = via != "", via
		}
	}
	err = errors.Join(errs...)
	u.note(func(st *State) {
		st.LastRefresh = now
		st.LastError = ""
		if err != nil {
			st.LastError = err.Error()
		}
		// Fresh only while the installed registry is the one the metadata names: a
		// registry that cannot be fetched is as stale as one that cannot be heard of.
		if current {
			st.FreshUntil = until
		}
	})
	return ch, err
}

// note changes the state and writes it.
func (u *Updates) note(change func(*State)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	change(&u.st)
	if err := u.writeState(); err != nil {
		u.o.Log.Error("writing the installed state", "event", "update_error", "err", err)
	}
}

func (u *Updates) writeState() error {
	b, err := json.MarshalIndent(u.st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(u.o.Dir, stateFile), append(b, '\n'), 0o600)
}

func version(t tufclient.Target) (uint64, error) {
	var c Custom
	if err := json.Unmarshal(t.Custom, &c); err != nil || c.Version == 0 {
		return 0, fmt.Errorf("target %s: no version in its signed metadata", t.Name)
	}
	return c.Version, nil
}

func (u *Updates) checkPolicy(ctx context.Context, src Source) (bool, error) {
	t, err := src.Target(PolicyTarget(u.o.Facility))
	if err != nil {
		return false, err
	}
	v, err := version(t)
	if err != nil {
		return false, err
	}
	st := u.State()
	if st.Policy.same(t) && u.Policy() != nil {
		return false, nil
	}
	if v < st.Policy.Version || (v == st.Policy.Version && u.Policy() != nil) {
		return false, fmt.Errorf("%w: version %d offered, %d installed", ErrRollback, v, st.Policy.Version)
	}
	var buf bytes.Buffer
	if err := src.Fetch(ctx, t, &buf); err != nil {
		return false, err
	}
	p, err := policy.Parse(buf.Bytes())
	if err != nil {
		return false, err
	}
	switch {
	case uint64(p.Version) != v:
		return false, fmt.Errorf("%w: the file says version %d, its metadata %d", ErrMismatch, p.Version, v)
	case p.Facility != u.o.Facility:
		return false, fmt.Errorf("%w: the policy is for facility %q, this phone is in %q", ErrMismatch, p.Facility, u.o.Facility)
	}
	if u.o.CheckPolicy != nil {
		if err := u.o.CheckPolicy(p); err != nil {
			return false, err
		}
	}
	if err := atomicfile.Write(filepath.Join(u.o.Dir, policyFile), buf.Bytes(), 0o600); err != nil {
		return false, err
	}
	u.mu.Lock()
	u.pol = p
	sum := sha256.Sum256(buf.Bytes())
	u.st.Policy = newInstalled(v, t, sum[:], u.o.Now())
	err = u.writeState()
	u.mu.Unlock()
	u.o.Log.Info("facility policy installed", "event", "policy_installed", "version", v, "facility", p.Facility)
	return true, err
}

// checkRegistry installs the registry the metadata names if it is newer, and reports whether
// the installed registry is now that one, and how it was fetched.
func (u *Updates) checkRegistry(ctx context.Context, src Source) (current bool, via string, vouched time.Time, err error) {
	t, err := src.Target(RegistryTarget)
	if err != nil {
		return false, "", time.Time{}, err
	}
	current, via, err = u.installRegistry(ctx, src, t)
	return current, via, t.Expires, err
}

func (u *Updates) installRegistry(ctx context.Context, src Source, t tufclient.Target) (current bool, via string, err error) {
	v, err := version(t)
	if err != nil {
		return false, "", err
	}
	u.mu.Lock()
	old, st := u.reg, u.st
	u.mu.Unlock()
	if old != nil && v == st.Registry.Version && st.Registry.same(t) {
		return true, "", nil
	}
	if v < st.Registry.Version || (v == st.Registry.Version && old != nil) {
		return false, "", fmt.Errorf("%w: version %d offered, %d installed", ErrRollback, v, st.Registry.Version)
	}
	start := time.Now()
	tmp := filepath.Join(u.o.Dir, registryFile(v)+".tmp")
	defer os.Remove(tmp)
	via = "full"
	var sum []byte
	if old != nil {
		if sum, err = u.viaDelta(ctx, src, old, st.Registry.Version, v, t, tmp); err == nil {
			via = "delta"
		} else if !errors.Is(err, tufclient.ErrNoTarget) {
			u.o.Log.Warn("registry delta refused; fetching the whole registry", "event", "registry_delta_refused", "err", err)
		}
	}
	if via == "full" {
		if sum, err = fetchFile(ctx, src, t, tmp); err != nil {
			return false, "", err
		}
	}
	next, err := registry.Open(tmp)
	if err != nil {
		return false, "", fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	if next.Version() != v {
		next.Close()
		return false, "", fmt.Errorf("%w: the file says version %d, its metadata %d", ErrMismatch, next.Version(), v)
	}
	if old != nil {
		if err := registry.CheckRemovals(old, next); err != nil {
			next.Close()
			return false, "", err
		}
	}
	final := filepath.Join(u.o.Dir, registryFile(v))
	if err := os.Rename(tmp, final); err != nil {
		next.Close()
		return false, "", err
	}
	if err := atomicfile.SyncDir(u.o.Dir); err != nil {
		next.Close()
		return false, "", err
	}
	u.mu.Lock()
	prev := st.Registry.Version
	u.reg = next
	u.st.Registry = newInstalled(v, t, sum, u.o.Now())
	err = u.writeState()
	u.mu.Unlock()
	if err != nil {
		return false, "", err
	}
	if old != nil {
		old.Close()
	}
	if prev != v {
		os.Remove(filepath.Join(u.o.Dir, registryFile(prev)))
	}
	u.o.Log.Info("registry installed", "event", "registry_installed", "version", v, "previous", prev,
		"entries", next.Len(), "bytes", t.Length, "via", via, "took", time.Since(start).Round(time.Millisecond).String())
	return true, via, nil
}

// viaDelta rebuilds registry v from the installed one and a delta, into tmp, checks the
// result against the full registry's signed length and hashes, and returns its SHA-256.
func (u *Updates) viaDelta(ctx context.Context, src Source, old *registry.Set, from, v uint64, full tufclient.Target, tmp string) ([]byte, error) {
	dt, err := src.Target(DeltaTarget(from, v))
	if err != nil {
		return nil, err
	}
	var delta bytes.Buffer
	if err := src.Fetch(ctx, dt, &delta); err != nil {
		return nil, err
	}
	h, check := sha256.New(), full.Verifier()
	err = atomicfile.WriteFunc(tmp, 0o600, func(w io.Writer) error {
		return registry.ApplyDelta(io.MultiWriter(w, h, check), old, delta.Bytes())
	})
	if err != nil {
		return nil, err
	}
	if err := check.Verify(); err != nil {
		return nil, fmt.Errorf("%w: the registry rebuilt from the delta differs from the signed one: %w", ErrMismatch, err)
	}
	return h.Sum(nil), nil
}

// fetchFile writes a verified target to path and returns the SHA-256 of what it wrote.
func fetchFile(ctx context.Context, src Source, t tufclient.Target, path string) ([]byte, error) {
	h := sha256.New()
	err := atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error { return src.Fetch(ctx, t, io.MultiWriter(w, h)) })
	return h.Sum(nil), err
}

// Describe is a one-line summary for status displays.
func (s State) Describe(now time.Time) string {
	return fmt.Sprintf("registry v%d, policy v%d, %s", s.Registry.Version, s.Policy.Version, s.RegistryFreshness(now))
}

// RegistryFreshness says how current the installed registry is at now: "never verified",
// "fresh until T" or "stale since T".
func (s State) RegistryFreshness(now time.Time) string {
	switch {
	case s.FreshUntil.IsZero():
		return "never verified"
	case now.Before(s.FreshUntil):
		return "fresh until " + s.FreshUntil.UTC().Format(time.RFC3339)
	default:
		return "stale since " + s.FreshUntil.UTC().Format(time.RFC3339)
	}
}

// ErrNotVerified is wrapped by the errors for an installed file that is not what was
// verified at install: changed on flash, or with no hash to check it by.
var ErrNotVerified = errors.New("updates: installed file is not what was verified")

// checkInstalled checks an installed file against the length and hash its signed metadata
// gave at install, streaming it: a registry is too big to read whole on a small board.
func checkInstalled(path string, inst Installed) error {
	if inst.SHA256 == "" {
		return fmt.Errorf("%w: no hash recorded at install (the installed state was rebuilt)", ErrNotVerified)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != inst.Length || got != inst.SHA256 {
		return fmt.Errorf("%w: %d bytes with SHA-256 %s, installed as %d bytes with %s", ErrNotVerified, n, got, inst.Length, inst.SHA256)
	}
	return nil
}

// InstalledRegistry returns the installed registry's path ("" if none) and what was
// installed, in one snapshot: the caller that opens the file knows which hash it holds.
func (u *Updates) InstalledRegistry() (string, Installed) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.reg == nil {
		return "", u.st.Registry
	}
	return filepath.Join(u.o.Dir, registryFile(u.st.Registry.Version)), u.st.Registry
}
