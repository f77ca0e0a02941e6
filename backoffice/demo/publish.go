package demo

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wallphone/wallphone/backoffice/firmware"
	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/updates"
)

// The vendor's next moves in a demo facility: new versions of the registry, the policy and
// the firmware, signed with the demo's keys, for the tests that watch a phone take them up.

// Repo opens a demo facility's repository with the keys that sign it: the vendor's, two of
// the three keepers', the facility's and the release key.
func Repo(dir string) (*tufrepo.Repo, tufrepo.Signers, error) {
	_, signers, err := roleKeys(dir)
	if err != nil {
		return nil, nil, err
	}
	delegated, err := delegatedKeys(dir)
	if err != nil {
		return nil, nil, err
	}
	for role, p := range delegated {
		signers[role] = p.signers
	}
	r, err := tufrepo.Open(filepath.Join(dir, "repo"))
	if err != nil {
		return nil, nil, err
	}
	return r, signers, nil
}

// PublishRegistry publishes registry version ver: the demo registry plus added, less removed
// (listed as removals, as the phones require), with a delta from version ver-1, which must
// be in dir as registry-<ver-1>.reg.
func PublishRegistry(dir string, ver uint64, added, removed []registry.Item) error {
	prevFile := filepath.Join(dir, fmt.Sprintf("registry-%d.reg", ver-1))
	prev, err := registry.Open(prevFile)
	if err != nil {
		return err
	}
	defer prev.Close()
	var keep []registry.Item
	for _, it := range append(Items(), added...) {
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
		return err
	}
	file := filepath.Join(dir, fmt.Sprintf("registry-%d.reg", ver))
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		return err
	}
	next, err := registry.Open(file)
	if err != nil {
		return err
	}
	defer next.Close()
	var delta bytes.Buffer
	if err := registry.WriteDelta(&delta, prev, next); err != nil {
		return err
	}
	deltaFile := file + ".delta"
	if err := os.WriteFile(deltaFile, delta.Bytes(), 0o600); err != nil {
		return err
	}
	r, signers, err := Repo(dir)
	if err != nil {
		return err
	}
	if err := r.AddTarget(updates.RegistryTarget, file, updates.Custom{Version: ver}); err != nil {
		return err
	}
	if err := r.AddTarget(updates.DeltaTarget(ver-1, ver), deltaFile, updates.Custom{Version: ver}); err != nil {
		return err
	}
	return r.Commit(signers, Expiry, time.Now())
}

// PublishPolicy publishes the demo policy with its version set to ver and the given
// replacements (old, new, ...) made to its text.
func PublishPolicy(dir string, ver int, replace ...string) error {
	b, err := os.ReadFile(filepath.Join(dir, "policy.json"))
	if err != nil {
		return err
	}
	s := strings.Replace(string(b), `"version": 1,`, fmt.Sprintf(`"version": %d,`, ver), 1)
	s = strings.NewReplacer(replace...).Replace(s)
	file := filepath.Join(dir, fmt.Sprintf("policy-%d.json", ver))
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		return err
	}
	r, signers, err := Repo(dir)
	if err != nil {
		return err
	}
	if err := r.AddTarget(updates.PolicyTarget(Facility), file, updates.Custom{Version: uint64(ver)}); err != nil {
		return err
	}
	return r.Commit(signers, Expiry, time.Now())
}

// Firmware is how a demo firmware release is rolled out; the zero value is a release for
// every phone, over any version, raising no floor.
type Firmware struct {
	MinVersion, Floor uint64
	Rollout           int // 0: 100
}

// PublishFirmware publishes the image file as version ver of the firmware for hardware hw,
// with its block index, signed by the demo's release key.
func PublishFirmware(dir, hw string, ver uint64, image string, f Firmware) error {
	if f.Rollout == 0 {
		f.Rollout = 100
	}
	r, signers, err := Repo(dir)
	if err != nil {
		return err
	}
	if _, err := firmware.Add(r, firmware.Release{Image: image, Hardware: hw, Version: ver,
		MinVersion: f.MinVersion, Floor: f.Floor, Rollout: f.Rollout}); err != nil {
		return err
	}
	return r.Commit(signers, Expiry, time.Now())
}
