// Package tufclient is the phone's side of distribution: it refreshes the TUF metadata of the
// vendor's repository with go-tuf's updater, finds targets (the registry, a delta, the
// facility's policy, firmware) through the delegations, and downloads them straight to a
// writer, checked against the signed length and hashes. It keeps promise 6: a phone uses
// nothing that the role delegated its path did not sign with its threshold of keys (the
// registry's keepers, the facility, the vendor's release keys), never goes back to an older
// version (go-tuf keeps the trusted metadata in the phone's data directory), and knows until
// when what it trusts is fresh.
package tufclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// Options configure a Client.
type Options struct {
	// Dir keeps the trusted metadata between runs (<data>/tuf).
	Dir string
	// Root is the root metadata installed at enrolment: trusted only until a newer root,
	// verified through it, is in Dir.
	Root []byte
	// URL is the repository's base (http, https or file): metadata/ and targets/ below it.
	URL string
	// MetadataURL and TargetsURL, when set, replace URL's metadata/ and targets/: some
	// repositories (the TUF conformance suite's) serve them apart.
	MetadataURL, TargetsURL string
	// HTTP carries requests; nil means a client with the timeouts below.
	HTTP *http.Client
	// Transport, if set, carries every download instead of HTTP or the file system (the
	// serial console, say), and URL may then have any scheme: the transport is given the
	// URLs the client makes of it. What it carries is verified exactly as a download is.
	Transport Transport
	// MaxTarget refuses any target longer than this, whatever the metadata says.
	MaxTarget int64
	// TopLevelOnlyDelegates refuses a target that the top-level targets role lists itself:
	// that role (the vendor's offline keys) may only delegate, so that the registry is
	// signed by its keepers, a policy by its facility, firmware by the release keys, and a
	// vendor alone can sign none of them.
	TopLevelOnlyDelegates bool
	// Now is the reference time for expiry; nil means the system clock.
	Now func() time.Time
}

// Transport fetches the repository's files some other way than HTTP: metadata and whole
// targets with Open, parts of targets with OpenRange.
type Transport interface {
	// Open returns the file at url; an error wrapping fs.ErrNotExist if there is none (which
	// ends the search for a newer root).
	Open(ctx context.Context, url string) (io.ReadCloser, error)
	// OpenRange returns bytes [off, off+n) of the file at url, which must be length bytes
	// long (the signed length): a file of another length is an error.
	OpenRange(ctx context.Context, url string, off, n, length int64) (io.ReadCloser, error)
}

// MaxRoles is how many delegated roles one target's lookup may consult: the phone's
// repository needs one (targets delegates each path once); a longer walk is a repository
// gone wrong or an attempt to keep the phone fetching.
const MaxRoles = 8

// Errors.
var (
	// ErrNoTarget: no trusted role lists the name.
	ErrNoTarget = errors.New("tufclient: no such target")
	// ErrTooLarge: a target is longer than MaxTarget.
	ErrTooLarge = errors.New("tufclient: target larger than allowed")
	// ErrMismatch: a target's bytes do not match its signed length or hash.
	ErrMismatch = errors.New("tufclient: target does not match its signed length and hash")
	// ErrNoHash: a target's metadata has no hash of an algorithm the phone checks.
	ErrNoHash = errors.New("tufclient: target has no sha256 or sha512 hash")
	// ErrTopLevelTarget: with TopLevelOnlyDelegates, the top-level targets role lists the
	// target itself. Its text ends the sentence that names the target.
	ErrTopLevelTarget = errors.New("which may only delegate")
	// ErrRoleName: a delegated role's name is unsafe in a file name or a URL; its metadata
	// is never fetched.
	ErrRoleName = errors.New("tufclient: delegated role name unsafe in a file name or URL")
	// ErrDelegationLoop: the delegations for a name lead back to a role already consulted,
	// and no role lists the name.
	ErrDelegationLoop = errors.New("tufclient: delegation loop")
	// ErrTooManyRoles: finding a name would take more than MaxRoles delegated roles.
	ErrTooManyRoles = errors.New("tufclient: too many delegated roles for one target")
	// ErrRange: FetchRange was asked for bytes outside the target's signed length.
	ErrRange = errors.New("tufclient: range outside the target's signed length")
	// ErrNoRange: the server did not answer a Range request with that range (206 and a
	// Content-Range naming it and the signed length): it ignored the header and sent the
	// whole target (200), or sent another range, or holds a target of another length.
	ErrNoRange = errors.New("tufclient: server did not serve the range asked for")
)

// RoleError says which delegated role was refused while a target was looked up, and why; it
// wraps go-tuf's error (errors.Is with metadata.ErrUnsignedMetadata, ErrExpiredMetadata...).
type RoleError struct {
	Target    string // the name looked up; for Targets, the prefix and "*"
	Role      string
	Delegator string
	Err       error
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("tufclient: %s: delegated role %s (delegated by %s): %s", e.Target, e.Role, e.Delegator, reason(e.Err))
}

func (e *RoleError) Unwrap() error { return e.Err }

var gotWant = regexp.MustCompile(`got (\d+), want (\d+)`)

// reason says in a few words why go-tuf refused a role; its own messages are written for
// its developers.
func reason(err error) string {
	var unsigned *metadata.ErrUnsignedMetadata
	switch {
	case errors.As(err, &unsigned):
		if m := gotWant.FindStringSubmatch(unsigned.Msg); m != nil {
			return fmt.Sprintf("%s of %s required signatures", m[1], m[2])
		}
		return "not signed by its threshold of keys: " + unsigned.Msg
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return "expired (a frozen role)"
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		return "not the version the snapshot names (rolled back or replayed): " + err.Error()
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		return "not the length or hash the snapshot names: " + err.Error()
	}
	return err.Error()
}

// Client refreshes and downloads. It is not safe for concurrent use.
type Client struct {
	o       Options
	fetcher *fetcher
	up      *updater.Updater
	// consistent is the trusted root's consistent_snapshot: targets are then fetched under
	// their hash, so a publish under way never swaps one under a download.
	consistent bool
	// maxRoleLength bounds a delegated role's metadata when the snapshot gives no length.
	maxRoleLength int64
	// Damaged lists the cached metadata files the last Refresh found damaged and dropped.
	Damaged []string
	// RootChanged is set by New when the enrolled root is not the one the cache in Dir grew
	// from: the cache was dropped, and the new root is trusted from here on.
	RootChanged *RootChange
}

// RootChange names the enrolled roots, old and new, by the SHA-256 of their bytes.
type RootChange struct{ Old, New string }

// enrolledRootFile records which enrolled root the cache in Dir grew from.
const enrolledRootFile = "enrolled-root.sha256"

// Target is a verified description of one target.
type Target struct {
	Name   string
	Length int64
	// Hashes holds the target's signed hashes that the phone checks, by algorithm ("sha256",
	// "sha512"): at least one.
	Hashes map[string][]byte
	// Custom is the target's custom metadata (e.g. {"version": 7}), as signed.
	Custom json.RawMessage
	// Role is the role whose metadata lists the target.
	Role string
	// Expires is the earliest expiry of the targets roles that lead to it, top-level first:
	// the target is vouched for until then.
	Expires time.Time
}

// hashes are the algorithms the phone checks a target by.
var hashes = map[string]struct {
	new  func() hash.Hash
	size int
}{
	"sha256": {sha256.New, sha256.Size},
	"sha512": {sha512.New, sha512.Size},
}

// Verifier hashes what is written to it with every algorithm of the target's that the phone
// checks, and says whether it was exactly the signed bytes.
type Verifier struct {
	t Target
	n int64
	h map[string]hash.Hash
}

// Verifier starts checking bytes against t.
func (t Target) Verifier() *Verifier {
	v := &Verifier{t: t, h: map[string]hash.Hash{}}
	for alg := range t.Hashes {
		if a, ok := hashes[alg]; ok {
			v.h[alg] = a.new()
		}
	}
	return v
}

func (v *Verifier) Write(p []byte) (int, error) {
	for _, h := range v.h {
		h.Write(p)
	}
	v.n += int64(len(p))
	return len(p), nil
}

// Verify returns nil if what was written is the target's signed length and every hash
// matches (ErrMismatch otherwise, ErrNoHash for a target with none to check).
func (v *Verifier) Verify() error {
	if len(v.h) == 0 {
		return fmt.Errorf("%w: %s", ErrNoHash, v.t.Name)
	}
	if v.n != v.t.Length {
		return fmt.Errorf("%w: %s: %d bytes, signed length %d", ErrMismatch, v.t.Name, v.n, v.t.Length)
	}
	for _, alg := range slices.Sorted(maps.Keys(v.h)) {
		if !bytes.Equal(v.h[alg].Sum(nil), v.t.Hashes[alg]) {
			return fmt.Errorf("%w: %s: %s differs", ErrMismatch, v.t.Name, alg)
		}
	}
	return nil
}

// New prepares a client. Nothing is fetched until Refresh.
func New(o Options) (*Client, error) {
	if o.MetadataURL == "" {
		o.MetadataURL = o.URL + "/metadata"
	}
	if o.TargetsURL == "" {
		o.TargetsURL = o.URL + "/targets"
	}
	for _, raw := range []string{o.MetadataURL, o.TargetsURL} {
		u, err := url.Parse(raw)
		if o.Transport != nil && err == nil {
			continue
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
			return nil, fmt.Errorf("tufclient: repository URL %q: want http, https or file", raw)
		}
	}
	o.MetadataURL = strings.TrimSuffix(o.MetadataURL, "/")
	o.TargetsURL = strings.TrimSuffix(o.TargetsURL, "/")
	if len(o.Root) == 0 {
		return nil, errors.New("tufclient: no trusted root")
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	if o.MaxTarget <= 0 {
		o.MaxTarget = 64 << 20
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tufclient: %w", err)
	}
	c := &Client{o: o, fetcher: &fetcher{http: o.HTTP, transport: o.Transport, metadataURL: o.MetadataURL}}
	if err := c.checkEnrolledRoot(); err != nil {
		return nil, err
	}
	return c, nil
}

// trustedRoot is the newest root the phone verified, or the enrolled one when the cached copy
// is missing or damaged (a damaged cache costs a walk along the root chain, nothing more).
func (c *Client) trustedRoot() []byte {
	b, err := os.ReadFile(filepath.Join(c.o.Dir, "root.json"))
	if err == nil {
		if _, err := metadata.Root().FromBytes(b); err == nil {
			return b
		}
	}
	return c.o.Root
}

// Refresh brings the trusted metadata up to date and returns until when it is fresh: the
// earliest expiry of the root, timestamp, snapshot and targets it now trusts. On error the
// previous trusted metadata stays in Dir, untouched by whatever was refused. Delegated roles
// are fetched when a target needs them (Target, Targets).
func (c *Client) Refresh(ctx context.Context) (time.Time, error) {
	c.dropDamaged()
	cfg, err := config.New(c.o.MetadataURL, c.trustedRoot())
	if err != nil {
		return time.Time{}, fmt.Errorf("tufclient: %w", err)
	}
	cfg.RemoteTargetsURL = c.o.TargetsURL
	cfg.LocalMetadataDir = c.o.Dir
	cfg.LocalTargetsDir = filepath.Join(c.o.Dir, "targets")
	cfg.DisableLocalCache = false
	cfg.MaxDelegations = MaxRoles
	cfg.Fetcher = c.fetcher
	c.fetcher.ctx = ctx
	// ctx bounds this refresh only: the delegated roles that Target and Targets fetch later,
	// when it may have ended, are bounded by each download's own timeout.
	defer func() { c.fetcher.ctx = nil }()
	up, err := updater.New(cfg)
	if err != nil {
		// The enrolled root itself does not verify: nothing can be trusted.
		return time.Time{}, fmt.Errorf("tufclient: trusted root: %w", err)
	}
	if c.o.Now != nil {
		up.UnsafeSetRefTime(c.o.Now().UTC())
	}
	if err := up.Refresh(); err != nil {
		return time.Time{}, fmt.Errorf("tufclient: refresh: %w", err)
	}
	c.up = up
	t := up.GetTrustedMetadataSet()
	// go-tuf names metadata by version, and we name targets by hash, only when the root
	// says the repository keeps consistent snapshots.
	c.consistent = t.Root.Signed.ConsistentSnapshot
	c.fetcher.consistent = c.consistent
	c.maxRoleLength = cfg.TargetsMaxLength
	until := t.Root.Signed.Expires
	for _, e := range []time.Time{t.Timestamp.Signed.Expires, t.Snapshot.Signed.Expires, t.Targets[metadata.TARGETS].Signed.Expires} {
		if e.Before(until) {
			until = e
		}
	}
	return until, nil
}

// dropDamaged removes cached metadata files that do not even parse (a flash fault, a torn
// write): go-tuf would stop at them. What parses but does not verify, go-tuf itself replaces
// from the repository. The versions a dropped file held are lost to rollback protection, but
// the installed registry and policy keep their own versions, which never go down.
func (c *Client) dropDamaged() {
	parse := map[string]func([]byte) error{
		"root.json":      func(b []byte) error { _, err := metadata.Root().FromBytes(b); return err },
		"timestamp.json": func(b []byte) error { _, err := metadata.Timestamp().FromBytes(b); return err },
		"snapshot.json":  func(b []byte) error { _, err := metadata.Snapshot().FromBytes(b); return err },
		"targets.json":   func(b []byte) error { _, err := metadata.Targets().FromBytes(b); return err },
	}
	// Every other metadata file is a delegated role's (go-tuf names it after the role): a torn
	// one stops the walk to its targets just the same, so it goes too.
	files, _ := filepath.Glob(filepath.Join(c.o.Dir, "*.json"))
	for _, path := range files {
		if name := filepath.Base(path); parse[name] == nil {
			parse[name] = func(b []byte) error { _, err := metadata.Targets().FromBytes(b); return err }
		}
	}
	for name, p := range parse {
		path := filepath.Join(c.o.Dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if err := p(b); err != nil {
			c.Damaged = append(c.Damaged, fmt.Sprintf("%s: %v", name, err))
			os.Remove(path)
		}
	}
}

// Target describes a target of the metadata trusted by the last successful Refresh, found
// through the delegations as TUF orders them (go-tuf's walk: depth first, in the order each
// role lists its delegations, stopping at a terminating one). A delegated role that does not
// verify stops the lookup with a *RoleError naming it.
func (c *Client) Target(name string) (Target, error) {
	if c.up == nil {
		return Target{}, errors.New("tufclient: no successful refresh yet")
	}
	tf, err := c.up.GetTargetInfo(name)
	w := replay(c.up.GetTrustedMetadataSet().Targets, name)
	switch {
	case err != nil && w.stopped:
		return Target{}, &RoleError{Target: name, Role: w.pending, Delegator: w.parent, Err: err}
	case err != nil && w.loop != nil:
		return Target{}, fmt.Errorf("%w: %s: %s, and no role lists it", ErrDelegationLoop, name, strings.Join(w.loop, " -> "))
	case err != nil && w.left:
		return Target{}, fmt.Errorf("%w: %s: more than %d", ErrTooManyRoles, name, MaxRoles)
	case err != nil:
		return Target{}, fmt.Errorf("%w: %s", ErrNoTarget, name)
	case w.signer == "":
		// go-tuf found what our replay of its walk did not: the two disagree on the order.
		return Target{}, fmt.Errorf("tufclient: %s: found by go-tuf in no role the phone can name", name)
	}
	return c.describe(name, tf, w)
}

// describe is the Target for name, which tf describes and the walk w found in w.signer.
func (c *Client) describe(name string, tf *metadata.TargetFiles, w walk) (Target, error) {
	if c.o.TopLevelOnlyDelegates && w.signer == metadata.TARGETS {
		return Target{}, fmt.Errorf("tufclient: %s is signed by the top-level targets role, %w", name, ErrTopLevelTarget)
	}
	t := Target{Name: name, Length: tf.Length, Hashes: map[string][]byte{}, Role: w.signer, Expires: w.expires}
	for alg, sum := range tf.Hashes {
		a, ok := hashes[alg]
		if !ok {
			continue // an algorithm TUF allows that the phone does not check
		}
		if len(sum) != a.size {
			return Target{}, fmt.Errorf("tufclient: target %s: %s hash of %d bytes", name, alg, len(sum))
		}
		t.Hashes[alg] = sum
	}
	if len(t.Hashes) == 0 {
		return Target{}, fmt.Errorf("%w: %s (role %s)", ErrNoHash, name, w.signer)
	}
	if tf.Custom != nil {
		t.Custom = *tf.Custom
	}
	return t, nil
}

// walk is go-tuf's lookup of one target replayed over the roles loaded: which role
// lists the target, or, when go-tuf stopped, which role it was loading (the first the walk
// reaches that is not loaded: go-tuf keeps every role that verified).
type walk struct {
	signer  string    // the role that lists the target
	expires time.Time // the earliest expiry from the top-level targets to signer
	stopped bool      // the walk reached a role that is not loaded: pending, delegated by parent
	pending string
	parent  string
	loop    []string // roles from the top-level targets back to one of them
	left    bool     // roles were left when MaxRoles were consulted
}

func replay(loaded map[string]*metadata.Metadata[metadata.TargetsType], name string) walk {
	type visit struct {
		role string
		path []string // delegators, top-level first
	}
	var w walk
	stack := []visit{{role: metadata.TARGETS}}
	visited := map[string]bool{}
	for len(visited) <= MaxRoles && len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[v.role] {
			continue
		}
		md, ok := loaded[v.role]
		if !ok {
			w.stopped, w.pending, w.parent = true, v.role, v.path[len(v.path)-1]
			return w
		}
		path := append(slices.Clip(v.path), v.role)
		if _, ok := md.Signed.Targets[name]; ok {
			w.signer, w.expires = v.role, md.Signed.Expires
			for _, r := range v.path {
				if e := loaded[r].Signed.Expires; e.Before(w.expires) {
					w.expires = e
				}
			}
			return w
		}
		visited[v.role] = true
		if md.Signed.Delegations == nil {
			continue
		}
		var children []visit
		for _, r := range md.Signed.Delegations.GetRolesForTarget(name) {
			if slices.Contains(path, r.Name) && w.loop == nil {
				w.loop = append(slices.Clone(path), r.Name)
			}
			children = append(children, visit{role: r.Name, path: path})
			if r.Terminating {
				stack = nil
				break
			}
		}
		slices.Reverse(children)
		stack = append(stack, children...)
	}
	w.left = len(stack) > 0
	return w
}

// Fetch streams a target into w and returns an error (wrapping ErrMismatch or ErrTooLarge) if
// its bytes are not exactly the signed ones; the caller must discard what w received then.
func (c *Client) Fetch(ctx context.Context, t Target, w io.Writer) error {
	if t.Length > c.o.MaxTarget {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLarge, t.Name, t.Length, c.o.MaxTarget)
	}
	v := t.Verifier()
	if len(v.h) == 0 {
		return fmt.Errorf("%w: %s", ErrNoHash, t.Name)
	}
	body, err := c.fetcher.open(ctx, c.targetURL(t))
	if err != nil {
		return fmt.Errorf("tufclient: %s: %w", t.Name, err)
	}
	defer body.Close()
	if _, err := io.Copy(io.MultiWriter(w, v), io.LimitReader(body, t.Length+1)); err != nil {
		return fmt.Errorf("tufclient: %s: %w", t.Name, err)
	}
	return v.Verify()
}

// targetURL is where the repository keeps a target: under one of its hashes with consistent
// snapshots (any the metadata lists will do), so that a publish under way never swaps the
// bytes under a download; under its name otherwise.
func (c *Client) targetURL(t Target) string {
	rel := t.Name
	if c.consistent {
		alg := "sha256"
		if _, ok := t.Hashes[alg]; !ok {
			alg = "sha512"
		}
		dir, base := path.Split(t.Name)
		rel = dir + hex.EncodeToString(t.Hashes[alg]) + "." + base
	}
	return c.o.TargetsURL + "/" + escapePath(rel)
}

// FetchRange streams bytes [off, off+n) of target t into w: an HTTP Range request, or a read
// of part of the file for a file:// repository.
//
// What it writes is NOT verified by the target's signed hashes, which are of the whole
// target: a range is only as good as the caller's own check of it against signed data (the
// firmware installer checks each block against the signed block index before using it). What
// FetchRange does check: the range lies inside the signed length (else [ErrRange]), the
// server answered 206 with a Content-Range naming exactly that range of a target of the
// signed length (else [ErrNoRange]), and exactly n bytes came (else an error wrapping
// io.ErrUnexpectedEOF, when the connection drops mid-range); the caller must discard what w
// received on any error.
//
// A server that ignores Range and answers 200 with the whole target is refused rather than
// skipped through: reading past off bytes for every range would download the image once per
// range. MaxTarget does not apply, since nothing here holds the target: the caller bounds n.
func (c *Client) FetchRange(ctx context.Context, t Target, off, n int64, w io.Writer) error {
	if off < 0 || n <= 0 || off > t.Length || n > t.Length-off {
		return fmt.Errorf("%w: %s: %d bytes at %d, the target is %d", ErrRange, t.Name, n, off, t.Length)
	}
	if len(t.Hashes) == 0 {
		return fmt.Errorf("%w: %s", ErrNoHash, t.Name)
	}
	body, err := c.fetcher.openRange(ctx, c.targetURL(t), off, n, t.Length)
	if err != nil {
		return fmt.Errorf("tufclient: %s: bytes %d-%d: %w", t.Name, off, off+n-1, err)
	}
	defer body.Close()
	got, err := io.Copy(w, io.LimitReader(body, n))
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("tufclient: %s: bytes %d-%d: %d bytes came: %w", t.Name, off, off+n-1, got, err)
	}
	return nil
}

// escapePath escapes each segment of a target's path for a URL.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// CheckRoleName refuses a delegated role name that could leave the metadata folder, or mean
// something else in a URL, once go-tuf makes a file name and a URL of it.
func CheckRoleName(name string) error {
	if name == "" || name == "." {
		return fmt.Errorf("%w: %q", ErrRoleName, name)
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("%w: %q contains \"..\"", ErrRoleName, name)
	}
	if i := strings.IndexAny(name, "/\\?#%"); i >= 0 {
		return fmt.Errorf("%w: %q contains %q", ErrRoleName, name, name[i])
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %q contains a control character", ErrRoleName, name)
		}
	}
	return nil
}

// fetcher serves go-tuf's metadata downloads and our target downloads, over HTTP(S) or from a
// folder (file://, for a repository on a USB stick or the simulated phone's demo).
type fetcher struct {
	http      *http.Client
	transport Transport // nil: HTTP and files
	// ctx is the context of the Refresh under way, nil outside one.
	ctx context.Context
	// metadataURL and consistent tell a delegated role's metadata from the others, by the
	// name go-tuf asks for: <role>.json, or <version>.<role>.json with consistent snapshots.
	metadataURL string
	consistent  bool
}

func (f *fetcher) open(ctx context.Context, raw string) (io.ReadCloser, error) {
	if f.transport != nil {
		return f.transport.Open(ctx, raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return os.Open(u.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	res, err := f.http.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		return nil, &metadata.ErrDownloadHTTP{StatusCode: res.StatusCode, URL: raw}
	}
	return res.Body, nil
}

// openRange opens bytes [off, off+n) of the target of the given signed length at raw.
func (f *fetcher) openRange(ctx context.Context, raw string, off, n, length int64) (io.ReadCloser, error) {
	if f.transport != nil {
		return f.transport.OpenRange(ctx, raw, off, n, length)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		file, err := os.Open(u.Path)
		if err != nil {
			return nil, err
		}
		fi, err := file.Stat()
		if err != nil {
			file.Close()
			return nil, err
		}
		if fi.Size() != length {
			file.Close()
			return nil, fmt.Errorf("%w: the file is %d bytes, the signed length %d", ErrMismatch, fi.Size(), length)
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(file, off, n), file}, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	want := fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, length)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	// Compressed, the range would be of other bytes.
	req.Header.Set("Accept-Encoding", "identity")
	res, err := f.http.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case res.StatusCode == http.StatusOK:
		res.Body.Close()
		return nil, fmt.Errorf("%w: the server ignored the Range header and began sending the whole target (200)", ErrNoRange)
	case res.StatusCode != http.StatusPartialContent:
		res.Body.Close()
		return nil, &metadata.ErrDownloadHTTP{StatusCode: res.StatusCode, URL: raw}
	case res.Header.Get("Content-Range") != want:
		res.Body.Close()
		return nil, fmt.Errorf("%w: Content-Range %q, want %q", ErrNoRange, res.Header.Get("Content-Range"), want)
	}
	return res.Body, nil
}

var versioned = regexp.MustCompile(`^[0-9]+\.(.*)$`)

// checkMetadataName refuses to fetch a delegated role's metadata under an unsafe name: go-tuf
// escapes the name in the URL and in the file it writes, but the walk has no hook before
// the download, so the fetcher is where the phone can still say no.
func (f *fetcher) checkMetadataName(raw string) error {
	rest, ok := strings.CutPrefix(raw, f.metadataURL+"/")
	if !ok {
		return nil
	}
	rest, ok = strings.CutSuffix(rest, ".json")
	if !ok {
		return nil
	}
	if m := versioned.FindStringSubmatch(rest); m != nil && (f.consistent || m[1] == metadata.ROOT) {
		rest = m[1]
	}
	role, err := url.PathUnescape(rest)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrRoleName, rest)
	}
	switch role {
	case metadata.ROOT, metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS:
		return nil
	}
	return CheckRoleName(role)
}

// DownloadFile is go-tuf's fetcher interface: at most maxLength bytes.
func (f *fetcher) DownloadFile(raw string, maxLength int64, _ time.Duration) ([]byte, error) {
	if err := f.checkMetadataName(raw); err != nil {
		return nil, err
	}
	ctx := f.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	body, err := f.open(ctx, raw)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// go-tuf reads a missing next root version as "no newer root".
			return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: raw}
		}
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is longer than %d bytes", raw, maxLength)}
	}
	return b, nil
}

// checkEnrolledRoot drops the cache when the enrolled root is not the one it grew from: a
// re-enrolment with a new root is the technician's decision to trust it, and a newer root
// cached under the old one must not overrule it.
func (c *Client) checkEnrolledRoot() error {
	sum := sha256.Sum256(c.o.Root)
	now := hex.EncodeToString(sum[:])
	marker := filepath.Join(c.o.Dir, enrolledRootFile)
	b, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("tufclient: %w", err)
	case strings.TrimSpace(string(b)) == now:
		return nil
	default:
		entries, err := os.ReadDir(c.o.Dir)
		if err != nil {
			return fmt.Errorf("tufclient: %w", err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(c.o.Dir, e.Name())); err != nil {
				return fmt.Errorf("tufclient: reset for the new root: %w", err)
			}
		}
		c.RootChanged = &RootChange{Old: strings.TrimSpace(string(b)), New: now}
	}
	if err := atomicfile.Write(marker, []byte(now+"\n"), 0o600); err != nil {
		return fmt.Errorf("tufclient: %w", err)
	}
	return nil
}
