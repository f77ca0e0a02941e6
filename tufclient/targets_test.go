package tufclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/firmware/release"
	"github.com/wallphone/wallphone/tufclient/tuftest"
)

// releaseOf is the custom metadata of a firmware image, as the vendor signs it.
func releaseOf(hw string, v int) map[string]any {
	return map[string]any{"version": v, "hardware": hw, "min_version": 0, "floor": 0,
		"index": fmt.Sprintf("firmware/%s_%d.bidx", hw, v), "index_sha256": strings.Repeat("ab", 32), "rollout": 100}
}

// withReleases is the keepers' repository with the firmware role listing three releases of
// "sim" firmware and their block indexes, in place of its one image.
func withReleases(t *testing.T, consistent bool) *keepers {
	t.Helper()
	k := newKeepers(t, consistent)
	delete(k.Roles["firmware"].Signed.Targets, "firmware/phone-1.img")
	for _, v := range []int{3, 5, 7} {
		k.AddTarget("firmware", fmt.Sprintf("firmware/sim_%d.img", v), fmt.Appendf(nil, "image %d", v), releaseOf("sim", v))
		k.AddTarget("firmware", fmt.Sprintf("firmware/sim_%d.bidx", v), fmt.Appendf(nil, "index %d", v), nil)
	}
	k.Publish()
	return k
}

// names are the names of ts, in order.
func names(ts []Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

// sameAsTarget fails unless each listed target is what Target(name) says of it, and every
// name in absent is one Target does not find.
func sameAsTarget(t *testing.T, c *Client, listed []Target, absent ...string) {
	t.Helper()
	for _, tg := range listed {
		one, err := c.Target(tg.Name)
		if err != nil || !reflect.DeepEqual(one, tg) {
			t.Fatalf("Targets says %+v, Target says %+v, %v", tg, one, err)
		}
	}
	for _, name := range absent {
		if _, err := c.Target(name); !errors.Is(err, ErrNoTarget) {
			t.Fatalf("Target(%s): %v, want ErrNoTarget", name, err)
		}
	}
}

// TestTargetsFirmware: the firmware role's releases and indexes are listed with their
// custom metadata, the role fetched under the name the repository keeps it by, and kept
// in the phone's cache for the next run.
func TestTargetsFirmware(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent snapshots %v", consistent), func(t *testing.T) {
			k := withReleases(t, consistent)
			c := k.client(t)
			got, err := c.Targets("firmware/")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"firmware/sim_3.bidx", "firmware/sim_3.img", "firmware/sim_5.bidx", "firmware/sim_5.img", "firmware/sim_7.bidx", "firmware/sim_7.img"}
			if !slices.Equal(names(got), want) {
				t.Fatalf("got %q, want %q", names(got), want)
			}
			var images []release.Target
			for _, tg := range got {
				var v int
				if _, err := fmt.Sscanf(tg.Name[len("firmware/sim_"):], "%d", &v); err != nil {
					t.Fatal(err)
				}
				var gotCustom, wantCustom any
				if strings.HasSuffix(tg.Name, ".img") {
					b, _ := json.Marshal(releaseOf("sim", v))
					json.Unmarshal(b, &wantCustom)
					images = append(images, release.Target{Name: tg.Name, Custom: tg.Custom})
				}
				if tg.Custom != nil {
					if err := json.Unmarshal(tg.Custom, &gotCustom); err != nil {
						t.Fatal(err)
					}
				}
				if !reflect.DeepEqual(gotCustom, wantCustom) {
					t.Fatalf("%s: custom %s, want %v", tg.Name, tg.Custom, wantCustom)
				}
				if tg.Role != "firmware" || !tg.Expires.Equal(k.Expires) || len(tg.Hashes["sha256"]) != 32 || tg.Length == 0 {
					t.Fatalf("%s: %+v", tg.Name, tg)
				}
			}
			sameAsTarget(t, c, got)
			// What the phone does with the list: the newest release it may take.
			if ch := release.Pick(release.Phone{DeviceID: "phone-1", Hardware: "sim", Committed: 3}, images); ch.Target != "firmware/sim_7.img" || len(ch.Skipped) != 2 {
				t.Fatalf("picked %q, skipped %v", ch.Target, ch.Skipped)
			}
			path := k.MetadataPath("firmware", k.Roles["firmware"].Signed.Version)
			if n := count(k.Requests(), path); n != 1 {
				t.Fatalf("the firmware role was asked for as %s %d times: %q", path, n, k.Requests())
			}
			for _, role := range []string{"registry", "facility-a", "facility-b"} {
				if p := k.MetadataPath(role, k.Roles[role].Signed.Version); slices.Contains(k.Requests(), p) {
					t.Fatalf("%s was asked for, though not delegated firmware/*", p)
				}
			}
			// The next run finds the role in its cache.
			again, err := k.client(t).Targets("firmware/")
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("from the cache: %q, %v", names(again), err)
			}
			if n := count(k.Requests(), path); n != 1 {
				t.Fatalf("the cached firmware role was asked for again")
			}
			// A prefix need not end in "/".
			if short, err := c.Targets("firmware"); err != nil || !reflect.DeepEqual(short, got) {
				t.Fatalf("firmware: %q, %v", names(short), err)
			}
			if one, err := c.Targets("firmware/sim_7."); err != nil || !slices.Equal(names(one), want[4:]) {
				t.Fatalf("firmware/sim_7.: %q, %v", names(one), err)
			}
			// Another role's prefix: the registry role's two.
			reg, err := c.Targets("registry")
			if err != nil || !slices.Equal(names(reg), []string{"registry-delta/0-1.delta", "registry.reg"}) || reg[1].Role != "registry" {
				t.Fatalf("registry: %q, %v", names(reg), err)
			}
			sameAsTarget(t, c, reg)
		})
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestTargetsNotDelegated: a name comes only from a role delegated it, and from the first
// role the lookup of that name consults.
func TestTargetsNotDelegated(t *testing.T) {
	k := withReleases(t, true)
	// A facility lists firmware: its role is delegated policy/a.json only.
	k.AddTarget("facility-a", "firmware/sim_9.img", []byte("facility's image"), releaseOf("sim", 9))
	// The firmware role delegates beta images to a role that also lists others.
	beta := tuftest.NewKey(t)
	k.Delegate("firmware", "beta", []tuftest.Key{beta}, 1, false, "firmware/beta-*")
	k.AddTarget("beta", "firmware/beta-sim_8.img", []byte("beta image"), releaseOf("beta-sim", 8))
	k.AddTarget("beta", "firmware/sim_8.img", []byte("beta lists a release"), releaseOf("sim", 8))
	k.AddTarget("beta", "firmware/beta-sim_3.img", []byte("beta's"), nil)
	k.AddTarget("firmware", "firmware/beta-sim_3.img", []byte("firmware's"), releaseOf("beta-sim", 3))
	// After the terminating firmware/* delegation, another role for firmware/* is never
	// consulted: not even fetched, though its keys sign nothing valid.
	k.Delegate(metadata.TARGETS, "shadow", []tuftest.Key{tuftest.NewKey(t)}, 1, true, "firmware/*")
	k.AddTarget("shadow", "firmware/sim_99.img", []byte("shadowed"), releaseOf("sim", 99))
	k.Signers["shadow"] = nil
	k.Publish()
	c := k.client(t)
	got, err := c.Targets("firmware/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"firmware/beta-sim_3.img", "firmware/beta-sim_8.img", "firmware/sim_3.bidx", "firmware/sim_3.img",
		"firmware/sim_5.bidx", "firmware/sim_5.img", "firmware/sim_7.bidx", "firmware/sim_7.img"}
	if !slices.Equal(names(got), want) {
		t.Fatalf("got %q, want %q", names(got), want)
	}
	if got[0].Role != "firmware" || got[1].Role != "beta" {
		t.Fatalf("beta-sim_3 from %s, beta-sim_8 from %s", got[0].Role, got[1].Role)
	}
	sameAsTarget(t, c, got, "firmware/sim_9.img", "firmware/sim_8.img", "firmware/sim_99.img")
	for _, role := range []string{"facility-a", "shadow"} {
		if p := k.MetadataPath(role, k.Roles[role].Signed.Version); slices.Contains(k.Requests(), p) {
			t.Fatalf("%s was asked for", p)
		}
	}
}

// TestTargetsTopLevel: with TopLevelOnlyDelegates, a firmware image the vendor's targets
// key lists itself refuses the list, as Target refuses the name; without, it is listed
// from the top-level role, which TUF consults first.
func TestTargetsTopLevel(t *testing.T) {
	k := withReleases(t, true)
	k.AddTarget(metadata.TARGETS, "firmware/sim_9.img", []byte("vendor's image"), releaseOf("sim", 9))
	k.Publish()
	got, err := k.client(t).Targets("firmware/")
	if !errors.Is(err, ErrTopLevelTarget) || !strings.Contains(err.Error(), "firmware/sim_9.img is signed by the top-level targets role") || got != nil {
		t.Fatalf("got %q, %v", names(got), err)
	}
	// Names under other prefixes are not its concern.
	if reg, err := k.client(t).Targets("registry"); err != nil || len(reg) != 2 {
		t.Fatalf("registry: %q, %v", names(reg), err)
	}
	k.topLevelOnly = false
	c := k.client(t)
	got, err = c.Targets("firmware/")
	if err != nil || len(got) != 7 || got[len(got)-1].Name != "firmware/sim_9.img" || got[len(got)-1].Role != metadata.TARGETS {
		t.Fatalf("without TopLevelOnlyDelegates: %q, %v", names(got), err)
	}
	sameAsTarget(t, c, got)
}

// TestTargetsRefused: a role that does not verify, a loop, too long a chain and an unsafe
// role name refuse the whole list, naming what went wrong.
func TestTargetsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attack func(k *keepers)
		role   string // the role a *RoleError names ("" if none)
		want   error
		says   string
	}{
		{"threshold not met: one release key of two", func(k *keepers) {
			k.AddTarget("firmware", "firmware/sim_9.img", []byte("evil"), releaseOf("sim", 9))
			k.Signers["firmware"] = k.Signers["firmware"][:1]
			k.Publish()
		}, "firmware", &metadata.ErrUnsignedMetadata{}, "firmware/*: delegated role firmware (delegated by targets): 1 of 2 required signatures"},
		{"a delegated role below threshold", func(k *keepers) {
			key := tuftest.NewKey(t)
			k.Delegate("firmware", "beta", []tuftest.Key{key, tuftest.NewKey(t)}, 2, false, "firmware/beta-*")
			k.AddTarget("beta", "firmware/beta-sim_9.img", []byte("beta"), nil)
			k.Signers["beta"] = []tuftest.Key{key}
			k.Publish()
		}, "beta", &metadata.ErrUnsignedMetadata{}, "delegated role beta (delegated by firmware): 1 of 2 required signatures"},
		{"delegation loop", func(k *keepers) {
			k.Delegate("firmware", "firmware-2", []tuftest.Key{tuftest.NewKey(t)}, 1, false, "firmware/*")
			k.Delegate("firmware-2", "firmware", k.Signers["firmware"], 2, false, "firmware/*")
			k.Publish()
		}, "", ErrDelegationLoop, "targets -> firmware -> firmware-2 -> firmware"},
		{"delegation chain deeper than the cap", func(k *keepers) {
			parent := "firmware"
			for i := range MaxRoles {
				role := fmt.Sprintf("firmware-%d", i)
				k.Delegate(parent, role, []tuftest.Key{tuftest.NewKey(t)}, 1, false, "firmware/*")
				parent = role
			}
			k.Publish()
		}, "", ErrTooManyRoles, "more than 8"},
		{"unsafe role name", func(k *keepers) {
			k.Delegate("firmware", "../registry", []tuftest.Key{tuftest.NewKey(t)}, 1, false, "firmware/*")
			k.Publish()
		}, "../registry", ErrRoleName, `"../registry" contains ".."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := withReleases(t, true)
			before, err := k.client(t).Targets("firmware/")
			if err != nil || len(before) != 6 {
				t.Fatalf("before: %q, %v", names(before), err)
			}
			tc.attack(k)
			got, err := k.client(t).Targets("firmware/")
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || got != nil {
				t.Fatalf("got %q, err = %v; want %v saying %q", names(got), err, tc.want, tc.says)
			}
			var re *RoleError
			if tc.role != "" && (!errors.As(err, &re) || re.Role != tc.role || re.Target != "firmware/*") {
				t.Fatalf("err = %v: does not name role %s", err, tc.role)
			}
			t.Logf("refused: %v", err)
			if tc.role == "firmware" {
				// The firmware role trusted before is still the phone's.
				cached, err := metadata.Targets().FromFile(filepath.Join(k.dir, "firmware.json"))
				if err != nil || cached.Signed.Targets["firmware/sim_9.img"] != nil || len(cached.Signed.Targets) != 6 {
					t.Fatalf("cached firmware role changed: %v", err)
				}
			}
			if errors.Is(tc.want, ErrRoleName) {
				if p := k.MetadataPath(tc.role, k.Roles[tc.role].Signed.Version); slices.Contains(k.Requests(), p) {
					t.Fatalf("%s was asked for", p)
				}
			}
		})
	}
}

// TestTargetsNone: no role is delegated the prefix: an empty list, and no delegated role
// fetched.
func TestTargetsNone(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent snapshots %v", consistent), func(t *testing.T) {
			k := withReleases(t, consistent)
			for _, prefix := range []string{"kernel/", "policy/c", "firmware/sim_3.img/"} {
				if got, err := k.client(t).Targets(prefix); err != nil || len(got) != 0 {
					t.Fatalf("%s: %q, %v", prefix, names(got), err)
				}
			}
			for role, md := range k.Roles {
				if p := k.MetadataPath(role, md.Signed.Version); role != metadata.TARGETS && slices.Contains(k.Requests(), p) {
					t.Fatalf("%s was asked for", p)
				}
			}
		})
	}
}
