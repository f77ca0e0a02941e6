package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/updates"
)

// The vendor's side of the demo, for tests: publish new versions into the demo repository
// that a simulated phone's first run made, signed with the demo's keys.

func demoRepo(t *testing.T, keys string) (*tufrepo.Repo, tufrepo.Signers) {
	t.Helper()
	_, signers, err := demoRoleKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tufrepo.Open(filepath.Join(keys, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return r, signers
}

// publishDemoRegistry publishes registry version ver: the previous version plus added, less
// removed (listed as removals), with a delta from the previous version.
func publishDemoRegistry(t *testing.T, keys string, ver uint64, added, removed []registry.Item) {
	t.Helper()
	prevFile := filepath.Join(keys, fmt.Sprintf("registry-%d.reg", ver-1))
	prev, err := registry.Open(prevFile)
	if err != nil {
		t.Fatal(err)
	}
	defer prev.Close()
	var items []registry.Item
	for _, e := range registry.Demo().Entries {
		items = append(items, registry.Item{Number: e.Number, Prefix: e.Prefix, Kind: registry.Kind(e.Kind), Label: e.Label})
	}
	items = append(items, added...)
	var keep []registry.Item
	for _, it := range items {
		gone := false
		for _, r := range removed {
			gone = gone || (r.Number == it.Number && r.Prefix == it.Prefix)
		}
		if !gone {
			keep = append(keep, it)
		}
	}
	var buf bytes.Buffer
	if err := registry.Build(&buf, ver, keep, prev, removed); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(keys, fmt.Sprintf("registry-%d.reg", ver))
	os.WriteFile(file, buf.Bytes(), 0o600)
	next, err := registry.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	var delta bytes.Buffer
	if err := registry.WriteDelta(&delta, prev, next); err != nil {
		t.Fatal(err)
	}
	deltaFile := file + ".delta"
	os.WriteFile(deltaFile, delta.Bytes(), 0o600)
	r, signers := demoRepo(t, keys)
	if err := r.AddTarget(updates.RegistryTarget, file, updates.Custom{Version: ver}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget(updates.DeltaTarget(ver-1, ver), deltaFile, updates.Custom{Version: ver}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(signers, demoExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// publishDemoPolicy publishes the demo policy with its version set to ver and the given
// replacements made to its text.
func publishDemoPolicy(t *testing.T, keys string, ver int, replace ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(keys, "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `"version": 1,`, fmt.Sprintf(`"version": %d,`, ver), 1)
	s = strings.NewReplacer(replace...).Replace(s)
	file := filepath.Join(keys, fmt.Sprintf("policy-%d.json", ver))
	os.WriteFile(file, []byte(s), 0o600)
	r, signers := demoRepo(t, keys)
	if err := r.AddTarget(updates.PolicyTarget("demo-county"), file, updates.Custom{Version: uint64(ver)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(signers, demoExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
}
