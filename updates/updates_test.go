package updates

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/tufclient/tuftest"
)

// vendor is the back office: a repository, its keys, and what it has published.
type vendor struct {
	t       *testing.T
	dir     string
	srv     *httptest.Server
	signers tufrepo.Signers
	exp     tufrepo.Expiry
	regs    map[uint64]string // version -> registry file
}

func newVendor(t *testing.T) *vendor {
	t.Helper()
	v := &vendor{t: t, dir: t.TempDir(), signers: tufrepo.Signers{}, exp: tufrepo.DefaultExpiry, regs: map[uint64]string{}}
	rk := map[string]tufrepo.RoleKeys{}
	for _, role := range []string{tufrepo.Root, tufrepo.Targets, tufrepo.Snapshot, tufrepo.Timestamp} {
		k, _ := tufrepo.GenerateKey()
		rk[role] = tufrepo.RoleKeys{Keys: []ed25519.PublicKey{k.Public().(ed25519.PublicKey)}, Threshold: 1}
		v.signers[role] = []ed25519.PrivateKey{k}
	}
	if err := tufrepo.Init(v.dir, rk, v.signers, v.exp, time.Now()); err != nil {
		t.Fatal(err)
	}
	v.srv = httptest.NewServer(http.FileServer(http.Dir(v.dir)))
	t.Cleanup(v.srv.Close)
	return v
}

// numbers makes n attorney numbers starting at base.
func numbers(base, n int) []registry.Item {
	var out []registry.Item
	for i := range n {
		out = append(out, registry.Item{Number: fmt.Sprintf("+1512555%04d", base+i), Kind: registry.Attorney})
	}
	return out
}

// build writes a registry file of version ver; removed lists what the previous lost.
func (v *vendor) build(ver uint64, items, removed []registry.Item) string {
	return v.buildChecked(ver, items, removed, true)
}

// buildChecked with checked false skips the back-office tool's own removal check, as a
// careless or hostile publisher would.
func (v *vendor) buildChecked(ver uint64, items, removed []registry.Item, checked bool) string {
	v.t.Helper()
	var prev *registry.Set
	if p, ok := v.regs[ver-1]; ok && checked {
		s, err := registry.Open(p)
		if err != nil {
			v.t.Fatal(err)
		}
		defer s.Close()
		prev = s
	}
	path := filepath.Join(v.t.TempDir(), fmt.Sprintf("r%d.reg", ver))
	var buf bytes.Buffer
	if err := registry.Build(&buf, ver, items, prev, removed); err != nil {
		v.t.Fatal(err)
	}
	os.WriteFile(path, buf.Bytes(), 0o600)
	v.regs[ver] = path
	return path
}

// publish puts a registry (and its delta from the previous version, if asked) and commits.
func (v *vendor) publish(ver uint64, file string, delta bool) {
	v.t.Helper()
	r, err := tufrepo.Open(v.dir)
	if err != nil {
		v.t.Fatal(err)
	}
	if err := r.AddTarget(RegistryTarget, file, Custom{Version: ver}); err != nil {
		v.t.Fatal(err)
	}
	if delta {
		old, _ := registry.Open(v.regs[ver-1])
		next, _ := registry.Open(file)
		var buf bytes.Buffer
		if err := registry.WriteDelta(&buf, old, next); err != nil {
			v.t.Fatal(err)
		}
		old.Close()
		next.Close()
		d := filepath.Join(v.t.TempDir(), "delta")
		os.WriteFile(d, buf.Bytes(), 0o600)
		if err := r.AddTarget(DeltaTarget(ver-1, ver), d, Custom{Version: ver}); err != nil {
			v.t.Fatal(err)
		}
	}
	if err := r.Commit(v.signers, v.exp, time.Now()); err != nil {
		v.t.Fatal(err)
	}
}

func (v *vendor) publishPolicy(facility string, ver int64) {
	v.t.Helper()
	b, err := policy.Demo(bytes.NewReader(bytes.Repeat([]byte{7}, 1<<16)), pin.TestParams(),
		[]string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", "age1lvyvwawkr0mcnnnncaghunadrqkmuf9e6507x9y920xxpp866cnql7dp2z"})
	if err != nil {
		v.t.Fatal(err)
	}
	s := strings.Replace(string(b), `"version": 1`, fmt.Sprintf(`"version": %d`, ver), 1)
	s = strings.Replace(s, `"facility": "demo-county"`, fmt.Sprintf(`"facility": %q`, facility), 1)
	p, err := policy.Parse([]byte(s))
	if err != nil || p.Facility != facility || p.Version != ver {
		v.t.Fatalf("test policy: %v %+v", err, p)
	}
	file := filepath.Join(v.t.TempDir(), "policy.json")
	os.WriteFile(file, []byte(s), 0o600)
	r, _ := tufrepo.Open(v.dir)
	if err := r.AddTarget(PolicyTarget("demo-county"), file, Custom{Version: uint64(ver)}); err != nil {
		v.t.Fatal(err)
	}
	if err := r.Commit(v.signers, v.exp, time.Now()); err != nil {
		v.t.Fatal(err)
	}
}

// phone is one phone's data directory.
type phone struct {
	t    *testing.T
	dir  string
	root []byte
	url  string
	now  time.Time
	u    *Updates
}

func (v *vendor) newPhone() *phone {
	r, _ := tufrepo.Open(v.dir)
	root, _ := r.RootJSON()
	p := &phone{t: v.t, dir: v.t.TempDir(), root: root, url: v.srv.URL, now: time.Now()}
	p.open()
	return p
}

func (p *phone) open() {
	p.t.Helper()
	if p.u != nil {
		p.u.Close()
	}
	u, err := Open(Options{Dir: filepath.Join(p.dir, "installed"), Facility: "demo-county", Now: func() time.Time { return p.now }})
	if err != nil {
		p.t.Fatal(err)
	}
	p.u = u
	p.t.Cleanup(func() { u.Close() })
}

func (p *phone) check() (Changes, error) {
	c, err := tufclient.New(tufclient.Options{Dir: filepath.Join(p.dir, "tuf"), Root: p.root, URL: p.url})
	if err != nil {
		p.t.Fatal(err)
	}
	return p.u.Check(context.Background(), c)
}

// lookup asks the installed registry, through a handle of its own as the call loop does.
func (p *phone) lookup(e164 string) bool {
	p.t.Helper()
	path := p.u.RegistryPath()
	if path == "" {
		return false
	}
	s, err := registry.Open(path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer s.Close()
	_, ok := s.Lookup(e164)
	return ok
}

func TestInstallFullThenDelta(t *testing.T) {
	v := newVendor(t)
	v.publishPolicy("demo-county", 1)
	v.publish(1, v.build(1, numbers(0, 1000), nil), false)
	p := v.newPhone()
	if f := p.u.Freshness(p.now); f.Stale {
		t.Fatal("a phone with no registry reports stale (it has nothing to be stale)")
	}
	ch, err := p.check()
	if err != nil || !ch.Registry || ch.Via != "full" || !ch.Policy {
		t.Fatalf("first check: %+v %v", ch, err)
	}
	if !p.lookup("+15125550999") || p.lookup("+15125551999") {
		t.Fatal("lookups after the first install")
	}
	if p.u.Policy() == nil || p.u.Policy().Version != 1 {
		t.Fatal("policy not installed")
	}
	// Version 2 adds 10 numbers and lists the 5 it removes.
	v.publish(2, v.build(2, append(numbers(5, 995), numbers(1000, 10)...), numbers(0, 5)), true)
	ch, err = p.check()
	if err != nil || !ch.Registry || ch.Via != "delta" {
		t.Fatalf("second check: %+v %v", ch, err)
	}
	if !p.lookup("+15125551009") || p.lookup("+15125550000") {
		t.Fatal("lookups after the delta")
	}
	// Nothing new: nothing installed.
	if ch, err := p.check(); err != nil || ch.Registry || ch.Policy {
		t.Fatalf("third check: %+v %v", ch, err)
	}
	// After a restart the same is installed, from flash alone.
	p.url = "http://127.0.0.1:1"
	p.open()
	if st := p.u.State(); st.Registry.Version != 2 || !p.lookup("+15125551009") {
		t.Fatalf("after restart: %+v", st)
	}
	files, _ := filepath.Glob(filepath.Join(p.dir, "installed", "registry-*"))
	if len(files) != 1 {
		t.Fatalf("registry files left: %v", files)
	}
}

// Each refused update leaves the previous registry installed and says why.
func TestRefusedUpdates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attack func(v *vendor)
		want   error
	}{
		{"shrink without listed removals", func(v *vendor) {
			// 1,000 numbers down to 72, as in the migration that lost them: made without
			// the previous version, so its removal log does not even reach back.
			v.publish(2, v.buildChecked(2, numbers(0, 72), nil, false), false)
		}, registry.ErrLogTooShort},
		{"older version", func(v *vendor) {
			v.build(2, numbers(0, 1001), nil)
			v.publish(3, v.build(3, numbers(0, 1002), nil), false)
		}, nil},
		{"file version differs from its metadata", func(v *vendor) {
			v.publish(5, v.build(2, numbers(0, 1001), nil), false)
		}, ErrMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVendor(t)
			v.publish(1, v.build(1, numbers(0, 1000), nil), false)
			p := v.newPhone()
			if _, err := p.check(); err == nil {
				t.Fatal("no policy published, yet no error") // the policy target is missing
			}
			if !p.lookup("+15125550999") {
				t.Fatal("first registry not installed")
			}
			tc.attack(v)
			if tc.name == "older version" {
				if _, err := p.check(); err != nil && !strings.Contains(err.Error(), "policy") {
					t.Fatal(err)
				}
				// Now the repository goes back to version 1.
				v.publish(1, v.regs[1], false)
				tc.want = ErrRollback
			}
			_, err := p.check()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)
			if !p.lookup("+15125550999") {
				t.Fatal("the previous registry is gone")
			}
		})
	}
}

func TestPolicyForAnotherFacility(t *testing.T) {
	v := newVendor(t)
	v.publishPolicy("county-b", 1) // published under demo's name, but its content names county-b
	v.publish(1, v.build(1, numbers(0, 10), nil), false)
	p := v.newPhone()
	_, err := p.check()
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "county-b") {
		t.Fatalf("err = %v", err)
	}
	if p.u.Policy() != nil {
		t.Fatal("installed another facility's policy")
	}
	if !p.lookup("+15125550009") {
		t.Fatal("the registry was refused along with the policy")
	}
}

// installed is a repository with policy 1 and a 10-number registry 1, and a phone that
// installed both.
func installed(t *testing.T) (*vendor, *phone) {
	t.Helper()
	v := newVendor(t)
	v.publishPolicy("demo-county", 1)
	v.publish(1, v.build(1, numbers(0, 10), nil), false)
	p := v.newPhone()
	if _, err := p.check(); err != nil {
		t.Fatal(err)
	}
	return v, p
}

// With the repository unreachable the phone keeps its registry and, once the metadata has
// expired, reports itself stale from that moment.
func TestStale(t *testing.T) {
	v, p := installed(t)
	until := p.u.State().FreshUntil
	if p.u.Freshness(p.now).Stale || until.IsZero() {
		t.Fatalf("fresh install reports stale (fresh until %v)", until)
	}
	v.srv.Close()
	p.now = until.Add(time.Hour)
	if _, err := p.check(); err == nil {
		t.Fatal("check against a closed server succeeded")
	}
	f := p.u.Freshness(p.now)
	if !f.Stale || !f.Since.Equal(until) || !p.lookup("+15125550009") {
		t.Fatalf("freshness %+v", f)
	}
	if st := p.u.State(); st.LastError == "" || !strings.Contains(st.Describe(p.now), "stale since") {
		t.Fatalf("state %+v", st)
	}
}

// A registry file damaged on flash is dropped (no registry: nothing recorded), and the same
// version is fetched again; the version floor stays.
func TestDamagedInstall(t *testing.T) {
	_, p := installed(t)
	path := p.u.RegistryPath()
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0xff
	os.WriteFile(path, b, 0o600)
	p.open()
	if p.u.RegistryPath() != "" {
		t.Fatal("a damaged registry is still in force")
	}
	if ch, err := p.check(); err != nil || !ch.Registry {
		t.Fatalf("refetch: %+v %v", ch, err)
	}
	if !p.lookup("+15125550009") {
		t.Fatal("not restored")
	}
}

// A policy file damaged or removed on flash is dropped (the phone is out of service), and the
// same version is fetched again at the next check, though its hash is the one installed.
func TestDamagedPolicyFetchedAgain(t *testing.T) {
	for _, damage := range []struct {
		name string
		do   func(path string)
	}{
		{"garbled", func(path string) { os.WriteFile(path, []byte(`{"broken`), 0o600) }},
		{"removed", func(path string) { os.Remove(path) }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			_, p := installed(t)
			damage.do(filepath.Join(p.dir, "installed", "policy.json"))
			p.open()
			if p.u.Policy() != nil {
				t.Fatal("a damaged policy is still in force")
			}
			if ch, err := p.check(); err != nil || !ch.Policy {
				t.Fatalf("refetch: %+v %v", ch, err)
			}
			if pol := p.u.Policy(); pol == nil || pol.Version != 1 {
				t.Fatalf("policy not restored: %+v", pol)
			}
		})
	}
}

// An item the phone takes from a local file is neither fetched nor installed from the
// repository, so that nothing says it was.
func TestLocalItemsNotInstalled(t *testing.T) {
	v := newVendor(t)
	v.publishPolicy("demo-county", 1)
	v.publish(1, v.build(1, numbers(0, 10), nil), false)
	for _, tc := range []struct {
		name                     string
		localPolicy, localReg    bool
		wantPolicy, wantRegistry bool
	}{
		{"local registry", false, true, true, false},
		{"local policy", true, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := v.newPhone()
			u, err := Open(Options{Dir: filepath.Join(p.dir, "installed"), Facility: "demo-county",
				LocalPolicy: tc.localPolicy, LocalRegistry: tc.localReg})
			if err != nil {
				t.Fatal(err)
			}
			p.u.Close()
			p.u = u
			t.Cleanup(func() { u.Close() })
			ch, err := p.check()
			if err != nil || ch.Policy != tc.wantPolicy || ch.Registry != tc.wantRegistry {
				t.Fatalf("changes %+v, %v", ch, err)
			}
			if (u.Policy() != nil) != tc.wantPolicy || (u.RegistryPath() != "") != tc.wantRegistry {
				t.Fatalf("installed: policy %v, registry %q", u.Policy() != nil, u.RegistryPath())
			}
		})
	}
}

// TestInstalledCheckedAtRest: what is installed is checked against the hash its signed
// metadata gave at install, at every start, not trusted because it parses. A file changed on
// flash, even into one that parses, is no verified policy or registry until a verified one
// is fetched again.
func TestInstalledCheckedAtRest(t *testing.T) {
	t.Run("policy", func(t *testing.T) {
		_, p := installed(t)
		path := filepath.Join(p.dir, "installed", "policy.json")
		b, _ := os.ReadFile(path)
		// Still a valid policy: a longer call limit is all it changes.
		os.WriteFile(path, bytes.Replace(b, []byte(`"call_limit": "15m"`), []byte(`"call_limit": "16m"`), 1), 0o600)
		if _, err := policy.Load(path); err != nil {
			t.Fatalf("the altered policy should still parse: %v", err)
		}
		p.open()
		if p.u.Policy() != nil {
			t.Fatal("a policy altered on flash is in force")
		}
		if ch, err := p.check(); err != nil || !ch.Policy {
			t.Fatalf("refetch: %+v %v", ch, err)
		}
		if pol := p.u.Policy(); pol == nil || pol.Limits.CallLimit != 15*time.Minute {
			t.Fatalf("policy not restored: %+v", pol)
		}
	})
	t.Run("registry", func(t *testing.T) {
		v, p := installed(t)
		// Another registry of the same version, as sound as the signed one: one attorney fewer.
		other := v.build(1, numbers(0, 9), nil)
		b, _ := os.ReadFile(other)
		os.WriteFile(p.u.RegistryPath(), b, 0o600)
		p.open()
		if p.u.RegistryPath() != "" {
			t.Fatal("a registry replaced on flash is in force")
		}
		if ch, err := p.check(); err != nil || !ch.Registry {
			t.Fatalf("refetch: %+v %v", ch, err)
		}
		if !p.lookup("+15125550009") {
			t.Fatal("the signed registry was not restored")
		}
	})
	t.Run("state lost", func(t *testing.T) {
		// Without the hashes recorded at install nothing can be checked: the versions still
		// bar older ones, and the files are fetched again.
		_, p := installed(t)
		os.WriteFile(filepath.Join(p.dir, "installed", "state.json"), []byte("{garbage"), 0o600)
		p.open()
		if st := p.u.State(); st.Registry.Version != 1 || st.Policy.Version != 1 {
			t.Fatalf("versions not kept: %+v", st)
		}
		if p.u.Policy() != nil || p.u.RegistryPath() != "" {
			t.Fatal("files whose hashes are lost are in force")
		}
		if ch, err := p.check(); err != nil || !ch.Policy || !ch.Registry {
			t.Fatalf("refetch: %+v %v", ch, err)
		}
		if p.u.Policy() == nil || !p.lookup("+15125550009") {
			t.Fatal("not restored")
		}
	})
}

// TestInstalledPolicyCheckedAtStart: the phone's own rule for policies (its pinned recording
// recipients) is applied to what is installed at every start, not only at install.
func TestInstalledPolicyCheckedAtStart(t *testing.T) {
	_, p := installed(t)
	p.u.Close()
	var log bytes.Buffer
	u, err := Open(Options{Dir: filepath.Join(p.dir, "installed"), Facility: "demo-county",
		CheckPolicy: func(*policy.Policy) error { return errors.New("recipient not pinned") },
		Log:         slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p.u = u
	if u.Policy() != nil {
		t.Fatal("a policy the phone refuses is in force")
	}
	if !strings.Contains(log.String(), "recipient not pinned") {
		t.Errorf("the log does not say why:\n%s", log.String())
	}
}

// TestDelegatedRegistry: a registry its keepers signed, with only a sha512 hash, is installed
// and known again at the next check and after a restart; one signed by too few keepers, or
// by the vendor alone, is refused naming the role, and the installed registry stays in force.
func TestDelegatedRegistry(t *testing.T) {
	v := newVendor(t) // builds the registry files; its own repository is not used
	repo := tuftest.New(t, true)
	keepers := []tuftest.Key{tuftest.NewKey(t), tuftest.NewKey(t), tuftest.NewKey(t)}
	repo.Delegate(metadata.TARGETS, "registry", keepers, 2, true, RegistryTarget, "registry-delta/*")
	repo.Signers["registry"] = keepers[1:]
	reg := func(ver uint64, items []registry.Item, checked bool) {
		b, err := os.ReadFile(v.buildChecked(ver, items, nil, checked))
		if err != nil {
			t.Fatal(err)
		}
		repo.AddTarget("registry", RegistryTarget, b, Custom{Version: ver}, "sha512")
		repo.Publish()
	}
	reg(1, numbers(0, 100), true)
	p := &phone{t: t, dir: t.TempDir(), root: repo.RootJSON(), url: repo.Srv.URL, now: time.Now()}
	p.open()
	// No facility role here: the policy is refused as missing, the registry installed.
	if ch, err := p.check(); !ch.Registry || !errors.Is(err, tufclient.ErrNoTarget) {
		t.Fatalf("first check: %+v %v", ch, err)
	}
	if ch, _ := p.check(); ch.Registry {
		t.Fatal("the same registry installed again: not known by its sha512")
	}
	p.open()
	if p.u.RegistryPath() == "" || !p.lookup("+15125550099") {
		t.Fatal("after a restart the registry installed from a sha512-only target does not verify")
	}
	for _, tc := range []struct {
		name    string
		signers []tuftest.Key
		says    string
	}{
		{"one keeper", keepers[:1], "delegated role registry (delegated by targets): 1 of 2 required signatures"},
		{"the vendor alone", []tuftest.Key{repo.Keys[metadata.TARGETS]}, "delegated role registry (delegated by targets): 0 of 2 required signatures"},
	} {
		repo.Signers["registry"] = tc.signers
		reg(2, numbers(0, 72), false)
		_, err := p.check()
		if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(p.u.State().LastError, tc.says) {
			t.Fatalf("%s: err = %v, last error %q", tc.name, err, p.u.State().LastError)
		}
		if st := p.u.State(); st.Registry.Version != 1 || !p.lookup("+15125550099") {
			t.Fatalf("%s: the installed registry is no longer in force: %+v", tc.name, st.Registry)
		}
	}
}
