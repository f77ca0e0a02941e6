package demo

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/updates"
)

// The demo facility is signed as a real one: the registry by two of its three keepers, the
// policy by the facility, firmware by the vendor's release key; the vendor's targets key
// only delegates (and, until the phones walk delegations, keeps top-level copies).
func TestDemoDelegates(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := PublishRegistry(dir, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := PublishPolicy(dir, 2); err != nil {
		t.Fatal(err)
	}
	r, _, err := Repo(dir)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]tufrepo.RoleInfo{}
	for _, ri := range r.Roles() {
		roles[ri.Name] = ri
		if ri.Pending != nil || r.DelegationPending() {
			t.Errorf("%s left pending", ri.Name)
		}
	}
	want := []struct {
		role          string
		keys, thr     int
		target        string
		targetVersion int
	}{
		{tufrepo.RegistryRole, 3, 2, updates.RegistryTarget, 2},
		{tufrepo.PolicyRole(Facility), 1, 1, updates.PolicyTarget(Facility), 2},
		{tufrepo.FirmwareRole, 1, 1, "", 0},
	}
	top, err := metadata.Targets().FromFile(filepath.Join(dir, "repo", "metadata", fmt.Sprintf("%d.targets.json", r.TargetsVersion())))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		ri := roles[w.role]
		if len(ri.Keys) != w.keys || ri.Threshold != w.thr || ri.Version == 0 {
			t.Fatalf("%s: %d keys, threshold %d, version %d", w.role, len(ri.Keys), ri.Threshold, ri.Version)
		}
		m, err := metadata.Targets().FromFile(filepath.Join(dir, "repo", "metadata", fmt.Sprintf("%d.%s.json", ri.Version, w.role)))
		if err != nil {
			t.Fatal(err)
		}
		if err := top.VerifyDelegate(w.role, m); err != nil {
			t.Fatalf("%s: %v", w.role, err)
		}
		if len(m.Signatures) != w.thr {
			t.Errorf("%s: %d signatures", w.role, len(m.Signatures))
		}
		if w.target != "" && (ri.Published[w.target] == nil || r.Target(w.target) == nil) {
			t.Errorf("%s lacks %s", w.role, w.target)
		}
	}
	// The vendor's targets key is no keeper's.
	_, signers, err := Repo(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range roles[tufrepo.RegistryRole].Keys {
		if k.Equal(signers[tufrepo.Targets][0].Public()) {
			t.Fatal("the vendor's targets key is a keeper's")
		}
	}
}
