package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/tufclient/tuftest"
	"github.com/wallphone/wallphone/updates"
)

// TestWhoSignsWhat is issue 15 on the real agent: its registry is the keepers' (three, two
// to sign) and its policy the facility's, from a repository over HTTP. The vendor's own
// targets key signing a shrunk registry, and one keeper alone, are each refused with
// update_error naming why, and the registry in force stays; the keepers' threshold installs.
func TestWhoSignsWhat(t *testing.T) {
	data, keys := enrolled(t)
	repo := tuftest.New(t, true)
	var keepers []tuftest.Key
	for range 3 {
		keepers = append(keepers, tuftest.NewKey(t))
	}
	repo.Delegate(metadata.TARGETS, "registry", keepers, 2, true, updates.RegistryTarget, "registry-delta/*")
	repo.Signers["registry"] = keepers[:2]
	fac := tuftest.NewKey(t)
	repo.Delegate(metadata.TARGETS, "policy-"+demo.Facility, []tuftest.Key{fac}, 1, true, updates.PolicyTarget(demo.Facility))
	pol, err := os.ReadFile(filepath.Join(keys, "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	repo.AddTarget("policy-"+demo.Facility, updates.PolicyTarget(demo.Facility), pol, updates.Custom{Version: 1})
	var v1 *registry.Set
	build := func(v uint64, items []registry.Item, removed ...registry.Item) []byte {
		var b bytes.Buffer
		if err := registry.Build(&b, v, items, v1, removed); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	first := build(1, demo.Items())
	v1file := filepath.Join(t.TempDir(), "v1.reg")
	os.WriteFile(v1file, first, 0o600)
	if v1, err = registry.Open(v1file); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v1.Close() })
	repo.AddTarget("registry", updates.RegistryTarget, first, updates.Custom{Version: 1})
	repo.Publish()
	os.WriteFile(filepath.Join(data, "conf", "root.json"), repo.RootJSON(), 0o600)
	os.WriteFile(filepath.Join(data, "conf", "repository.json"), tufclient.Repository{URL: repo.Srv.URL}.Marshal(), 0o600)

	var log syncBuffer
	a, _ := newAgent(t, data, &log, nil)
	t.Cleanup(func() { a.Close() })
	if a.registryVersion() != 1 || a.policy == nil {
		t.Fatalf("registry %d, policy %v:\n%s", a.registryVersion(), a.policy, log.String())
	}
	refused := func(why string) {
		t.Helper()
		log.Reset()
		if a.check(context.Background()) {
			t.Fatalf("installed what it must refuse:\n%s", log.String())
		}
		if !strings.Contains(log.String(), `"event":"update_error"`) || !strings.Contains(log.String(), why) {
			t.Fatalf("no update_error saying %q:\n%s", why, log.String())
		}
		a.between(idle(true), a.clock.Now())
		if _, ok := a.registry.Lookup("+15125550100"); !ok || a.registryVersion() != 1 {
			t.Fatal("the registry in force changed")
		}
	}

	// The vendor lists, in its own targets, a registry that drops the public defender: a removal
	// written as the phones require, so only who signed it can refuse it.
	shrunk := build(2, demo.Items()[1:], demo.Items()[0])
	repo.AddTarget(metadata.TARGETS, updates.RegistryTarget, shrunk, updates.Custom{Version: 2})
	repo.Publish()
	refused("signed by the top-level targets role, which may only delegate")
	delete(repo.Roles[metadata.TARGETS].Signed.Targets, updates.RegistryTarget)

	// One keeper alone signs version 2.
	repo.AddTarget("registry", updates.RegistryTarget, build(2, append(demo.Items(), registry.Item{Number: "+15125550150", Kind: registry.Consulate})), updates.Custom{Version: 2})
	repo.Signers["registry"] = keepers[:1]
	repo.Publish()
	refused("delegated role registry")

	// Two keepers: installed.
	repo.Signers["registry"] = keepers[1:]
	repo.Publish()
	log.Reset()
	if !a.check(context.Background()) {
		t.Fatalf("the keepers' registry was not installed:\n%s", log.String())
	}
	a.installed <- struct{}{}
	a.between(idle(true), a.clock.Now())
	if _, ok := a.registry.Lookup("+15125550150"); !ok || a.registryVersion() != 2 {
		t.Fatalf("registry %d in force:\n%s", a.registryVersion(), log.String())
	}
}
