// Package firmware is the vendor's side of firmware over the air: it puts a firmware image
// and its block index into the repository as targets of the firmware role, with the signed
// custom metadata of package firmware/release that phones read. wallphonectl firmware
// publish and the demo use it.
//
// It serves promise 6 (nothing unsigned runs; rollback refused): the targets go into the
// firmware role's pending metadata, which only the vendor's release keys sign (tufrepo);
// versions of a board only go up; and nothing is published that phones would refuse (the
// metadata passes release.Validate, and the index is built from the very bytes published).
// It is the back office's: the phone never links it.
package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/wallphone/wallphone/backoffice/tufrepo"
	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/release"
)

// Errors.
var (
	// ErrNotNewer: the version is not above every version of the board published or
	// pending: versions only go up.
	ErrNotNewer = errors.New("firmware: versions only go up")
	// ErrEmptyImage: the image has no bytes.
	ErrEmptyImage = errors.New("firmware: empty image")
	// ErrImageChanged: the image changed between building its index and copying it into
	// the repository; nothing is published.
	ErrImageChanged = errors.New("firmware: the image changed while it was being published")
)

// Release is a firmware release to publish.
type Release struct {
	Image    string // the image file
	Hardware string
	Version  uint64
	// MinVersion is the lowest committed version it may be installed over (0: any); Floor
	// the anti-rollback floor it raises (0: none); Rollout the percentage of phones that
	// take it, 1 to 100 (release, "Rollout").
	MinVersion, Floor uint64
	Rollout           int
}

// Added is what Add put into the firmware role's pending metadata.
type Added struct {
	Release     release.Release // the image target's custom metadata
	ImageLength int64
	IndexLength int64
	Blocks      int64
}

// Add puts rel's image and its block index (4 KiB blocks) into the next metadata of the
// firmware role; the caller commits (tufrepo.Repo.Commit), with the release keys if it has
// enough of them, or leaves it to be signed with repo sign. The repository must delegate
// the firmware role (tufrepo.ErrNoRole otherwise): firmware is never signed by the
// top-level targets key.
func Add(r *tufrepo.Repo, rel Release) (Added, error) {
	c := release.Release{Version: rel.Version, Hardware: rel.Hardware, MinVersion: rel.MinVersion, Floor: rel.Floor,
		Index: release.IndexTarget(rel.Hardware, rel.Version), IndexSHA256: hex.EncodeToString(make([]byte, sha256.Size)),
		Rollout: rel.Rollout}
	if err := c.Validate(); err != nil {
		return Added{}, err
	}
	if _, ok := role(r); !ok {
		return Added{}, fmt.Errorf("%w: %s: delegate it first (repo delegate --role %s --paths '%s*')", tufrepo.ErrNoRole,
			tufrepo.FirmwareRole, tufrepo.FirmwareRole, release.Prefix)
	}
	if top := Highest(r, rel.Hardware); rel.Version <= top {
		return Added{}, fmt.Errorf("%w: %s version %d: the repository already has version %d", ErrNotNewer, rel.Hardware, rel.Version, top)
	}
	idx, index, err := buildIndex(rel.Image)
	if err != nil {
		return Added{}, err
	}
	sum := sha256.Sum256(index)
	c.IndexSHA256 = hex.EncodeToString(sum[:])
	tmp, err := os.CreateTemp("", "wallphone-bidx-*")
	if err != nil {
		return Added{}, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(index)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Added{}, err
	}
	imageName, indexName := release.ImageTarget(rel.Hardware, rel.Version), c.Index
	if err := r.AddTarget(indexName, tmp.Name(), nil); err != nil {
		return Added{}, err
	}
	if err := r.AddTarget(imageName, rel.Image, c); err != nil {
		return Added{}, err
	}
	// The image is read twice, to index it and to copy it: the copy is what phones get, so
	// it must be the bytes indexed.
	ri, _ := role(r)
	if ri.Pending == nil || ri.Pending.Targets[imageName] == nil {
		return Added{}, fmt.Errorf("firmware: %s did not land in the %s role: another delegation covers it", imageName, tufrepo.FirmwareRole)
	}
	t := ri.Pending.Targets[imageName]
	if s := idx.Sum(); t.Length != idx.Len() || !bytes.Equal(t.Hashes["sha256"], s[:]) {
		return Added{}, fmt.Errorf("%w: %s", ErrImageChanged, rel.Image)
	}
	return Added{Release: c, ImageLength: idx.Len(), IndexLength: int64(len(index)), Blocks: idx.Blocks()}, nil
}

func buildIndex(image string) (*blockindex.Index, []byte, error) {
	f, err := os.Open(image)
	if err != nil {
		return nil, nil, fmt.Errorf("firmware: %w", err)
	}
	defer f.Close()
	idx, err := blockindex.Build(f, blockindex.DefaultBlockSize)
	if errors.Is(err, blockindex.ErrEmpty) {
		return nil, nil, fmt.Errorf("%w: %s", ErrEmptyImage, image)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("firmware: %s: %w", image, err)
	}
	var b bytes.Buffer
	if _, err := idx.WriteTo(&b); err != nil {
		return nil, nil, err
	}
	return idx, b.Bytes(), nil
}

// role is the firmware role as the repository delegates it, if it does.
func role(r *tufrepo.Repo) (tufrepo.RoleInfo, bool) {
	for _, ri := range r.Roles() {
		if ri.Name == tufrepo.FirmwareRole {
			return ri, true
		}
	}
	return tufrepo.RoleInfo{}, false
}

// Highest is the highest version of hw's firmware the firmware role has published or has
// pending, 0 if none: a pending release counts, for it is published once signed.
func Highest(r *tufrepo.Repo, hw string) uint64 {
	ri, ok := role(r)
	if !ok {
		return 0
	}
	var top uint64
	consider := func(n string) {
		if h, v, err := release.ParseImageTarget(n); err == nil && h == hw {
			top = max(top, v)
		}
	}
	for n := range ri.Published {
		consider(n)
	}
	if ri.Pending != nil {
		for n := range ri.Pending.Targets {
			consider(n)
		}
	}
	return top
}
