package tufclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
)

// world is a repository in a folder, served by a real HTTP server on loopback, with the keys
// of every role and a way to make the server lie.
type world struct {
	t       *testing.T
	dir     string
	srv     *httptest.Server
	keys    map[string][]ed25519.PrivateKey
	signers tufrepo.Signers

	mu       sync.Mutex
	override map[string][]byte // URL path -> what the server answers instead
	old      []byte            // a timestamp the attacker kept
}

func newWorld(t *testing.T, thresholds map[string]int) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), keys: map[string][]ed25519.PrivateKey{}, signers: tufrepo.Signers{}, override: map[string][]byte{}}
	rk := map[string]tufrepo.RoleKeys{}
	for _, role := range []string{tufrepo.Root, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp} {
		n := max(thresholds[role], 1)
		var pubs []ed25519.PublicKey
		for range n {
			k, err := tufrepo.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			w.keys[role] = append(w.keys[role], k)
			pubs = append(pubs, k.Public().(ed25519.PublicKey))
		}
		rk[role] = tufrepo.RoleKeys{Keys: pubs, Threshold: n}
		w.signers[role] = w.keys[role]
	}
	if err := tufrepo.Init(w.dir, rk, w.signers, tufrepo.DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(w.dir))
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		b, ok := w.override[r.URL.Path]
		w.mu.Unlock()
		if ok {
			rw.Write(b)
			return
		}
		files.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *world) repo() *tufrepo.Repo {
	r, err := tufrepo.Open(w.dir)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// publish adds a target with content and custom metadata and signs new metadata.
func (w *world) publish(name, content string, custom any, exp tufrepo.Expiry) {
	w.t.Helper()
	r := w.repo()
	src := filepath.Join(w.t.TempDir(), "src")
	os.WriteFile(src, []byte(content), 0o600)
	if err := r.AddTarget(name, src, custom); err != nil {
		w.t.Fatal(err)
	}
	if err := r.Commit(w.signers, exp, time.Now()); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) lie(path string, b []byte) {
	w.mu.Lock()
	w.override[path] = b
	w.mu.Unlock()
}

func (w *world) rootJSON() []byte {
	b, err := w.repo().RootJSON()
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) file(rel string) []byte {
	b, err := os.ReadFile(filepath.Join(w.dir, rel))
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) client(dir string) *Client {
	c, err := New(Options{Dir: dir, Root: w.rootJSON(), URL: w.srv.URL, MaxTarget: 1 << 20})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func fetch(t *testing.T, c *Client, name string) (string, Target, error) {
	t.Helper()
	tg, err := c.Target(name)
	if err != nil {
		return "", tg, err
	}
	var buf bytes.Buffer
	err = c.Fetch(context.Background(), tg, &buf)
	return buf.String(), tg, err
}

func TestRefreshAndFetch(t *testing.T) {
	w := newWorld(t, nil)
	w.publish("registry.reg", "registry v1", map[string]int{"version": 1}, tufrepo.DefaultExpiry)
	c := w.client(t.TempDir())
	until, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(until); d < time.Hour || d > tufrepo.DefaultExpiry.Timestamp {
		t.Fatalf("fresh until %v: want the timestamp's expiry", until)
	}
	got, tg, err := fetch(t, c, "registry.reg")
	if err != nil || got != "registry v1" {
		t.Fatalf("got %q %v", got, err)
	}
	var custom struct{ Version int }
	if err := json.Unmarshal(tg.Custom, &custom); err != nil || custom.Version != 1 {
		t.Fatalf("custom %s %v", tg.Custom, err)
	}
	if _, err := c.Target("policy/other.json"); !errors.Is(err, ErrNoTarget) {
		t.Fatalf("missing target: %v", err)
	}
}

// Each attack leaves the phone with the metadata it trusted before: the next honest refresh
// still sees version 1 of the registry, never anything the attacker served.
func TestAttacksRefused(t *testing.T) {
	short := tufrepo.Expiry{Root: time.Hour, Targets: time.Hour, Snapshot: time.Hour, Timestamp: -time.Hour}
	for _, tc := range []struct {
		name   string
		attack func(w *world)
		fetch  bool // the attack is on the target, not the metadata
		want   func(error) bool
	}{
		{"old version replayed", func(w *world) {
			w.lie("/metadata/timestamp.json", w.old)
		}, false, is(&metadata.ErrBadVersionNumber{})},
		{"expired timestamp (freeze)", func(w *world) {
			w.publish("registry.reg", "registry v2", map[string]int{"version": 2}, short)
		}, false, is(&metadata.ErrExpiredMetadata{})},
		{"signed by a wrong key", func(w *world) {
			stranger, _ := tufrepo.GenerateKey()
			// The honest tool refuses a key the root does not list, so forge the file.
			if err := w.repo().Refresh(tufrepo.Signers{tufrepo.Timestamp: {stranger}}, tufrepo.DefaultExpiry, time.Now()); err == nil {
				t.Fatal("the honest tool signed with a stranger's key")
			}
			ts, _ := metadata.Timestamp().FromBytes(w.file("metadata/timestamp.json"))
			ts.Signed.Version++
			ts.ClearSignatures()
			signWith(t, ts, stranger)
			b, _ := ts.ToBytes(true)
			w.lie("/metadata/timestamp.json", b)
		}, false, is(&metadata.ErrUnsignedMetadata{})},
		{"threshold not met", func(w *world) {
			// Targets needs two signatures; the attacker holds one of the two keys.
			r := w.repo()
			src := filepath.Join(t.TempDir(), "evil")
			os.WriteFile(src, []byte("evil registry"), 0o600)
			r.AddTarget("registry.reg", src, map[string]int{"version": 9})
			one := tufrepo.Signers{tufrepo.Targets: w.keys[tufrepo.Targets][:1], tufrepo.Snapshot: w.keys[tufrepo.Snapshot], tufrepo.Timestamp: w.keys[tufrepo.Timestamp]}
			if err := r.Commit(one, tufrepo.DefaultExpiry, time.Now()); !errors.Is(err, tufrepo.ErrThreshold) {
				t.Fatalf("the honest tool signed below threshold: %v", err)
			}
			forgeBelowThreshold(t, w)
		}, false, is(&metadata.ErrUnsignedMetadata{})},
		{"mix and match: new timestamp, old snapshot", func(w *world) {
			w.publish("registry.reg", "registry v2", map[string]int{"version": 2}, tufrepo.DefaultExpiry)
			v := w.repo().TargetsVersion() // snapshot and targets move together here
			w.lie(fmt.Sprintf("/metadata/%d.snapshot.json", v), w.file(fmt.Sprintf("metadata/%d.snapshot.json", v-1)))
		}, false, func(err error) bool { return err != nil }},
		{"target does not match its hash", func(w *world) {
			w.publish("registry.reg", "registry v2", map[string]int{"version": 2}, tufrepo.DefaultExpiry)
			tg := w.repo().Target("registry.reg")
			w.lie("/targets/"+hexName(tg, "registry.reg"), []byte("registry v1"))
		}, true, func(err error) bool { return errors.Is(err, ErrMismatch) }},
		{"target longer than signed", func(w *world) {
			w.publish("registry.reg", "registry v2", map[string]int{"version": 2}, tufrepo.DefaultExpiry)
			tg := w.repo().Target("registry.reg")
			w.lie("/targets/"+hexName(tg, "registry.reg"), []byte("registry v2 and then some"))
		}, true, func(err error) bool { return errors.Is(err, ErrMismatch) }},
		{"oversized target", func(w *world) {
			w.publish("registry.reg", strings.Repeat("x", 2<<20), map[string]int{"version": 2}, tufrepo.DefaultExpiry)
		}, true, func(err error) bool { return errors.Is(err, ErrTooLarge) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			thresholds := map[string]int{}
			if strings.HasPrefix(tc.name, "threshold") {
				thresholds[tufrepo.Targets] = 2
			}
			w := newWorld(t, thresholds)
			// The phone has seen two versions; the attacker kept the first one's timestamp.
			w.publish("registry.reg", "registry v0", map[string]int{"version": 1}, tufrepo.DefaultExpiry)
			w.old = w.file("metadata/timestamp.json")
			w.publish("registry.reg", "registry v1", map[string]int{"version": 1}, tufrepo.DefaultExpiry)
			dir := t.TempDir()
			c := w.client(dir)
			if _, err := c.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			trusted := w.repo().TargetsVersion()
			tc.attack(w)
			c = w.client(dir)
			_, err := c.Refresh(context.Background())
			if tc.fetch {
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
				_, _, err = fetch(t, c, "registry.reg")
			}
			if err == nil || !tc.want(err) {
				t.Fatalf("err = %v", err)
			}
			t.Logf("refused: %v", err)
			if tc.fetch {
				return
			}
			// The cache still holds the targets trusted before the attack.
			tg, err := metadata.Targets().FromFile(filepath.Join(dir, "targets.json"))
			if err != nil {
				t.Fatalf("cached targets damaged: %v", err)
			}
			if got := tg.Signed.Version; got != trusted {
				t.Fatalf("cached targets version %d, want %d", got, trusted)
			}
		})
	}
}

// A damaged cache costs a fresh walk from the enrolled root, nothing more.
func TestCorruptedCache(t *testing.T) {
	w := newWorld(t, nil)
	w.publish("registry.reg", "registry v1", map[string]int{"version": 1}, tufrepo.DefaultExpiry)
	dir := t.TempDir()
	if _, err := w.client(dir).Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		os.WriteFile(filepath.Join(dir, name), []byte("\x00garbage{"), 0o600)
	}
	c := w.client(dir)
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh over a damaged cache: %v", err)
	}
	if len(c.Damaged) != 4 {
		t.Fatalf("damaged files reported: %q", c.Damaged)
	}
	if got, _, err := fetch(t, c, "registry.reg"); err != nil || got != "registry v1" {
		t.Fatalf("got %q %v", got, err)
	}
}

// The repository's folder can be used directly (a USB stick, the simulated phone's demo).
func TestFileURL(t *testing.T) {
	w := newWorld(t, nil)
	w.publish("policy/demo.json", `{"version":1}`, map[string]int{"version": 1}, tufrepo.DefaultExpiry)
	c, err := New(Options{Dir: t.TempDir(), Root: w.rootJSON(), URL: "file://" + w.dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _, err := fetch(t, c, "policy/demo.json"); err != nil || got != `{"version":1}` {
		t.Fatalf("got %q %v", got, err)
	}
}

// Unreachable: an error, and until when the last refresh said things were fresh is the
// caller's to keep.
func TestUnreachable(t *testing.T) {
	w := newWorld(t, nil)
	c, err := New(Options{Dir: t.TempDir(), Root: w.rootJSON(), URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err == nil {
		t.Fatal("refresh from nowhere succeeded")
	}
	if _, err := New(Options{Dir: t.TempDir(), Root: w.rootJSON(), URL: "ftp://x"}); err == nil {
		t.Fatal("ftp accepted")
	}
}

func signWith[T metadata.Roles](t *testing.T, meta *metadata.Metadata[T], k ed25519.PrivateKey) {
	t.Helper()
	s, err := signature.LoadSigner(k, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := meta.Sign(s); err != nil {
		t.Fatal(err)
	}
}

// forgeBelowThreshold publishes targets version 2 signed by one of the two targets keys, with
// a snapshot and timestamp properly signed over it: only the threshold is wrong.
func forgeBelowThreshold(t *testing.T, w *world) {
	t.Helper()
	v := w.repo().TargetsVersion()
	tg, err := metadata.Targets().FromBytes(w.file(fmt.Sprintf("metadata/%d.targets.json", v)))
	if err != nil {
		t.Fatal(err)
	}
	tf, _ := metadata.TargetFile().FromBytes("registry.reg", []byte("evil registry"), "sha256")
	tg.Signed.Version = v + 1
	tg.Signed.Targets["registry.reg"] = tf
	tg.ClearSignatures()
	signWith(t, tg, w.keys[tufrepo.Targets][0])
	sn, err := metadata.Snapshot().FromBytes(w.file(fmt.Sprintf("metadata/%d.snapshot.json", v)))
	if err != nil {
		t.Fatal(err)
	}
	sn.Signed.Version = v + 1
	sn.Signed.Meta["targets.json"] = metadata.MetaFile(v + 1)
	sn.ClearSignatures()
	signWith(t, sn, w.keys[tufrepo.Snapshot][0])
	ts, err := metadata.Timestamp().FromBytes(w.file("metadata/timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version++
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(v + 1)
	ts.ClearSignatures()
	signWith(t, ts, w.keys[tufrepo.Timestamp][0])
	for name, m := range map[string]interface{ ToBytes(bool) ([]byte, error) }{fmt.Sprintf("%d.targets.json", v+1): tg, fmt.Sprintf("%d.snapshot.json", v+1): sn, "timestamp.json": ts} {
		b, err := m.ToBytes(true)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(w.dir, "metadata", name), b, 0o644)
	}
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func hexName(tf *metadata.TargetFiles, name string) string {
	return strings.Replace(name, "registry.reg", "", 1) + bytesHex(tf.Hashes["sha256"]) + ".registry.reg"
}

func bytesHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestNewRootResets: a root enrolled anew (another repository, or the vendor's keys all
// replaced) is trusted from then on; the metadata cached under the old root would otherwise
// win, and every refresh fail against the new repository.
func TestNewRootResets(t *testing.T) {
	a, b := newWorld(t, nil), newWorld(t, nil)
	a.publish("registry.reg", "registry of A", map[string]int{"version": 1}, tufrepo.DefaultExpiry)
	b.publish("registry.reg", "registry of B", map[string]int{"version": 1}, tufrepo.DefaultExpiry)
	dir := t.TempDir()
	c := a.client(dir)
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.RootChanged != nil {
		t.Fatalf("first enrolment reported as a change: %+v", c.RootChanged)
	}
	c = b.client(dir)
	if c.RootChanged == nil || c.RootChanged.Old == c.RootChanged.New {
		t.Fatalf("the new root is not reported: %+v", c.RootChanged)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh against the newly enrolled repository: %v", err)
	}
	if got, _, err := fetch(t, c, "registry.reg"); err != nil || got != "registry of B" {
		t.Fatalf("got %q %v", got, err)
	}
	// The same root again is no change.
	if c = b.client(dir); c.RootChanged != nil {
		t.Fatalf("same root reported as a change: %+v", c.RootChanged)
	}
}
