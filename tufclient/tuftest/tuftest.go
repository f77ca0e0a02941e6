// Package tuftest is a TUF repository with delegations, built by hand with go-tuf's metadata
// API and served over HTTP on loopback, for the tests of promise 6 (who signs what): it can
// publish what an honest back office would, and what an attacker holding some of the keys
// would. It depends on nothing of the back office's, so that the phone's tests check the
// phone against TUF, not against our own publishing tool. Tests only: the phone never links
// it.
package tuftest

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Key is one signing key and its TUF form.
type Key struct {
	Private ed25519.PrivateKey
	Public  *metadata.Key
	ID      string
}

// NewKey makes an ed25519 key.
func NewKey(t testing.TB) Key {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.ID()
	if err != nil {
		t.Fatal(err)
	}
	return Key{Private: priv, Public: k, ID: id}
}

// Repo is the repository: the top-level roles with one key each, any number of delegated
// roles, and the files it serves. Publish signs and serves a new version of everything.
type Repo struct {
	t          testing.TB
	Consistent bool
	Srv        *httptest.Server
	// Keys of the top-level roles: root, targets (the vendor's), snapshot, timestamp.
	Keys  map[string]Key
	Root  *metadata.Metadata[metadata.RootType]
	Roles map[string]*metadata.Metadata[metadata.TargetsType]
	// Signers sign each targets role at the next Publish: a delegated role's keys by
	// default; a test replaces them to sign as an attacker would.
	Signers map[string][]Key
	// Expires sets the expiry of every metadata file at the next Publish.
	Expires time.Time

	snapshot, timestamp int64
	content             map[[2]string][]byte // role, target name -> bytes
	onDisk              map[[2]string]string // role, target name -> file holding its bytes

	mu        sync.Mutex
	files     map[string][]byte // URL path -> what is served
	disk      map[string]string // URL path -> file whose bytes are served (large targets)
	requests  []string
	intercept func(w http.ResponseWriter, req *http.Request, serve http.Handler)
}

// New makes a repository with empty top-level targets and serves it.
func New(t testing.TB, consistent bool) *Repo {
	t.Helper()
	r := &Repo{t: t, Consistent: consistent, Keys: map[string]Key{}, Roles: map[string]*metadata.Metadata[metadata.TargetsType]{},
		Signers: map[string][]Key{}, Expires: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second),
		content: map[[2]string][]byte{}, onDisk: map[[2]string]string{}, files: map[string][]byte{}, disk: map[string]string{}}
	r.Root = metadata.Root(time.Now().AddDate(1, 0, 0).UTC().Truncate(time.Second))
	r.Root.Signed.ConsistentSnapshot = consistent
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		k := NewKey(t)
		r.Keys[role] = k
		if err := r.Root.Signed.AddKey(k.Public, role); err != nil {
			t.Fatal(err)
		}
	}
	r.Roles[metadata.TARGETS] = metadata.Targets(r.Expires)
	r.Signers[metadata.TARGETS] = []Key{r.Keys[metadata.TARGETS]}
	r.files["/metadata/1.root.json"] = r.sign(r.Root, []Key{r.Keys[metadata.ROOT]})
	r.files["/metadata/root.json"] = r.files["/metadata/1.root.json"]
	r.Srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.URL.EscapedPath())
		intercept := r.intercept
		r.mu.Unlock()
		if intercept != nil {
			intercept(w, req, http.HandlerFunc(r.serve))
			return
		}
		r.serve(w, req)
	}))
	t.Cleanup(r.Srv.Close)
	return r
}

// serve answers as a static file server does, Range requests included (206 with a
// Content-Range), which firmware downloads rely on.
func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	b, ok := r.files[req.URL.EscapedPath()]
	file, onDisk := r.disk[req.URL.EscapedPath()]
	r.mu.Unlock()
	switch {
	case ok:
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b))
	case onDisk:
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, req, "", time.Time{}, f)
	default:
		http.NotFound(w, req)
	}
}

// Intercept puts f in front of the server for the requests that follow: f may answer itself
// (a server that ignores Range, drops the connection, counts bytes) or call serve. Nil
// removes it.
func (r *Repo) Intercept(f func(w http.ResponseWriter, req *http.Request, serve http.Handler)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.intercept = f
}

// RootJSON is the root a phone is enrolled with.
func (r *Repo) RootJSON() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files["/metadata/1.root.json"]
}

// Delegate makes (or replaces) parent's delegation to role: its keys, threshold and paths.
// The role's own metadata is created empty if it does not exist, signed by keys.
func (r *Repo) Delegate(parent, role string, keys []Key, threshold int, terminating bool, paths ...string) {
	r.t.Helper()
	p, ok := r.Roles[parent]
	if !ok {
		r.t.Fatalf("no role %s to delegate from", parent)
	}
	if p.Signed.Delegations == nil {
		p.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	d := metadata.DelegatedRole{Name: role, Threshold: threshold, Terminating: terminating, Paths: paths, KeyIDs: []string{}}
	for _, k := range keys {
		p.Signed.Delegations.Keys[k.ID] = k.Public
		d.KeyIDs = append(d.KeyIDs, k.ID)
	}
	i := slices.IndexFunc(p.Signed.Delegations.Roles, func(x metadata.DelegatedRole) bool { return x.Name == role })
	if i >= 0 {
		p.Signed.Delegations.Roles[i] = d
	} else {
		p.Signed.Delegations.Roles = append(p.Signed.Delegations.Roles, d)
	}
	if _, ok := r.Roles[role]; !ok {
		r.Roles[role] = metadata.Targets(r.Expires)
		r.Signers[role] = keys
	}
}

// AddTarget lists a target in role, with the given hash algorithms (sha256 if none) and
// custom metadata (none if nil), and serves its bytes.
func (r *Repo) AddTarget(role, name string, data []byte, custom any, algs ...string) *metadata.TargetFiles {
	r.t.Helper()
	tf, err := metadata.TargetFile().FromBytes(name, data, algs...)
	if err != nil {
		r.t.Fatal(err)
	}
	if custom != nil {
		b, err := json.Marshal(custom)
		if err != nil {
			r.t.Fatal(err)
		}
		raw := json.RawMessage(b)
		tf.Custom = &raw
	}
	r.Roles[role].Signed.Targets[name] = tf
	r.content[[2]string{role, name}] = data
	delete(r.onDisk, [2]string{role, name})
	return tf
}

// AddTargetFile lists the file at path as a target of role, hashed with SHA-256 as it is
// read, and serves it from the file: an image too large to hold in a test's memory.
func (r *Repo) AddTargetFile(role, name, path string, custom any) *metadata.TargetFiles {
	r.t.Helper()
	f, err := os.Open(path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		r.t.Fatal(err)
	}
	tf := r.AddTarget(role, name, nil, custom)
	tf.Length = n
	tf.Hashes = metadata.Hashes{"sha256": h.Sum(nil)}
	delete(r.content, [2]string{role, name})
	r.onDisk[[2]string{role, name}] = path
	return tf
}

// Publish signs a new version of every targets role, the snapshot and the timestamp, and
// serves them with the targets.
func (r *Repo) Publish() {
	r.t.Helper()
	r.snapshot++
	r.timestamp++
	snap := metadata.Snapshot(r.Expires)
	snap.Signed.Version = r.snapshot
	files := map[string][]byte{}
	disk := map[string]string{}
	for name, md := range r.Roles {
		md.Signed.Version++
		md.Signed.Expires = r.Expires
		b := r.sign(md, r.Signers[name])
		files[r.metadataPath(name, md.Signed.Version)] = b
		snap.Signed.Meta[name+".json"] = metadata.MetaFile(md.Signed.Version)
		for tname, tf := range md.Signed.Targets {
			for _, p := range r.targetPaths(tname, tf) {
				if file, ok := r.onDisk[[2]string{name, tname}]; ok {
					disk[p] = file
					continue
				}
				files[p] = r.content[[2]string{name, tname}]
			}
		}
	}
	files[r.metadataPath(metadata.SNAPSHOT, r.snapshot)] = r.sign(snap, []Key{r.Keys[metadata.SNAPSHOT]})
	ts := metadata.Timestamp(r.Expires)
	ts.Signed.Version = r.timestamp
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot)
	files["/metadata/timestamp.json"] = r.sign(ts, []Key{r.Keys[metadata.TIMESTAMP]})
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, b := range files {
		r.files[p] = b
		delete(r.disk, p)
	}
	for p, file := range disk {
		r.disk[p] = file
		delete(r.files, p)
	}
}

// Resign changes a role's published metadata in place, same version, signed by its signers,
// and serves it (a frozen role: an old expiry; the snapshot names no hash to catch it).
func (r *Repo) Resign(role string, change func(*metadata.Metadata[metadata.TargetsType])) {
	r.t.Helper()
	md := r.Roles[role]
	change(md)
	r.Serve(r.metadataPath(role, md.Signed.Version), r.sign(md, r.Signers[role]))
}

// MetadataPath is the URL path of a role's metadata as a client asks for it.
func (r *Repo) MetadataPath(role string, version int64) string {
	return r.metadataPath(role, version)
}

func (r *Repo) metadataPath(role string, version int64) string {
	name := url.PathEscape(role) + ".json"
	if r.Consistent {
		name = fmt.Sprintf("%d.%s", version, name)
	}
	return "/metadata/" + name
}

// targetPaths are the URL paths a target is served under: by each hash with consistent
// snapshots, by name otherwise.
func (r *Repo) targetPaths(name string, tf *metadata.TargetFiles) []string {
	if !r.Consistent {
		return []string{"/targets/" + name}
	}
	dir, base := path.Split(name)
	var out []string
	for _, h := range tf.Hashes {
		out = append(out, "/targets/"+dir+hex.EncodeToString(h)+"."+base)
	}
	return out
}

// Serve replaces what the server answers at a URL path (an attacker on the network, or on
// the server).
func (r *Repo) Serve(path string, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files[path] = b
}

// File is what the server answers at a URL path.
func (r *Repo) File(path string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[path]
}

// Requests are the URL paths asked for so far.
func (r *Repo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

func (r *Repo) sign(md interface {
	Sign(signature.Signer) (*metadata.Signature, error)
	ClearSignatures()
	ToBytes(bool) ([]byte, error)
}, keys []Key) []byte {
	r.t.Helper()
	md.ClearSignatures()
	for _, k := range keys {
		s, err := signature.LoadSigner(k.Private, crypto.Hash(0))
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := md.Sign(s); err != nil {
			r.t.Fatal(err)
		}
	}
	b, err := md.ToBytes(true)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}
