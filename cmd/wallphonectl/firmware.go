package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/backoffice/firmware"
	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/release"
	"github.com/wallphone/wallphone/identity"
)

const firmwareUsage = `
  wallphonectl firmware publish --repo DIR --image IMG --version V --hardware HW [--min-version M] [--floor F]
                         [--rollout PERCENT] [--key RELEASE.pem]... [--snapshot-key F --timestamp-key F]
                                   add a firmware image and its block index to the firmware role
                                   (firmware/HW_V.img, firmware/HW_V.bidx): V above every version of HW
                                   published, M (lowest version it installs over) and F (the anti-rollback
                                   floor it raises) at most V, PERCENT of phones (100); signed with the
                                   release keys given, published at once if they meet the role's threshold
                                   and the online keys are given, else left for repo sign and repo commit`

// firmwareCmd is wallphonectl firmware: the vendor's side of firmware over the air.
func firmwareCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "publish" {
		return fmt.Errorf("%w: firmware: want publish", errUsage)
	}
	fs := newFlags("firmware publish")
	dir := fs.String("repo", "", "")
	image := fs.String("image", "", "")
	hw := fs.String("hardware", "", "")
	var rel firmware.Release
	fs.Uint64Var(&rel.Version, "version", 0, "")
	fs.Uint64Var(&rel.MinVersion, "min-version", 0, "")
	fs.Uint64Var(&rel.Floor, "floor", 0, "")
	fs.IntVar(&rel.Rollout, "rollout", 100, "")
	rf := addKeyFlags(fs, tufrepo.Snapshot, tufrepo.Timestamp)
	keys := &multi{}
	fs.Var(keys, "key", "")
	rf.keys[tufrepo.FirmwareRole] = keys
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *dir == "" || *image == "" || *hw == "" || !set["version"] {
		return fmt.Errorf("%w: firmware publish: --repo, --image, --version and --hardware are required", errUsage)
	}
	rel.Image, rel.Hardware = *image, *hw
	r, s, e, err := openRepo(*dir, rf)
	if err != nil {
		return err
	}
	if err := checkReleaseKeys(r, s[tufrepo.FirmwareRole]); err != nil {
		return err
	}
	a, err := firmware.Add(r, rel)
	if err != nil {
		return err
	}
	c := a.Release
	fmt.Fprintf(stdout, "prepared:\n  firmware %s version %d: %d bytes, %d blocks of %d bytes; index %s (%d bytes); min version %d, floor %d, rollout %d%%\n",
		c.Hardware, c.Version, a.ImageLength, a.Blocks, blockindex.DefaultBlockSize, c.Index, a.IndexLength, c.MinVersion, c.Floor, c.Rollout)
	before := viewOf(r)
	if len(s[tufrepo.Snapshot]) > 0 && len(s[tufrepo.Timestamp]) > 0 {
		err = r.Commit(s, e, time.Now())
	} else {
		// Without the online keys nothing can be published: the role's next metadata goes
		// to pending/ unsigned, then the release keys sign it there, for repo commit.
		err = r.Commit(tufrepo.Signers{}, e, time.Now())
		if err == nil && len(s[tufrepo.FirmwareRole]) > 0 {
			err = r.Sign(tufrepo.FirmwareRole, s[tufrepo.FirmwareRole])
		}
	}
	if err != nil {
		return err
	}
	reportCommit(*dir, before, r, stdout)
	return nil
}

// checkReleaseKeys refuses a key the firmware role does not list, before anything is copied
// into the repository.
func checkReleaseKeys(r *tufrepo.Repo, keys []ed25519.PrivateKey) error {
	var listed []ed25519.PublicKey
	for _, ri := range r.Roles() {
		if ri.Name == tufrepo.FirmwareRole {
			listed = ri.Keys
		}
	}
	for _, k := range keys {
		if !slices.ContainsFunc(listed, func(pub ed25519.PublicKey) bool { return pub.Equal(k.Public()) }) {
			return fmt.Errorf("%w: %s is not a %s key of this repository", tufrepo.ErrNotRoleKey,
				identity.Fingerprint(k.Public().(ed25519.PublicKey)), tufrepo.FirmwareRole)
		}
	}
	return nil
}

// describeTarget is the last column of a target in repo list: a firmware image's release,
// else the custom metadata as it is.
func describeTarget(name string, t *metadata.TargetFiles) string {
	if t.Custom == nil {
		return ""
	}
	if c, err := release.Parse(name, *t.Custom); err == nil {
		return fmt.Sprintf("firmware %s version %d, min version %d, floor %d, rollout %d%%", c.Hardware, c.Version, c.MinVersion, c.Floor, c.Rollout)
	}
	var b bytes.Buffer
	if json.Compact(&b, *t.Custom) != nil {
		return ""
	}
	return b.String()
}
