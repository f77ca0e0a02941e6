package tufclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/tufclient/tuftest"
)

// keepers is the repository of issue 15: the vendor's top-level targets only delegates: the
// registry to three keepers with a threshold of two, each facility's policy to that
// facility, firmware to the vendor's two release keys.
type keepers struct {
	*tuftest.Repo
	keepers      []tuftest.Key
	facA, facB   tuftest.Key
	dir          string
	topLevelOnly bool
}

func newKeepers(t *testing.T, consistent bool) *keepers {
	t.Helper()
	k := &keepers{Repo: tuftest.New(t, consistent), facA: tuftest.NewKey(t), facB: tuftest.NewKey(t), dir: t.TempDir(), topLevelOnly: true}
	for range 3 {
		k.keepers = append(k.keepers, tuftest.NewKey(t))
	}
	k.Delegate(metadata.TARGETS, "registry", k.keepers, 2, true, "registry.reg", "registry-delta/*")
	k.Signers["registry"] = k.keepers[:2] // two keepers sign, as the threshold asks
	k.Delegate(metadata.TARGETS, "facility-a", []tuftest.Key{k.facA}, 1, true, "policy/a.json")
	k.Delegate(metadata.TARGETS, "facility-b", []tuftest.Key{k.facB}, 1, true, "policy/b.json")
	k.Delegate(metadata.TARGETS, "firmware", []tuftest.Key{tuftest.NewKey(t), tuftest.NewKey(t)}, 2, true, "firmware/*")
	k.AddTarget("registry", "registry.reg", []byte("registry v1"), map[string]int{"version": 1})
	k.AddTarget("registry", "registry-delta/0-1.delta", []byte("delta to v1"), nil)
	k.AddTarget("facility-a", "policy/a.json", []byte("policy of A"), nil)
	k.AddTarget("facility-b", "policy/b.json", []byte("policy of B"), nil)
	k.AddTarget("firmware", "firmware/phone-1.img", []byte("firmware 1"), nil)
	k.Publish()
	return k
}

// client is the phone, its trusted metadata kept in k.dir between runs, freshly refreshed.
func (k *keepers) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(Options{Dir: k.dir, Root: k.RootJSON(), URL: k.Srv.URL, MaxTarget: 1 << 20, TopLevelOnlyDelegates: k.topLevelOnly})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return c
}

// TestDelegatedTargets: each target comes from the role delegated its path, and is vouched
// for only until the earliest expiry on the way to it.
func TestDelegatedTargets(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent snapshots %v", consistent), func(t *testing.T) {
			k := newKeepers(t, consistent)
			c := k.client(t)
			for name, want := range map[string][2]string{
				"registry.reg":             {"registry v1", "registry"},
				"registry-delta/0-1.delta": {"delta to v1", "registry"},
				"policy/a.json":            {"policy of A", "facility-a"},
				"policy/b.json":            {"policy of B", "facility-b"},
				"firmware/phone-1.img":     {"firmware 1", "firmware"},
			} {
				got, tg, err := fetch(t, c, name)
				if err != nil || got != want[0] || tg.Role != want[1] {
					t.Fatalf("%s: got %q from %q, %v; want %q from %q", name, got, tg.Role, err, want[0], want[1])
				}
				if !tg.Expires.Equal(k.Expires) {
					t.Fatalf("%s: vouched for until %v, want %v", name, tg.Expires, k.Expires)
				}
			}
			if _, err := c.Target("policy/c.json"); !errors.Is(err, ErrNoTarget) {
				t.Fatalf("a path no role is delegated: %v", err)
			}
			want := k.MetadataPath("registry", k.Roles["registry"].Signed.Version)
			if !slices.Contains(k.Requests(), want) {
				t.Fatalf("the registry role was not asked for as %s: %q", want, k.Requests())
			}
		})
	}
}

// TestDelegationAttacks: each is refused with the role and the reason, and what the phone
// trusted before stays in its cache.
func TestDelegationAttacks(t *testing.T) {
	evil := []byte("registry shrunk")
	noTarget := func(k *keepers) { delete(k.Roles["registry"].Signed.Targets, "registry.reg") }
	for _, tc := range []struct {
		name   string
		attack func(k *keepers)
		role   string // the role the refusal names ("" if none)
		want   error
		says   string
	}{
		{"threshold not met: one keeper of two", func(k *keepers) {
			k.AddTarget("registry", "registry.reg", evil, nil)
			k.Signers["registry"] = k.keepers[:1]
			k.Publish()
		}, "registry", &metadata.ErrUnsignedMetadata{}, "1 of 2 required signatures"},
		{"revoked keeper's key still used", func(k *keepers) {
			k.Delegate(metadata.TARGETS, "registry", k.keepers[1:], 2, true, "registry.reg", "registry-delta/*")
			k.AddTarget("registry", "registry.reg", evil, nil)
			k.Signers["registry"] = k.keepers[:2]
			k.Publish()
		}, "registry", &metadata.ErrUnsignedMetadata{}, "1 of 2 required signatures"},
		{"vendor's targets key lists registry.reg itself", func(k *keepers) {
			k.AddTarget(metadata.TARGETS, "registry.reg", evil, nil)
			k.Publish()
		}, "", ErrTopLevelTarget, "registry.reg is signed by the top-level targets role, which may only delegate"},
		{"registry shrunk and signed only by the vendor", func(k *keepers) {
			k.AddTarget("registry", "registry.reg", evil, nil)
			k.Signers["registry"] = []tuftest.Key{k.Keys[metadata.TARGETS]}
			k.Publish()
		}, "registry", &metadata.ErrUnsignedMetadata{}, "0 of 2 required signatures"},
		{"registry role rolled back", func(k *keepers) {
			old := k.File(k.MetadataPath("registry", k.Roles["registry"].Signed.Version))
			k.AddTarget("registry", "registry.reg", []byte("registry v2"), nil)
			k.Publish()
			k.Serve(k.MetadataPath("registry", k.Roles["registry"].Signed.Version), old)
		}, "registry", &metadata.ErrBadVersionNumber{}, "rolled back"},
		{"registry role frozen (expired)", func(k *keepers) {
			k.AddTarget("registry", "registry.reg", []byte("registry v2"), nil)
			k.Publish()
			k.Resign("registry", func(md *metadata.Metadata[metadata.TargetsType]) { md.Signed.Expires = time.Now().Add(-time.Hour) })
		}, "registry", &metadata.ErrExpiredMetadata{}, "expired"},
		{"delegation loop", func(k *keepers) {
			noTarget(k)
			k.Delegate("registry", "registry-2", k.keepers, 2, true, "registry.reg")
			k.Delegate("registry-2", "registry", k.keepers, 2, true, "registry.reg")
			k.Publish()
		}, "", ErrDelegationLoop, "targets -> registry -> registry-2 -> registry"},
		{"delegation chain deeper than the cap", func(k *keepers) {
			noTarget(k)
			parent := "registry"
			for i := range MaxRoles + 1 {
				role := fmt.Sprintf("registry-%d", i)
				k.Delegate(parent, role, k.keepers, 2, true, "registry.reg")
				parent = role
			}
			k.AddTarget(parent, "registry.reg", evil, nil)
			k.Publish()
		}, "", ErrTooManyRoles, "more than 8"},
		{"facility A signs facility B's policy", func(k *keepers) {
			k.AddTarget("facility-b", "policy/b.json", []byte("policy of B, by A"), nil)
			k.Signers["facility-b"] = []tuftest.Key{k.facA}
			k.Publish()
		}, "facility-b", &metadata.ErrUnsignedMetadata{}, "0 of 1 required signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKeepers(t, true)
			name := "registry.reg"
			if tc.role == "facility-b" {
				name = "policy/b.json"
			}
			c := k.client(t)
			before, _, err := fetch(t, c, name)
			if err != nil {
				t.Fatal(err)
			}
			tc.attack(k)
			_, _, err = fetch(t, k.client(t), name)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v; want %v saying %q", err, tc.want, tc.says)
			}
			var re *RoleError
			if tc.role != "" && (!errors.As(err, &re) || re.Role != tc.role || re.Target != name ||
				!strings.Contains(err.Error(), name+": delegated role "+tc.role+" ")) {
				t.Fatalf("err = %v: does not name role %s", err, tc.role)
			}
			t.Logf("refused: %v", err)
			if tc.role != "" {
				// The role's metadata trusted before the attack is still the phone's.
				cached, err := metadata.Targets().FromFile(filepath.Join(k.dir, tc.role+".json"))
				if err != nil {
					t.Fatal(err)
				}
				if tf := cached.Signed.Targets[name]; tf == nil || tf.VerifyLengthHashes([]byte(before)) != nil {
					t.Fatalf("cached %s no longer lists %s as %q", tc.role, name, before)
				}
			}
		})
	}
}

// TestUnsafeRoleNames: a delegation to a role whose name would leave the metadata folder or
// change the URL is refused before its metadata is asked for.
func TestUnsafeRoleNames(t *testing.T) {
	for _, name := range []string{"a/b", "/registry", "../registry", "..", ".", "", "?", "#", "%2e%2e", `a\b`, "a\x00b"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			k := newKeepers(t, true)
			delete(k.Roles["registry"].Signed.Targets, "registry.reg")
			k.Delegate("registry", name, k.keepers, 2, true, "registry.reg")
			k.AddTarget(name, "registry.reg", []byte("registry shrunk"), nil)
			k.Publish()
			_, err := k.client(t).Target("registry.reg")
			var re *RoleError
			if !errors.Is(err, ErrRoleName) || !errors.As(err, &re) || re.Role != name || re.Delegator != "registry" {
				t.Fatalf("err = %v", err)
			}
			t.Logf("refused: %v", err)
			if p := k.MetadataPath(name, k.Roles[name].Signed.Version); slices.Contains(k.Requests(), p) {
				t.Fatalf("%s was asked for", p)
			}
		})
	}
}

// TestSHA512Only: a target may carry only a sha512 hash; it is checked, and fetched under it.
func TestSHA512Only(t *testing.T) {
	k := newKeepers(t, true)
	k.AddTarget("registry", "registry.reg", []byte("registry v2"), nil, "sha512")
	k.Publish()
	c := k.client(t)
	got, tg, err := fetch(t, c, "registry.reg")
	if err != nil || got != "registry v2" || len(tg.Hashes) != 1 || len(tg.Hashes["sha512"]) != 64 {
		t.Fatalf("got %q %v %v", got, tg.Hashes, err)
	}
	k.Serve(fmt.Sprintf("/targets/%x.registry.reg", tg.Hashes["sha512"]), []byte("registry v3"))
	if _, _, err := fetch(t, c, "registry.reg"); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "sha512 differs") {
		t.Fatalf("wrong bytes under a sha512: %v", err)
	}
	// Both hashes: both are checked.
	tf := k.AddTarget("registry", "registry.reg", []byte("registry v4"), nil, "sha256", "sha512")
	tf.Hashes["sha512"][0] ^= 1
	k.Publish()
	if _, _, err := fetch(t, k.client(t), "registry.reg"); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "sha512 differs") {
		t.Fatalf("a wrong sha512 beside a right sha256: %v", err)
	}
	// Only algorithms the phone does not check: refused.
	tf = k.AddTarget("registry", "registry.reg", []byte("registry v5"), nil)
	tf.Hashes = metadata.Hashes{"blake2b-256": tf.Hashes["sha256"]}
	k.Publish()
	if _, err := k.client(t).Target("registry.reg"); !errors.Is(err, ErrNoHash) {
		t.Fatalf("no hash the phone checks: %v", err)
	}
}

// TestKeeperRotated: a keeper leaves and another joins; the leaver's key no longer counts,
// the new keepers' does.
func TestKeeperRotated(t *testing.T) {
	k := newKeepers(t, true)
	joiner := tuftest.NewKey(t)
	k.Delegate(metadata.TARGETS, "registry", []tuftest.Key{k.keepers[1], k.keepers[2], joiner}, 2, true, "registry.reg", "registry-delta/*")
	k.Signers["registry"] = k.keepers[1:]
	k.Publish()
	if got, _, err := fetch(t, k.client(t), "registry.reg"); err != nil || got != "registry v1" {
		t.Fatalf("after the rotation: %q %v", got, err)
	}
	// The leaver and one who stays sign: one signature counts, the threshold is two.
	k.AddTarget("registry", "registry.reg", []byte("registry shrunk"), nil)
	k.Signers["registry"] = []tuftest.Key{k.keepers[0], k.keepers[1]}
	k.Publish()
	if _, err := k.client(t).Target("registry.reg"); !errors.Is(err, &metadata.ErrUnsignedMetadata{}) || !strings.Contains(err.Error(), "1 of 2 required signatures") {
		t.Fatalf("the leaver's key counted: %v", err)
	}
	// The joiner and one who stays sign: accepted.
	k.AddTarget("registry", "registry.reg", []byte("registry v2"), nil)
	k.Signers["registry"] = []tuftest.Key{k.keepers[2], joiner}
	k.Publish()
	if got, _, err := fetch(t, k.client(t), "registry.reg"); err != nil || got != "registry v2" {
		t.Fatalf("signed by the new keepers: %q %v", got, err)
	}
}

// TestFacilityListsAnothersPolicy: facility A's role listing policy/b.json is never asked:
// only facility B's role is delegated that path, and B's policy is what the phone gets.
func TestFacilityListsAnothersPolicy(t *testing.T) {
	k := newKeepers(t, true)
	k.AddTarget("facility-a", "policy/b.json", []byte("policy of B, by A"), nil)
	k.Publish()
	if got, tg, err := fetch(t, k.client(t), "policy/b.json"); err != nil || got != "policy of B" || tg.Role != "facility-b" {
		t.Fatalf("got %q from %s: %v", got, tg.Role, err)
	}
}

// TestTopLevelTargetsAllowed: without TopLevelOnlyDelegates (the default until the back
// office publishes delegated roles), the top-level targets may still list a target, and is
// consulted first, as TUF orders it.
func TestTopLevelTargetsAllowed(t *testing.T) {
	k := newKeepers(t, true)
	k.topLevelOnly = false
	k.AddTarget(metadata.TARGETS, "registry.reg", []byte("registry by the vendor"), nil)
	k.Publish()
	if got, tg, err := fetch(t, k.client(t), "registry.reg"); err != nil || got != "registry by the vendor" || tg.Role != metadata.TARGETS {
		t.Fatalf("got %q from %s: %v", got, tg.Role, err)
	}
}

// A delegated role's cached metadata torn by a power cut (an empty file, as a write not yet
// on flash leaves it) is dropped and fetched again, as the top-level roles' are: the walk to
// the role's targets does not stop at it.
func TestDelegatedRoleCacheTorn(t *testing.T) {
	k := newKeepers(t, false)
	if _, _, err := fetch(t, k.client(t), "registry.reg"); err != nil {
		t.Fatal(err)
	}
	role := filepath.Join(k.dir, "registry.json")
	if _, err := os.Stat(role); err != nil {
		t.Fatalf("the registry role is not cached where go-tuf keeps it: %v", err)
	}
	if err := os.WriteFile(role, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := k.client(t)
	if got, tg, err := fetch(t, c, "registry.reg"); err != nil || got != "registry v1" || tg.Role != "registry" {
		t.Fatalf("after a torn registry role: got %q from %q, %v", got, tg.Role, err)
	}
	if len(c.Damaged) != 1 || !strings.HasPrefix(c.Damaged[0], "registry.json: ") {
		t.Fatalf("damaged files reported: %q", c.Damaged)
	}
}
