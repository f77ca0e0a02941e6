// Package tufrepo is the back office's side of distribution: a TUF repository, as a folder of
// static files any web server or bucket can serve, that carries the privileged-number registry
// and the facilities' policies to the phones. It keeps promise 6: nothing reaches a phone
// unless the roles' keys signed it, the root and targets keys can stay offline, every role has
// its own threshold and expiry, and versions only go up.
//
// Layout (consistent snapshots, so a phone reading while a publish is under way never mixes
// two versions): metadata/N.root.json, metadata/N.targets.json, metadata/N.snapshot.json,
// metadata/timestamp.json, metadata/N.<role>.json for every delegated role, and
// targets/<dir>/<sha256>.<name> for every target. Beside them, for the back office only:
// pending/<role>.json, a role's next metadata waiting for its keys' signatures, and
// role-expiry.json, how long each delegated role's metadata stays valid once signed, and
// last-timestamp.json, a copy of the newest timestamp published, which shows a timestamp.json
// put back (Open then refuses: ErrPutBack).
//
// # Who signs what
//
// A repository made by Init has one targets role that signs every target. Delegate splits
// it the way promise 6 wants: the top-level targets role (offline keys) then only delegates,
// each delegation terminating, and every target is signed by the party that owns it (the
// registry's keepers with a threshold, each facility its policy, the vendor's release keys
// the firmware). AddTarget routes a target to the role whose paths cover it; the role's
// new metadata waits in pending/ until enough of its keys have signed (Sign, often on
// another machine), and only then do the online snapshot and timestamp keys take it
// (Commit). Nothing phones would refuse is ever published: a role short of its threshold,
// or a new delegation whose roles are not yet signed by their new keys, stays pending.
package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// The top-level roles.
const (
	Root      = metadata.ROOT
	Targets   = metadata.TARGETS
	Snapshot  = metadata.SNAPSHOT
	Timestamp = metadata.TIMESTAMP
)

// Roles lists the top-level roles in signing order.
var roles = []string{Root, Targets, Snapshot, Timestamp}

// Expiry is how long each role's metadata stays valid after it is signed. The timestamp's
// expiry is how long a phone that hears nothing goes on before it counts itself stale.
// Delegated applies to a delegated role that Delegate was given no expiry of its own for.
type Expiry struct {
	Root, Targets, Snapshot, Timestamp, Delegated time.Duration
}

// DefaultExpiry suits a repository whose timestamp is re-signed daily by an online key.
var DefaultExpiry = Expiry{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour,
	Timestamp: 2 * 24 * time.Hour, Delegated: 90 * 24 * time.Hour}

// RoleKeys is, per role, the public keys that may sign it and how many signatures it needs.
type RoleKeys struct {
	Keys      []ed25519.PublicKey
	Threshold int
}

// Signers are the private keys at hand for one operation, per role: an offline key is simply
// absent unless the operation needs it.
type Signers map[string][]ed25519.PrivateKey

// Errors.
var (
	// ErrThreshold: fewer keys at hand than the role's threshold.
	ErrThreshold = errors.New("tufrepo: not enough keys to meet the role's threshold")
	// ErrNotRepo: the folder holds no repository.
	ErrNotRepo = errors.New("tufrepo: not a repository (no metadata/timestamp.json)")
	// ErrNoTarget: TargetPath was asked for a target the current targets metadata lacks.
	ErrNoTarget = errors.New("tufrepo: no such target")
	// ErrNoDelegation: AddTarget was given a target no delegated role's paths cover, in a
	// repository whose top-level targets role only delegates.
	ErrNoDelegation = errors.New("tufrepo: no delegated role covers the target")
	// ErrRoleName: a delegated role's name is empty, a top-level role's, or could step out
	// of metadata/ or be cut short in a URL ("/", "..", "?", "#", ...).
	ErrRoleName = errors.New("tufrepo: bad role name")
	// ErrNoRole: the repository delegates to no role of that name.
	ErrNoRole = errors.New("tufrepo: no such delegated role")
	// ErrNotPending: Sign was asked to sign a role with nothing pending.
	ErrNotPending = errors.New("tufrepo: nothing pending for the role")
	// ErrNotRoleKey: a key offered to sign a role is not one of the role's keys.
	ErrNotRoleKey = errors.New("tufrepo: key is not one of the role's keys")
	// ErrPutBack: metadata/timestamp.json is older than the newest timestamp published (put
	// back from a backup, or synced from a mirror): publishing would reuse version numbers
	// phones have seen.
	ErrPutBack = errors.New("tufrepo: metadata put back to an older version")
)

// Init creates a repository in dir with version 1 of every role and no targets, signed by
// signers (which must include enough root keys for root's threshold).
func Init(dir string, keys map[string]RoleKeys, signers Signers, exp Expiry, now time.Time) error {
	if _, err := os.Stat(filepath.Join(dir, "metadata", "1.root.json")); err == nil {
		return fmt.Errorf("tufrepo: %s already holds a repository", dir)
	}
	root := metadata.Root(now.Add(exp.Root).UTC().Truncate(time.Second))
	for _, role := range roles {
		rk, ok := keys[role]
		if !ok || len(rk.Keys) == 0 {
			return fmt.Errorf("tufrepo: no keys for the %s role", role)
		}
		if rk.Threshold < 1 || rk.Threshold > len(rk.Keys) {
			return fmt.Errorf("tufrepo: %s threshold %d with %d keys", role, rk.Threshold, len(rk.Keys))
		}
		for _, pub := range rk.Keys {
			k, err := metadata.KeyFromPublicKey(pub)
			if err != nil {
				return fmt.Errorf("tufrepo: %s key: %w", role, err)
			}
			if err := root.Signed.AddKey(k, role); err != nil {
				return fmt.Errorf("tufrepo: %s key: %w", role, err)
			}
		}
		root.Signed.Roles[role].Threshold = rk.Threshold
	}
	r := &Repo{dir: dir, root: root,
		targets: metadata.Targets(now.Add(exp.Targets).UTC().Truncate(time.Second))}
	r.initDelegated()
	if err := sign(root, Root, root.Signed.Roles[Root], signers[Root]); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "metadata"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o755); err != nil {
		return err
	}
	if err := writeMeta(root, filepath.Join(dir, "metadata", "1.root.json")); err != nil {
		return err
	}
	r.targets.Signed.Version = 0 // Commit makes it 1
	r.snapshot = metadata.Snapshot()
	r.snapshot.Signed.Version = 0
	r.timestamp = metadata.Timestamp()
	r.timestamp.Signed.Version = 0
	return r.Commit(signers, exp, now)
}

// Repo is an open repository.
type Repo struct {
	dir       string
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType] // top-level, as published
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]

	// nextTop is the top-level targets metadata Delegate signed that is not published
	// yet (pending/targets.json), or nil.
	nextTop *metadata.Metadata[metadata.TargetsType]
	// roles are the delegated roles' metadata as published; next their pending metadata
	// (pending/<role>.json), dirty those whose content changed in this process, so that
	// their version, expiry and signatures are renewed at Commit.
	roles map[string]*metadata.Metadata[metadata.TargetsType]
	next  map[string]*metadata.Metadata[metadata.TargetsType]
	dirty map[string]bool
	// expiry is how long each delegated role's metadata stays valid (role-expiry.json).
	expiry map[string]time.Duration
}

// Open reads the current metadata of the repository in dir.
func Open(dir string) (*Repo, error) {
	md := filepath.Join(dir, "metadata")
	ts, err := metadata.Timestamp().FromFile(filepath.Join(md, "timestamp.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotRepo, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("tufrepo: timestamp: %w", err)
	}
	r := &Repo{dir: dir, timestamp: ts}
	r.initDelegated()
	sv := ts.Signed.Meta["snapshot.json"].Version
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(md, fmt.Sprintf("%d.snapshot.json", sv))); err != nil {
		return nil, fmt.Errorf("tufrepo: snapshot: %w", err)
	}
	tv := r.snapshot.Signed.Meta["targets.json"].Version
	if r.targets, err = metadata.Targets().FromFile(filepath.Join(md, fmt.Sprintf("%d.targets.json", tv))); err != nil {
		return nil, fmt.Errorf("tufrepo: targets: %w", err)
	}
	rv, err := newest(md, Root)
	if err != nil {
		return nil, err
	}
	if rv == 0 {
		return nil, fmt.Errorf("tufrepo: no root metadata in %s", md)
	}
	if r.root, err = metadata.Root().FromFile(filepath.Join(md, fmt.Sprintf("%d.root.json", rv))); err != nil {
		return nil, fmt.Errorf("tufrepo: root: %w", err)
	}
	if err := r.openDelegated(); err != nil {
		return nil, err
	}
	if err := r.checkNewest(); err != nil {
		return nil, err
	}
	return r, nil
}

// lastTimestamp is the back office's copy of the newest timestamp it published, beside the
// repository's metadata and not served: what shows a timestamp.json put back.
const lastTimestamp = "last-timestamp.json"

// checkNewest refuses a repository whose timestamp.json is older than the newest one it
// published (put back from a backup, or synced from a mirror that fell behind). Publishing
// from there would sign snapshot and targets versions phones have already seen, with older
// contents: they refuse them, and take no update again until the versions pass theirs.
func (r *Repo) checkNewest() error {
	last, err := metadata.Timestamp().FromFile(filepath.Join(r.dir, lastTimestamp))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a repository that has not published since the copy was first kept
	}
	if err != nil {
		return fmt.Errorf("tufrepo: %s: %w", lastTimestamp, err)
	}
	if have, published := r.timestamp.Signed.Version, last.Signed.Version; have < published {
		return fmt.Errorf("%w: metadata/timestamp.json is version %d (snapshot version %d), but version %d (snapshot version %d) "+
			"was published: put the newest back before publishing (cp %s %s), lest phones that saw it refuse every update",
			ErrPutBack, have, r.timestamp.Signed.Meta["snapshot.json"].Version, published, last.Signed.Meta["snapshot.json"].Version,
			filepath.Join(r.dir, lastTimestamp), filepath.Join(r.dir, "metadata", "timestamp.json"))
	}
	return nil
}

// newest is the highest version of a role's metadata in the metadata folder md; 0 if none.
func newest(md, role string) (int64, error) {
	suffix := "." + role + ".json"
	names, err := filepath.Glob(filepath.Join(md, "*"+suffix))
	if err != nil {
		return 0, err
	}
	var best int64
	for _, n := range names {
		v, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(n), suffix), 10, 64)
		if err == nil && v > best {
			best = v
		}
	}
	return best, nil
}

// RootJSON is the current root metadata: what a technician installs on a phone at enrolment
// as its first trusted root.
func (r *Repo) RootJSON() ([]byte, error) { return r.root.ToBytes(true) }

// TargetsVersion is the version of the targets metadata in force.
func (r *Repo) TargetsVersion() int64 { return r.targets.Signed.Version }

// Target returns the published metadata of one target, from the top-level targets or the
// delegated role whose paths cover it, or nil.
func (r *Repo) Target(name string) *metadata.TargetFiles {
	if t := r.targets.Signed.Targets[name]; t != nil {
		return t
	}
	if d := covering(r.targets, name); d != nil && r.roles[d.Name] != nil {
		return r.roles[d.Name].Signed.Targets[name]
	}
	return nil
}

// TargetNames lists the published targets of every role, sorted.
func (r *Repo) TargetNames() []string {
	seen := map[string]bool{}
	for n := range r.targets.Signed.Targets {
		seen[n] = true
	}
	for _, m := range r.roles {
		for n := range m.Signed.Targets {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TargetPath is the local file that holds the current version of target name, as the
// phones download it: the back office reads what it published (to check a new registry
// against the one phones hold) from the repository itself, not from a copy that may differ.
// It returns ErrNoTarget if the targets metadata does not list name.
func (r *Repo) TargetPath(name string) (string, error) {
	t := r.Target(name)
	if t == nil {
		return "", fmt.Errorf("%w: %s", ErrNoTarget, name)
	}
	return r.targetFile(name, t)
}

// targetFile is where the bytes of target name, as t describes them, are kept.
func (r *Repo) targetFile(name string, t *metadata.TargetFiles) (string, error) {
	sum, ok := t.Hashes["sha256"]
	if !ok {
		return "", fmt.Errorf("tufrepo: target %s has no SHA-256", name)
	}
	dir, base := path.Split(name)
	return filepath.Join(r.dir, "targets", filepath.FromSlash(dir), hex.EncodeToString(sum)+"."+base), nil
}

// AddTarget copies the file at src into the repository as target name, with custom metadata
// (marshalled to JSON; nil for none). The target is served once Commit signs new metadata.
// In a repository that delegates, the target goes into the next metadata of the delegated
// role whose paths cover it, and a target no role covers is refused (ErrNoDelegation): the
// top-level targets role signs delegations only.
func (r *Repo) AddTarget(name, src string, custom any) error {
	if name == "" || path.Clean(name) != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "..") {
		return fmt.Errorf("tufrepo: bad target name %q", name)
	}
	into := r.targets.Signed.Targets
	if r.delegates() {
		m, err := r.nextFor(name)
		if err != nil {
			return err
		}
		into = m.Signed.Targets
	}
	n, sum, err := r.copyTarget(name, src)
	if err != nil {
		return err
	}
	tf := metadata.TargetFile()
	tf.Length = n
	tf.Hashes = metadata.Hashes{"sha256": sum}
	tf.Path = name
	if custom != nil {
		b, err := json.Marshal(custom)
		if err != nil {
			return fmt.Errorf("tufrepo: custom metadata of %s: %w", name, err)
		}
		raw := json.RawMessage(b)
		tf.Custom = &raw
	}
	into[name] = tf
	return nil
}

// copyTarget copies src into targets/ in one pass, hashing as it goes, and names the copy by
// its hash (consistent snapshots).
func (r *Repo) copyTarget(name, src string) (int64, []byte, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, nil, fmt.Errorf("tufrepo: %w", err)
	}
	defer f.Close()
	dir, base := path.Split(name)
	parent := filepath.Join(r.dir, "targets", filepath.FromSlash(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return 0, nil, err
	}
	tmp, err := os.CreateTemp(parent, ".incoming-*")
	if err != nil {
		return 0, nil, fmt.Errorf("tufrepo: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is there to remove
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), f)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, nil, fmt.Errorf("tufrepo: %s: %w", src, err)
	}
	sum := h.Sum(nil)
	if err := os.Rename(tmp.Name(), filepath.Join(parent, hex.EncodeToString(sum)+"."+base)); err != nil {
		return 0, nil, fmt.Errorf("tufrepo: %w", err)
	}
	return n, sum, atomicfile.SyncDir(parent)
}

// RemoveTarget drops a target from the next metadata of the role that holds it (its file
// stays for phones that are mid-download under the previous snapshot).
func (r *Repo) RemoveTarget(name string) {
	if !r.delegates() {
		delete(r.targets.Signed.Targets, name)
		return
	}
	if m, err := r.nextFor(name); err == nil {
		delete(m.Signed.Targets, name)
	}
}

// Commit signs new versions of targets, snapshot and timestamp and writes them. The timestamp
// is written last: until it is, phones see the previous version whole.
//
// In a repository that delegates, Commit first renews the pending metadata of every role
// AddTarget changed and signs each pending role with the keys signers holds for it; then
// it publishes, under new snapshot and timestamp, every pending role whose threshold is met
// (and the pending top-level targets of Delegate, once each role it delegates to is signed
// by the keys it names). A role short of its threshold stays pending, and is no error.
func (r *Repo) Commit(signers Signers, exp Expiry, now time.Time) error {
	if r.delegates() {
		return r.commitDelegated(signers, exp, now)
	}
	t := r.targets
	t.Signed.Version++
	t.Signed.Expires = now.Add(exp.Targets).UTC().Truncate(time.Second)
	if err := sign(t, Targets, r.root.Signed.Roles[Targets], signers[Targets]); err != nil {
		return err
	}
	if err := writeMeta(t, filepath.Join(r.dir, "metadata", fmt.Sprintf("%d.targets.json", t.Signed.Version))); err != nil {
		return err
	}
	return r.publishSnapshot(map[string]int64{Targets: t.Signed.Version}, signers, exp, now)
}

// publishSnapshot signs and writes a new snapshot listing the top-level targets and every
// delegated role at the versions given, then the timestamp.
func (r *Repo) publishSnapshot(versions map[string]int64, signers Signers, exp Expiry, now time.Time) error {
	s := r.snapshot
	s.Signed.Version++
	s.Signed.Expires = now.Add(exp.Snapshot).UTC().Truncate(time.Second)
	s.Signed.Meta = map[string]*metadata.MetaFiles{}
	for role, v := range versions {
		s.Signed.Meta[role+".json"] = metadata.MetaFile(v)
	}
	if err := sign(s, Snapshot, r.root.Signed.Roles[Snapshot], signers[Snapshot]); err != nil {
		return err
	}
	if err := writeMeta(s, filepath.Join(r.dir, "metadata", fmt.Sprintf("%d.snapshot.json", s.Signed.Version))); err != nil {
		return err
	}
	return r.stamp(signers, exp, now)
}

// Refresh re-signs the timestamp only, with a fresh expiry: the daily job of the online
// timestamp key that tells phones the repository is alive and unchanged.
func (r *Repo) Refresh(signers Signers, exp Expiry, now time.Time) error {
	return r.stamp(signers, exp, now)
}

func (r *Repo) stamp(signers Signers, exp Expiry, now time.Time) error {
	ts := r.timestamp
	ts.Signed.Version++
	ts.Signed.Expires = now.Add(exp.Timestamp).UTC().Truncate(time.Second)
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metadata.MetaFile(r.snapshot.Signed.Version)}
	if err := sign(ts, Timestamp, r.root.Signed.Roles[Timestamp], signers[Timestamp]); err != nil {
		return err
	}
	// The copy after the timestamp itself: cut between the two, the copy is older, never
	// newer than what was published.
	if err := writeMeta(ts, filepath.Join(r.dir, "metadata", "timestamp.json")); err != nil {
		return err
	}
	return writeMeta(ts, filepath.Join(r.dir, lastTimestamp))
}

// sign replaces meta's signatures with those of the keys at hand that the role lists; fewer
// than the threshold is an error, so a repository never publishes metadata phones refuse.
func sign[T metadata.Roles](meta *metadata.Metadata[T], role string, rr *metadata.Role, keys []ed25519.PrivateKey) error {
	meta.ClearSignatures()
	allowed := map[string]bool{}
	for _, id := range rr.KeyIDs {
		allowed[id] = true
	}
	signed := 0
	for _, k := range keys {
		mk, err := metadata.KeyFromPublicKey(k.Public())
		if err != nil {
			return err
		}
		id, err := mk.ID()
		if err != nil {
			return err
		}
		if !allowed[id] {
			return fmt.Errorf("tufrepo: key %s is not a %s key of this repository", id[:12], role)
		}
		s, err := signature.LoadSigner(k, crypto.Hash(0))
		if err != nil {
			return err
		}
		if _, err := meta.Sign(s); err != nil {
			return fmt.Errorf("tufrepo: signing %s: %w", role, err)
		}
		signed++
	}
	if signed < rr.Threshold {
		return fmt.Errorf("%w: %s needs %d, %d given", ErrThreshold, role, rr.Threshold, signed)
	}
	return nil
}

func writeMeta[T metadata.Roles](meta *metadata.Metadata[T], name string) error {
	b, err := meta.ToBytes(true)
	if err != nil {
		return err
	}
	return atomicfile.Write(name, b, 0o644)
}

// GenerateKey makes a role key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(nil)
	return k, err
}

// MarshalPrivateKey encodes a key as PKCS #8 PEM, which openssl and most HSM tooling read.
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey encodes a public key as PKIX PEM.
func MarshalPublicKey(k ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivateKey reads a PKCS #8 PEM Ed25519 key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("tufrepo: not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("tufrepo: not an Ed25519 key")
	}
	return ek, nil
}

// ParsePublicKey reads a PKIX PEM Ed25519 public key, or the public half of a private key file.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk != nil && blk.Type == "PRIVATE KEY" {
		k, err := ParsePrivateKey(b)
		if err != nil {
			return nil, err
		}
		return k.Public().(ed25519.PublicKey), nil
	}
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("tufrepo: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tufrepo: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("tufrepo: not an Ed25519 key")
	}
	return ek, nil
}
