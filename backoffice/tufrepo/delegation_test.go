package tufrepo

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// party is the keys one party holds.
type party []ed25519.PrivateKey

func newParty(t *testing.T, n int) party {
	t.Helper()
	var p party
	for range n {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		p = append(p, k)
	}
	return p
}

func (p party) pubs() []ed25519.PublicKey {
	var out []ed25519.PublicKey
	for _, k := range p {
		out = append(out, k.Public().(ed25519.PublicKey))
	}
	return out
}

// world is a vendor's repository that delegates: three keepers (threshold 2) for the
// registry, facility "a" for its policy, two release keys (threshold 2) for firmware.
type world struct {
	dir       string
	vendor    Signers // root, targets, snapshot, timestamp
	online    Signers // snapshot, timestamp
	keepers   party
	facility  party
	release   party
	published func() int64 // the snapshot version
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{dir: t.TempDir(), keepers: newParty(t, 3), facility: newParty(t, 1), release: newParty(t, 2)}
	rk, s := keysFor(t)
	w.vendor = s
	w.online = Signers{Snapshot: s[Snapshot], Timestamp: s[Timestamp]}
	if err := Init(w.dir, rk, s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	w.published = func() int64 {
		r, err := Open(w.dir)
		if err != nil {
			t.Fatal(err)
		}
		return r.snapshot.Signed.Version
	}
	signers := Signers{Targets: s[Targets], Snapshot: s[Snapshot], Timestamp: s[Timestamp],
		RegistryRole: w.keepers[:2], PolicyRole("a"): w.facility, FirmwareRole: w.release}
	for _, d := range []Delegation{
		{Name: RegistryRole, Paths: RegistryPaths(), Keys: w.keepers.pubs(), Threshold: 2},
		{Name: PolicyRole("a"), Paths: PolicyPaths("a"), Keys: w.facility.pubs(), Threshold: 1},
		{Name: FirmwareRole, Paths: FirmwarePaths(), Keys: w.release.pubs(), Threshold: 2},
	} {
		r := w.open(t)
		if err := r.Delegate(d, signers, DefaultExpiry, time.Now()); err != nil {
			t.Fatalf("delegate %s: %v", d.Name, err)
		}
	}
	return w
}

func (w *world) open(t *testing.T) *Repo {
	t.Helper()
	r, err := Open(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func file(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckRoleName(t *testing.T) {
	for _, bad := range []string{"", "a/b", "..", "a..b", "../registry", "reg?x", "reg#x", ".hidden", "targets", "root", "snapshot", "timestamp", "a b", `a\b`, "a%2fb"} {
		if err := CheckRoleName(bad); !errors.Is(err, ErrRoleName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, good := range []string{RegistryRole, FirmwareRole, PolicyRole("demo-county"), "policy-st.louis_2"} {
		if err := CheckRoleName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	// Delegate checks it before anything is signed.
	w := newWorld(t)
	r := w.open(t)
	for _, bad := range []string{"a/b", "..", "x?y", "x#y"} {
		err := r.Delegate(Delegation{Name: bad, Paths: []string{"x"}, Keys: w.release.pubs(), Threshold: 1}, w.vendor, DefaultExpiry, time.Now())
		if !errors.Is(err, ErrRoleName) {
			t.Errorf("delegate %q: %v", bad, err)
		}
	}
}

func TestDelegatedRouting(t *testing.T) {
	w := newWorld(t)
	r := w.open(t)
	if !r.delegates() || len(r.Roles()) != 3 {
		t.Fatalf("roles %+v", r.Roles())
	}
	// Each role has a signed first version, and the snapshot lists every one.
	for _, role := range []string{RegistryRole, PolicyRole("a"), FirmwareRole} {
		if mf := r.snapshot.Signed.Meta[role+".json"]; mf == nil || mf.Version != 1 {
			t.Fatalf("snapshot lists %s as %+v", role, mf)
		}
	}
	// Nothing a delegation does not cover is taken, not even by the top-level role.
	for _, name := range []string{"policy/b.json", "other.txt", "registry.reg.bak"} {
		if err := r.AddTarget(name, file(t, "x"), nil); !errors.Is(err, ErrNoDelegation) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := r.AddTarget("registry.reg", file(t, "reg v1"), map[string]int{"version": 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget("registry-delta/0-1.delta", file(t, "delta"), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget("policy/a.json", file(t, "policy"), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget("firmware/image-1.bin", file(t, "fw"), nil); err != nil {
		t.Fatal(err)
	}
	all := Signers{Snapshot: w.online[Snapshot], Timestamp: w.online[Timestamp],
		RegistryRole: w.keepers[1:], PolicyRole("a"): w.facility, FirmwareRole: w.release}
	if err := r.Commit(all, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r = w.open(t)
	if len(r.targets.Signed.Targets) != 0 {
		t.Fatalf("top-level targets lists %v", r.targets.Signed.Targets)
	}
	want := map[string]string{"registry.reg": RegistryRole, "registry-delta/0-1.delta": RegistryRole,
		"policy/a.json": PolicyRole("a"), "firmware/image-1.bin": FirmwareRole}
	for name, role := range want {
		if r.roles[role].Signed.Targets[name] == nil || r.Target(name) == nil {
			t.Errorf("%s is not in %s", name, role)
		}
		if r.roles[role].Signed.Version != 2 {
			t.Errorf("%s version %d", role, r.roles[role].Signed.Version)
		}
	}
	if strings.Join(r.TargetNames(), ",") != "firmware/image-1.bin,policy/a.json,registry-delta/0-1.delta,registry.reg" {
		t.Fatalf("names %v", r.TargetNames())
	}
	p, err := r.TargetPath("registry.reg")
	if b, _ := os.ReadFile(p); err != nil || string(b) != "reg v1" {
		t.Fatalf("TargetPath %q %v", p, err)
	}
}

// The keepers sign offline, one after the other; nothing is published until two have.
func TestPendingThreshold(t *testing.T) {
	w := newWorld(t)
	r := w.open(t)
	before := w.published()
	if err := r.AddTarget("registry.reg", file(t, "reg v1"), nil); err != nil {
		t.Fatal(err)
	}
	// The back office holds no keeper's key: the metadata waits, unsigned, and the online
	// keys have nothing to publish.
	if err := r.Commit(w.online, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "pending", "registry.json")); err != nil {
		t.Fatal(err)
	}
	if w.published() != before {
		t.Fatal("snapshot changed for an unsigned role")
	}
	// The vendor's targets key is not a keeper's.
	r = w.open(t)
	if err := r.Sign(RegistryRole, w.vendor[Targets]); !errors.Is(err, ErrNotRoleKey) {
		t.Fatalf("vendor signing the registry: %v", err)
	}
	if err := r.Sign(PolicyRole("a"), w.facility); !errors.Is(err, ErrNotPending) {
		t.Fatalf("signing what is not pending: %v", err)
	}
	if err := r.Sign(RegistryRole, w.keepers[:1]); err != nil {
		t.Fatal(err)
	}
	r = w.open(t)
	ri := r.Roles()[0]
	if ri.Name != RegistryRole || ri.Pending == nil || len(ri.Pending.SignedBy) != 1 || !ri.Pending.SignedBy[0].Equal(w.keepers[0].Public()) || ri.Pending.Version != 2 || ri.Version != 1 {
		t.Fatalf("after one keeper: %+v %+v", ri, ri.Pending)
	}
	// A signature forged onto the pending file counts for nothing.
	m := r.next[RegistryRole]
	m.Signatures = append(m.Signatures, metadata.Signature{KeyID: mustID(t, w.keepers[2]), Signature: bytes.Repeat([]byte{1}, 64)})
	if err := r.Commit(w.online, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if w.published() != before || r.Target("registry.reg") != nil {
		t.Fatal("published with one keeper's signature")
	}
	r = w.open(t)
	if err := r.Sign(RegistryRole, w.keepers[2:]); err != nil {
		t.Fatal(err)
	}
	// The keepers' signatures alone do not publish: the online keys do.
	if err := r.Commit(Signers{}, DefaultExpiry, time.Now()); !errors.Is(err, ErrThreshold) {
		t.Fatalf("commit without the snapshot key: %v", err)
	}
	r = w.open(t)
	if err := r.Commit(w.online, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r = w.open(t)
	if w.published() != before+1 || r.Target("registry.reg") == nil || r.roles[RegistryRole].Signed.Version != 2 {
		t.Fatalf("not published: snapshot %d", w.published())
	}
	if _, err := os.Stat(filepath.Join(w.dir, "pending", "registry.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pending file left: %v", err)
	}
	if got := len(r.roles[RegistryRole].Signatures); got != 2 {
		t.Fatalf("%d signatures published", got)
	}
}

func mustID(t *testing.T, k ed25519.PrivateKey) string {
	t.Helper()
	id, err := keyID(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A keeper leaves and another joins: the new delegation goes out only with registry
// metadata that the new keepers signed.
func TestRotateKeeper(t *testing.T) {
	w := newWorld(t)
	r := w.open(t)
	r.AddTarget("registry.reg", file(t, "reg v1"), nil)
	if err := r.Commit(Signers{Snapshot: w.online[Snapshot], Timestamp: w.online[Timestamp], RegistryRole: w.keepers[:2]}, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Keeper 0 leaves, newcomer joins.
	newcomer := newParty(t, 1)
	keepers := party{w.keepers[1], w.keepers[2], newcomer[0]}
	r = w.open(t)
	topBefore, before := r.targets.Signed.Version, w.published()
	if err := r.Delegate(Delegation{Name: RegistryRole, Paths: RegistryPaths(), Keys: keepers.pubs(), Threshold: 2}, w.vendor, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r = w.open(t)
	if !r.DelegationPending() || r.targets.Signed.Version != topBefore || w.published() != before {
		t.Fatal("new delegation published before the new keepers signed")
	}
	if p := r.Roles()[0].Pending; p == nil || p.Version != 3 || len(p.SignedBy) != 0 || p.Targets["registry.reg"] == nil {
		t.Fatalf("pending %+v", p)
	}
	// The leaver's key is refused, a remaining keeper's alone is not enough.
	if err := r.Sign(RegistryRole, w.keepers[:1]); !errors.Is(err, ErrNotRoleKey) {
		t.Fatalf("leaver signing: %v", err)
	}
	if err := r.Sign(RegistryRole, keepers[:1]); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(w.online, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if w.published() != before {
		t.Fatal("published with one signature of the new set")
	}
	if err := r.Sign(RegistryRole, keepers[2:]); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(w.online, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r = w.open(t)
	if r.DelegationPending() || r.targets.Signed.Version != topBefore+1 || r.roles[RegistryRole].Signed.Version != 3 {
		t.Fatalf("after rotation: top v%d, registry v%d", r.targets.Signed.Version, r.roles[RegistryRole].Signed.Version)
	}
	if err := r.targets.VerifyDelegate(RegistryRole, r.roles[RegistryRole]); err != nil {
		t.Fatal(err)
	}
	// The leaver's key is gone from the metadata altogether.
	if _, ok := r.targets.Signed.Delegations.Keys[mustID(t, w.keepers[0])]; ok {
		t.Fatal("the leaver's key is still listed")
	}
	// Other roles were left as they were.
	if r.roles[PolicyRole("a")].Signed.Version != 1 || r.roles[FirmwareRole].Signed.Version != 1 {
		t.Fatal("rotation touched other roles")
	}
}

// A repository made before delegations: its top-level targets hand their registry over to
// the keepers, and nothing changes for phones until the keepers have signed it.
func TestDelegateMovesTargets(t *testing.T) {
	dir := t.TempDir()
	rk, s := keysFor(t)
	if err := Init(dir, rk, s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, _ := Open(dir)
	r.AddTarget("registry.reg", file(t, "reg v1"), nil)
	r.AddTarget("policy/a.json", file(t, "policy"), nil)
	if err := r.Commit(s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	keepers := newParty(t, 3)
	if err := r.Delegate(Delegation{Name: RegistryRole, Paths: RegistryPaths(), Keys: keepers.pubs(), Threshold: 2}, s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, _ = Open(dir)
	if r.targets.Signed.Version != 2 || r.targets.Signed.Targets["registry.reg"] == nil {
		t.Fatal("the top-level targets changed before the keepers signed")
	}
	// The policy is now covered by no delegation: it cannot be published either.
	if err := r.AddTarget("policy/a.json", file(t, "policy 2"), nil); !errors.Is(err, ErrNoDelegation) {
		t.Fatalf("policy after delegating: %v", err)
	}
	if err := r.Sign(RegistryRole, keepers[1:]); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(s, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	r, _ = Open(dir)
	if r.targets.Signed.Targets["registry.reg"] != nil || r.roles[RegistryRole].Signed.Targets["registry.reg"] == nil {
		t.Fatal("registry.reg not moved to the keepers' role")
	}
	if r.targets.Signed.Targets["policy/a.json"] == nil {
		t.Fatal("a target no delegation covers was dropped")
	}
}

// go-tuf's own updater, the phone's library, walks the delegation from a repository served
// over HTTP and finds registry.reg in the keepers' role; metadata the vendor's key signed
// for that role is refused.
func TestUpdaterFollowsDelegation(t *testing.T) {
	w := newWorld(t)
	r := w.open(t)
	r.AddTarget("registry.reg", file(t, "reg v1"), map[string]int{"version": 1})
	r.AddTarget("policy/a.json", file(t, "policy"), nil)
	if err := r.Commit(Signers{Snapshot: w.online[Snapshot], Timestamp: w.online[Timestamp],
		RegistryRole: w.keepers[:2], PolicyRole("a"): w.facility}, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(w.dir)))
	t.Cleanup(srv.Close)
	root, err := w.open(t).RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(name string) (*metadata.TargetFiles, []byte, error) {
		t.Helper()
		cfg, err := config.New(srv.URL+"/metadata", root)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RemoteTargetsURL = srv.URL + "/targets"
		cfg.LocalMetadataDir = t.TempDir()
		cfg.LocalTargetsDir = t.TempDir()
		up, err := updater.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := up.Refresh(); err != nil {
			t.Fatal(err)
		}
		if len(up.GetTopLevelTargets()) != 0 {
			t.Fatalf("top-level targets %v", up.GetTopLevelTargets())
		}
		ti, err := up.GetTargetInfo(name)
		if err != nil {
			return nil, nil, err
		}
		_, b, err := up.DownloadTarget(ti, "", "")
		return ti, b, err
	}
	ti, b, err := fetch("registry.reg")
	var custom bytes.Buffer
	if err == nil {
		err = json.Compact(&custom, *ti.Custom)
	}
	if err != nil || string(b) != "reg v1" || custom.String() != `{"version":1}` {
		t.Fatalf("registry.reg through the delegation: %v %q", err, b)
	}
	if _, b, err := fetch("policy/a.json"); err != nil || string(b) != "policy" {
		t.Fatalf("policy: %v %q", err, b)
	}

	// The vendor signs a registry role of its own making (version 3, shrunk) and publishes it
	// with the online keys: the updater refuses it for want of the keepers' signatures.
	r = w.open(t)
	forged := clone(r.roles[RegistryRole])
	forged.Signed.Version++
	forged.Signed.Targets["registry.reg"].Length = 1
	forged.ClearSignatures()
	if err := sign(forged, RegistryRole, &metadata.Role{KeyIDs: []string{mustID(t, w.vendor[Targets][0])}, Threshold: 1}, w.vendor[Targets]); err != nil {
		t.Fatal(err)
	}
	if err := writeMeta(forged, filepath.Join(w.dir, "metadata", "3.registry.json")); err != nil {
		t.Fatal(err)
	}
	versions := map[string]int64{Targets: r.targets.Signed.Version, RegistryRole: 3, PolicyRole("a"): 2, FirmwareRole: 1}
	if err := r.publishSnapshot(versions, w.vendor, DefaultExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fetch("registry.reg"); err == nil || !strings.Contains(err.Error(), "registry") {
		t.Fatalf("vendor-signed registry role: %v", err)
	}
	// The facility's policy, in a role of its own, still resolves.
	if _, b, err := fetch("policy/a.json"); err != nil || string(b) != "policy" {
		t.Fatalf("policy beside a forged registry role: %v %q", err, b)
	}
}
