package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// The delegated roles of a wallphone repository and the paths each owns (README, "Who signs
// what"). Which keys sign each is the deployment's choice, given to Delegate.
const (
	// RegistryRole signs the privileged-number registry and its deltas: its keepers' keys
	// (a public defender office, the bar, a court clerk), never the vendor's.
	RegistryRole = "registry"
	// FirmwareRole signs firmware images: the vendor's release keys.
	FirmwareRole = "firmware"
)

// RegistryPaths are the targets the registry role owns.
var registryPaths = []string{"registry.reg", "registry-delta/*"}

// RegistryPaths are the targets the registry role owns.
func RegistryPaths() []string { return slices.Clone(registryPaths) }

// FirmwarePaths are the targets the firmware role owns.
func FirmwarePaths() []string { return []string{"firmware/*"} }

// PolicyRole is the role of one facility's policy, signed by the facility's own keys.
func PolicyRole(facility string) string { return "policy-" + facility }

// PolicyPaths are the targets a facility's policy role owns.
func PolicyPaths(facility string) []string { return []string{"policy/" + facility + ".json"} }

// Delegation is what the top-level targets role says of a delegated role.
type Delegation struct {
	Name      string
	Paths     []string // TUF path patterns ("registry-delta/*")
	Keys      []ed25519.PublicKey
	Threshold int
	// Expires is how long each version of the role's metadata stays valid once signed;
	// zero keeps what the repository had, else Expiry.Delegated.
	Expires time.Duration
}

// CheckRoleName returns an error wrapping ErrRoleName unless name can be a delegated role:
// the name becomes a file name under metadata/ and part of the URL phones fetch, so it is
// kept to letters, digits, "-", "_" and "." (never first, never two in a row).
func CheckRoleName(name string) error {
	switch name {
	case "", Root, Targets, Snapshot, Timestamp:
		return fmt.Errorf("%w: %q", ErrRoleName, name)
	}
	if strings.HasPrefix(name, ".") || strings.Contains(name, "..") || len(name) > 128 {
		return fmt.Errorf("%w: %q", ErrRoleName, name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("%w: %q has %q", ErrRoleName, name, c)
		}
	}
	return nil
}

func (r *Repo) initDelegated() {
	r.roles = map[string]*metadata.Metadata[metadata.TargetsType]{}
	r.next = map[string]*metadata.Metadata[metadata.TargetsType]{}
	r.dirty = map[string]bool{}
	r.expiry = map[string]time.Duration{}
}

// openDelegated reads the delegated roles the snapshot lists, what is pending, and the
// roles' expiries.
func (r *Repo) openDelegated() error {
	md := filepath.Join(r.dir, "metadata")
	for name, mf := range r.snapshot.Signed.Meta {
		role := strings.TrimSuffix(name, ".json")
		if role == Targets {
			continue
		}
		m, err := metadata.Targets().FromFile(filepath.Join(md, fmt.Sprintf("%d.%s.json", mf.Version, role)))
		if err != nil {
			return fmt.Errorf("tufrepo: role %s: %w", role, err)
		}
		r.roles[role] = m
	}
	pending, err := filepath.Glob(filepath.Join(r.dir, "pending", "*.json"))
	if err != nil {
		return err
	}
	for _, p := range pending {
		role := strings.TrimSuffix(filepath.Base(p), ".json")
		m, err := metadata.Targets().FromFile(p)
		if err != nil {
			return fmt.Errorf("tufrepo: pending %s: %w", role, err)
		}
		if role == Targets {
			r.nextTop = m
		} else {
			r.next[role] = m
		}
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "role-expiry.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var days map[string]int
	if err := json.Unmarshal(b, &days); err != nil {
		return fmt.Errorf("tufrepo: role-expiry.json: %w", err)
	}
	for role, d := range days {
		r.expiry[role] = time.Duration(d) * 24 * time.Hour
	}
	return nil
}

// delegates reports whether the top-level targets role, as it will be published next,
// delegates: then AddTarget routes every target to a delegated role.
func (r *Repo) delegates() bool {
	d := r.top().Signed.Delegations
	return d != nil && len(d.Roles) > 0
}

// top is the top-level targets metadata as it will be published next.
func (r *Repo) top() *metadata.Metadata[metadata.TargetsType] {
	if r.nextTop != nil {
		return r.nextTop
	}
	return r.targets
}

// covering is the delegation of top whose paths cover target name, or nil. Delegations are
// terminating and one level deep, so the first match is the only one that counts, as in a
// client's walk.
func covering(top *metadata.Metadata[metadata.TargetsType], name string) *metadata.DelegatedRole {
	if top.Signed.Delegations == nil {
		return nil
	}
	for i := range top.Signed.Delegations.Roles {
		d := &top.Signed.Delegations.Roles[i]
		if ok, _ := d.IsDelegatedPath(name); ok {
			return d
		}
	}
	return nil
}

func delegation(top *metadata.Metadata[metadata.TargetsType], role string) *metadata.DelegatedRole {
	if top.Signed.Delegations == nil {
		return nil
	}
	for i := range top.Signed.Delegations.Roles {
		if top.Signed.Delegations.Roles[i].Name == role {
			return &top.Signed.Delegations.Roles[i]
		}
	}
	return nil
}

// nextFor is the next metadata of the role that owns target name, made from the published
// one if nothing is pending, and marked changed.
func (r *Repo) nextFor(name string) (*metadata.Metadata[metadata.TargetsType], error) {
	d := covering(r.top(), name)
	if d == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoDelegation, name)
	}
	m := r.nextOf(d.Name)
	r.dirty[d.Name] = true
	return m, nil
}

func (r *Repo) nextOf(role string) *metadata.Metadata[metadata.TargetsType] {
	if m := r.next[role]; m != nil {
		return m
	}
	m := metadata.Targets()
	m.Signed.Version = 0
	if pub := r.roles[role]; pub != nil {
		m = clone(pub)
	}
	r.next[role] = m
	return m
}

func clone(m *metadata.Metadata[metadata.TargetsType]) *metadata.Metadata[metadata.TargetsType] {
	b, err := m.ToBytes(false)
	if err != nil {
		panic(err) // it was read from or made as valid metadata
	}
	c, err := metadata.Targets().FromBytes(b)
	if err != nil {
		panic(err)
	}
	return c
}

// Delegate adds the delegation d, or replaces the one of that name (a keeper leaves,
// another joins: the role's keys are replaced whole), in new top-level targets metadata
// signed with signers[Targets]; then it commits as Commit does. Targets the top-level role
// listed under d's paths move into the role's next metadata. If the role's published
// metadata is not signed by enough of d's keys, its next version (same targets) waits for
// them: the new delegation is published only together with metadata it accepts, so phones
// never see a delegation whose role they must refuse.
func (r *Repo) Delegate(d Delegation, signers Signers, exp Expiry, now time.Time) error {
	if err := CheckRoleName(d.Name); err != nil {
		return err
	}
	if len(d.Paths) == 0 {
		return fmt.Errorf("tufrepo: role %s: no paths", d.Name)
	}
	for _, p := range d.Paths {
		if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
			return fmt.Errorf("tufrepo: role %s: bad path pattern %q", d.Name, p)
		}
	}
	if d.Threshold < 1 || d.Threshold > len(d.Keys) {
		return fmt.Errorf("tufrepo: role %s: threshold %d with %d keys", d.Name, d.Threshold, len(d.Keys))
	}
	if len(r.dirty) > 0 {
		return errors.New("tufrepo: commit the targets added before delegating")
	}
	top := clone(r.top())
	if r.nextTop == nil {
		top.Signed.Version = r.targets.Signed.Version + 1
	}
	top.Signed.Expires = now.Add(exp.Targets).UTC().Truncate(time.Second)
	if top.Signed.Delegations == nil {
		top.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	dr := metadata.DelegatedRole{Name: d.Name, Threshold: d.Threshold, Terminating: true, Paths: slices.Clone(d.Paths)}
	for _, pub := range d.Keys {
		k, err := metadata.KeyFromPublicKey(pub)
		if err != nil {
			return fmt.Errorf("tufrepo: role %s: %w", d.Name, err)
		}
		id, err := k.ID()
		if err != nil {
			return err
		}
		if slices.Contains(dr.KeyIDs, id) {
			return fmt.Errorf("tufrepo: role %s: key %s given twice", d.Name, id[:12])
		}
		dr.KeyIDs = append(dr.KeyIDs, id)
		top.Signed.Delegations.Keys[id] = k
	}
	roles := top.Signed.Delegations.Roles
	if i := slices.IndexFunc(roles, func(x metadata.DelegatedRole) bool { return x.Name == d.Name }); i >= 0 {
		roles[i] = dr
	} else {
		top.Signed.Delegations.Roles = append(roles, dr)
	}
	dropUnusedKeys(top.Signed.Delegations)
	hadNext := r.next[d.Name] != nil
	next := r.nextOf(d.Name)
	moved := false
	for name, tf := range top.Signed.Targets {
		if ok, _ := dr.IsDelegatedPath(name); !ok {
			continue
		}
		if have := next.Signed.Targets[name]; have == nil || !have.Equal(*tf) {
			next.Signed.Targets[name] = tf
			moved = true
		}
		delete(top.Signed.Targets, name)
	}
	if err := sign(top, Targets, r.root.Signed.Roles[Targets], signers[Targets]); err != nil {
		return err
	}
	// A new role needs a first version, and a role whose keys changed needs its metadata
	// signed anew by the keys it now has. Metadata already pending stays as it is: only the
	// signatures of the keys the role now lists count towards its threshold.
	pub := r.roles[d.Name]
	switch {
	case moved || !hadNext && (pub == nil || top.VerifyDelegate(d.Name, pub) != nil):
		r.dirty[d.Name] = true
	case !hadNext:
		delete(r.next, d.Name) // the published metadata stands
	}
	if d.Expires > 0 {
		r.expiry[d.Name] = d.Expires
		if err := r.writeExpiry(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(r.dir, "pending"), 0o755); err != nil {
		return err
	}
	if err := writeMeta(top, filepath.Join(r.dir, "pending", Targets+".json")); err != nil {
		return err
	}
	r.nextTop = top
	return r.Commit(signers, exp, now)
}

// dropUnusedKeys removes the keys no role names any more: a key rotated out is gone from
// the metadata, not merely unused.
func dropUnusedKeys(d *metadata.Delegations) {
	used := map[string]bool{}
	for _, role := range d.Roles {
		for _, id := range role.KeyIDs {
			used[id] = true
		}
	}
	for id := range d.Keys {
		if !used[id] {
			delete(d.Keys, id)
		}
	}
}

func (r *Repo) writeExpiry() error {
	days := map[string]int{}
	for role, d := range r.expiry {
		days[role] = int(d / (24 * time.Hour))
	}
	b, err := json.MarshalIndent(days, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.dir, "role-expiry.json"), append(b, '\n'), 0o644)
}

func (r *Repo) roleExpiry(role string, exp Expiry) time.Duration {
	if d := r.expiry[role]; d > 0 {
		return d
	}
	if exp.Delegated > 0 {
		return exp.Delegated
	}
	return DefaultExpiry.Delegated
}

// Sign adds the signatures of keys to the pending metadata of role and writes it back; it
// publishes nothing (Commit, with the online keys, does once the threshold is met). This is
// what a keeper runs on their own machine. A key the role does not list is refused with
// ErrNotRoleKey, so a keeper rotated out learns at once that their signature counts for
// nothing.
func (r *Repo) Sign(role string, keys []ed25519.PrivateKey) error {
	m := r.next[role]
	if m == nil {
		return fmt.Errorf("%w: %s", ErrNotPending, role)
	}
	if r.dirty[role] {
		return fmt.Errorf("tufrepo: role %s changed: commit it before signing", role)
	}
	if err := addSignatures(m, r.top(), role, keys); err != nil {
		return err
	}
	return writeMeta(m, filepath.Join(r.dir, "pending", role+".json"))
}

// addSignatures signs m with each of keys, replacing an earlier signature of the same key.
func addSignatures(m *metadata.Metadata[metadata.TargetsType], top *metadata.Metadata[metadata.TargetsType], role string, keys []ed25519.PrivateKey) error {
	d := delegation(top, role)
	if d == nil {
		return fmt.Errorf("%w: %s", ErrNoRole, role)
	}
	for _, k := range keys {
		id, err := keyID(k.Public().(ed25519.PublicKey))
		if err != nil {
			return err
		}
		if !slices.Contains(d.KeyIDs, id) {
			return fmt.Errorf("%w: %s is not a %s key of this repository", ErrNotRoleKey, id[:12], role)
		}
		m.Signatures = slices.DeleteFunc(m.Signatures, func(s metadata.Signature) bool { return s.KeyID == id })
		s, err := signature.LoadSigner(k, crypto.Hash(0))
		if err != nil {
			return err
		}
		if _, err := m.Sign(s); err != nil {
			return fmt.Errorf("tufrepo: signing %s: %w", role, err)
		}
	}
	return nil
}

func keyID(pub ed25519.PublicKey) (string, error) {
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", err
	}
	return k.ID()
}

// signedBy lists the keys of role, as top delegates it, whose signature on m verifies.
func signedBy(top, m *metadata.Metadata[metadata.TargetsType], role string) []ed25519.PublicKey {
	d := delegation(top, role)
	if d == nil || m == nil {
		return nil
	}
	var out []ed25519.PublicKey
	for _, id := range d.KeyIDs {
		k := top.Signed.Delegations.Keys[id]
		// Checked one key at a time with go-tuf's own verification, as a phone checks it.
		one := metadata.Targets()
		one.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{id: k},
			Roles: []metadata.DelegatedRole{{Name: role, KeyIDs: []string{id}, Threshold: 1}}}
		if one.VerifyDelegate(role, m) != nil {
			continue
		}
		if pub, err := k.ToPublicKey(); err == nil {
			if ek, ok := pub.(ed25519.PublicKey); ok {
				out = append(out, ek)
			}
		}
	}
	return out
}

// commitDelegated is Commit for a repository that delegates.
func (r *Repo) commitDelegated(signers Signers, exp Expiry, now time.Time) error {
	if err := os.MkdirAll(filepath.Join(r.dir, "pending"), 0o755); err != nil {
		return err
	}
	for role := range r.dirty {
		m := r.next[role]
		m.Signed.Version = 1
		if pub := r.roles[role]; pub != nil {
			m.Signed.Version = pub.Signed.Version + 1
		}
		m.Signed.Expires = now.Add(r.roleExpiry(role, exp)).UTC().Truncate(time.Second)
		m.ClearSignatures()
	}
	clear(r.dirty)
	for _, role := range sortedKeys(r.next) {
		m := r.next[role]
		if keys := signers[role]; len(keys) > 0 {
			if err := addSignatures(m, r.top(), role, keys); err != nil {
				return err
			}
		}
		if err := writeMeta(m, filepath.Join(r.dir, "pending", role+".json")); err != nil {
			return err
		}
	}
	// The pending top-level targets go out only with every role it delegates to signed as
	// it requires; otherwise what the published top-level accepts goes out alone.
	top, picks, ok := r.nextTop, map[string]*metadata.Metadata[metadata.TargetsType]{}, false
	if top != nil {
		picks, ok = r.choose(top)
	}
	if !ok {
		top = r.targets
		picks, _ = r.choose(top)
	}
	changed := top != r.targets
	for role, m := range picks {
		changed = changed || m != r.roles[role]
	}
	if !changed {
		return nil
	}
	md := filepath.Join(r.dir, "metadata")
	versions := map[string]int64{Targets: top.Signed.Version}
	for role, m := range picks {
		versions[role] = m.Signed.Version
		if m == r.roles[role] {
			continue
		}
		// Signatures of keys the role no longer lists are left out: phones would ignore them.
		keep := signedBy(top, m, role)
		m.Signatures = slices.DeleteFunc(m.Signatures, func(s metadata.Signature) bool {
			for _, k := range keep {
				if id, _ := keyID(k); id == s.KeyID {
					return false
				}
			}
			return true
		})
		if err := writeMeta(m, filepath.Join(md, fmt.Sprintf("%d.%s.json", m.Signed.Version, role))); err != nil {
			return err
		}
	}
	if top != r.targets {
		if err := writeMeta(top, filepath.Join(md, fmt.Sprintf("%d.targets.json", top.Signed.Version))); err != nil {
			return err
		}
	}
	if err := r.publishSnapshot(versions, signers, exp, now); err != nil {
		return err
	}
	// Published: what was pending is now the repository's.
	if top == r.nextTop {
		r.nextTop = nil
		if err := removeIfThere(filepath.Join(r.dir, "pending", Targets+".json")); err != nil {
			return err
		}
	}
	r.targets = top
	for role, m := range picks {
		if r.next[role] == m {
			delete(r.next, role)
			if err := removeIfThere(filepath.Join(r.dir, "pending", role+".json")); err != nil {
				return err
			}
		}
	}
	r.roles = picks
	return nil
}

// choose picks, for every role top delegates to, the metadata to publish: the pending one if
// top accepts it, else the published one if top accepts that. ok is false if some role has
// neither.
func (r *Repo) choose(top *metadata.Metadata[metadata.TargetsType]) (map[string]*metadata.Metadata[metadata.TargetsType], bool) {
	picks, ok := map[string]*metadata.Metadata[metadata.TargetsType]{}, true
	if top.Signed.Delegations == nil {
		return picks, ok
	}
	for _, d := range top.Signed.Delegations.Roles {
		if m := r.next[d.Name]; m != nil && top.VerifyDelegate(d.Name, m) == nil {
			picks[d.Name] = m
		} else if m := r.roles[d.Name]; m != nil && top.VerifyDelegate(d.Name, m) == nil {
			picks[d.Name] = m
		} else {
			ok = false
		}
	}
	return picks, ok
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func removeIfThere(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// RoleInfo is a delegated role as people need to see it (repo list, repo sign).
type RoleInfo struct {
	Name      string
	Paths     []string
	Keys      []ed25519.PublicKey // as the next top-level targets delegates
	Threshold int
	// Version and Expires are those of the published metadata; Version is 0 if none is.
	Version   int64
	Expires   time.Time
	Published map[string]*metadata.TargetFiles
	// Pending is the role's next metadata waiting for signatures, or nil.
	Pending *Pending
}

// Pending is a delegated role's next metadata, as its signers are asked to sign it.
type Pending struct {
	Version  int64
	Expires  time.Time
	Targets  map[string]*metadata.TargetFiles
	SignedBy []ed25519.PublicKey // the role's keys whose signatures verify
}

// Roles describes every delegated role, in the order the top-level targets delegates.
func (r *Repo) Roles() []RoleInfo {
	top := r.top()
	if top.Signed.Delegations == nil {
		return nil
	}
	var out []RoleInfo
	for _, d := range top.Signed.Delegations.Roles {
		ri := RoleInfo{Name: d.Name, Paths: d.Paths, Threshold: d.Threshold}
		for _, id := range d.KeyIDs {
			if pub, err := top.Signed.Delegations.Keys[id].ToPublicKey(); err == nil {
				if ek, ok := pub.(ed25519.PublicKey); ok {
					ri.Keys = append(ri.Keys, ek)
				}
			}
		}
		if m := r.roles[d.Name]; m != nil {
			ri.Version, ri.Expires, ri.Published = m.Signed.Version, m.Signed.Expires, m.Signed.Targets
		}
		if m := r.next[d.Name]; m != nil {
			ri.Pending = &Pending{Version: m.Signed.Version, Expires: m.Signed.Expires, Targets: m.Signed.Targets,
				SignedBy: signedBy(top, m, d.Name)}
		}
		out = append(out, ri)
	}
	return out
}

// DelegationPending reports whether new top-level targets (Delegate) wait for the roles
// they delegate to to be signed by their new keys.
func (r *Repo) DelegationPending() bool { return r.nextTop != nil }

// PendingTargetPath is the local file of target name as role's pending metadata lists it:
// what a keeper checks before signing.
func (r *Repo) PendingTargetPath(role, name string) (string, error) {
	m := r.next[role]
	if m == nil {
		return "", fmt.Errorf("%w: %s", ErrNotPending, role)
	}
	t := m.Signed.Targets[name]
	if t == nil {
		return "", fmt.Errorf("%w: %s in pending %s", ErrNoTarget, name, role)
	}
	return r.targetFile(name, t)
}
