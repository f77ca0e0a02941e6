// Package release is the contract between the vendor, who publishes firmware, and the phone,
// which installs it: how firmware targets are named in the repository, what the image
// target's signed custom metadata says, and which published release a phone takes. Both
// sides import it, so they cannot disagree; it is pure Go with no dependency beyond the
// standard library and internal/strictjson, so that the phone links it.
//
// It serves promise 6 (nothing unsigned runs; rollback refused): the custom metadata is
// signed by the vendor's release keys (the repository's firmware role), is read strictly
// (an unknown or repeated field is an error, never dropped), and [Pick] never chooses a
// release below the committed version or below a signed floor.
//
// # Targets
//
// TUF path patterns do not let "*" cross a "/", so the firmware role's "firmware/*" covers
// flat names only:
//
//	firmware/<hardware>_<version>.img   the image
//	firmware/<hardware>_<version>.bidx  its block index (package firmware/blockindex)
//
// <hardware> matches [a-z0-9][a-z0-9-]{0,31} (no "_", so the name splits one way only);
// <version> is a decimal build number of at least 1, without leading zeros.
//
// # Custom metadata of the image target
//
//	{"version": 7, "hardware": "sim", "min_version": 3, "floor": 5,
//	 "index": "firmware/sim_7.bidx", "index_sha256": "<64 lowercase hex>", "rollout": 100}
//
// Every field is required. version and hardware equal the target name's; min_version (the
// lowest committed version it may be installed over, 0 for any) and floor (the anti-rollback
// floor it raises, 0 for none) are at most version; index is IndexTarget(hardware, version)
// and index_sha256 the SHA-256 of its bytes (the index target has its own signed hashes too:
// the phone checks both); rollout, from 1 to 100, is the percentage of phones that take it.
//
// # Rollout
//
// A phone is in a release's rollout when
//
//	binary.BigEndian.Uint64(SHA-256(device_id || uint64be(version))[:8]) % 100 < rollout
//
// with device_id the phone's device id as bytes. The version is hashed with the id so that
// each release reaches a different first share of phones; for one version the share only
// grows with rollout, so a wider rollout keeps the phones that already have it.
package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/wallphone/wallphone/internal/strictjson"
)

// Prefix is the folder of every firmware target: the firmware role's paths are Prefix+"*".
const Prefix = "firmware/"

const (
	imageSuffix = ".img"
	indexSuffix = ".bidx"
	maxHardware = 32
)

// Errors of names and metadata.
var (
	// ErrHardware: a hardware name that does not match [a-z0-9][a-z0-9-]{0,31}.
	ErrHardware = errors.New("release: bad hardware name")
	// ErrVersion: a version of 0, or not the canonical decimal of a build number.
	ErrVersion = errors.New("release: bad version")
	// ErrName: a target name that is not an image target's.
	ErrName = errors.New("release: not a firmware image target")
	// ErrMetadata: custom metadata that does not parse, lacks or repeats a field, has one it
	// does not know, or whose fields disagree with each other or with the target's name.
	ErrMetadata = errors.New("release: bad custom metadata")
)

// Reasons Pick passes a release over, in Choice.Skipped.
var (
	// ErrOtherHardware: the release is for another board.
	ErrOtherHardware = errors.New("release: for other hardware")
	// ErrNotNewer: the release is not above the committed version.
	ErrNotNewer = errors.New("release: not newer than the committed version")
	// ErrBelowFloor: the release is below the highest floor the phone has seen.
	ErrBelowFloor = errors.New("release: below the anti-rollback floor")
	// ErrMinVersion: the committed version is below the release's min_version.
	ErrMinVersion = errors.New("release: committed version below its min_version")
	// ErrFailed: the release failed on this phone before; only a newer one is tried.
	ErrFailed = errors.New("release: failed on this phone before")
	// ErrNotInRollout: the phone is outside the release's rollout share.
	ErrNotInRollout = errors.New("release: phone not in its rollout")
	// ErrSuperseded: the release is eligible, but a newer eligible one was chosen.
	ErrSuperseded = errors.New("release: a newer release was chosen")
)

// Release is the image target's custom metadata.
type Release struct {
	Version     uint64 `json:"version"`
	Hardware    string `json:"hardware"`
	MinVersion  uint64 `json:"min_version"`
	Floor       uint64 `json:"floor"`
	Index       string `json:"index"`
	IndexSHA256 string `json:"index_sha256"`
	Rollout     int    `json:"rollout"`
}

// CheckHardware returns an error wrapping ErrHardware unless hw can name a board.
func CheckHardware(hw string) error {
	if hw == "" || len(hw) > maxHardware || hw[0] == '-' {
		return fmt.Errorf("%w: %q", ErrHardware, hw)
	}
	for _, c := range []byte(hw) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %q", ErrHardware, hw)
		}
	}
	return nil
}

// ImageTarget is the target name of the image of version v for hardware hw.
func ImageTarget(hw string, v uint64) string { return name(hw, v) + imageSuffix }

// IndexTarget is the target name of the block index of that image.
func IndexTarget(hw string, v uint64) string { return name(hw, v) + indexSuffix }

func name(hw string, v uint64) string { return Prefix + hw + "_" + strconv.FormatUint(v, 10) }

// ParseImageTarget splits an image target's name into hardware and version. Only the
// canonical name parses (ImageTarget gives it back), so two names never mean one release.
func ParseImageTarget(target string) (hw string, v uint64, err error) {
	s, ok := strings.CutPrefix(target, Prefix)
	if ok {
		s, ok = strings.CutSuffix(s, imageSuffix)
	}
	var ver string
	if ok {
		hw, ver, ok = strings.Cut(s, "_")
	}
	if !ok {
		return "", 0, fmt.Errorf("%w: %q", ErrName, target)
	}
	if err := CheckHardware(hw); err != nil {
		return "", 0, fmt.Errorf("%w: %q: %w", ErrName, target, err)
	}
	v, err = strconv.ParseUint(ver, 10, 64)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != ver {
		return "", 0, fmt.Errorf("%w: %q: %w", ErrName, target, ErrVersion)
	}
	return hw, v, nil
}

// Validate checks the fields against each other: what the back office must never publish
// and the phone must refuse.
func (r Release) Validate() error {
	if err := CheckHardware(r.Hardware); err != nil {
		return fmt.Errorf("%w: %w", ErrMetadata, err)
	}
	if r.Version == 0 {
		return fmt.Errorf("%w: %w: 0", ErrMetadata, ErrVersion)
	}
	if r.MinVersion > r.Version {
		return fmt.Errorf("%w: min_version %d above version %d", ErrMetadata, r.MinVersion, r.Version)
	}
	if r.Floor > r.Version {
		return fmt.Errorf("%w: floor %d above version %d: the release would bar itself", ErrMetadata, r.Floor, r.Version)
	}
	if want := IndexTarget(r.Hardware, r.Version); r.Index != want {
		return fmt.Errorf("%w: index %q, want %q", ErrMetadata, r.Index, want)
	}
	if b, err := hex.DecodeString(r.IndexSHA256); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != r.IndexSHA256 {
		return fmt.Errorf("%w: index_sha256 %q is not 64 lowercase hex digits", ErrMetadata, r.IndexSHA256)
	}
	if r.Rollout < 1 || r.Rollout > 100 {
		return fmt.Errorf("%w: rollout %d, want 1 to 100", ErrMetadata, r.Rollout)
	}
	return nil
}

// Parse reads the custom metadata of image target name, strictly, and checks it against
// the name. Every error wraps ErrMetadata or ErrName.
func Parse(target string, custom []byte) (Release, error) {
	hw, v, err := ParseImageTarget(target)
	if err != nil {
		return Release{}, err
	}
	if err := checkKeys(custom); err != nil {
		return Release{}, fmt.Errorf("%w: %s: %w", ErrMetadata, target, err)
	}
	var r Release
	if err := strictjson.Decode(custom, &r); err != nil {
		return Release{}, fmt.Errorf("%w: %s: %w", ErrMetadata, target, err)
	}
	if err := r.Validate(); err != nil {
		return Release{}, fmt.Errorf("%s: %w", target, err)
	}
	if r.Hardware != hw || r.Version != v {
		return Release{}, fmt.Errorf("%w: %s says hardware %q version %d", ErrMetadata, target, r.Hardware, r.Version)
	}
	return r, nil
}

// checkKeys refuses an object that lacks a field, repeats one, or names one in another case:
// encoding/json would take a missing field as zero, the last of two, and "FLOOR" for
// "floor", and what is signed must read one way only. The fields are all scalars, so the
// object's tokens alternate key, value (a nested value fails the decoding after).
func checkKeys(b []byte) error {
	fields := []string{"version", "hardware", "min_version", "floor", "index", "index_sha256", "rollout"}
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		if !slices.Contains(fields, k) {
			return fmt.Errorf("unknown field %q", k)
		}
		if seen[k] {
			return fmt.Errorf("field %q repeated", k)
		}
		seen[k] = true
		if _, err := dec.Token(); err != nil {
			return err
		}
	}
	for _, f := range fields {
		if !seen[f] {
			return fmt.Errorf("field %q missing", f)
		}
	}
	return nil
}

// Marshal encodes r as the image target's custom metadata, after Validate.
func (r Release) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// InRollout reports whether the phone with deviceID is in the rollout share of version
// (the rule in the package documentation).
func InRollout(deviceID string, version uint64, rollout int) bool {
	h := sha256.New()
	h.Write([]byte(deviceID))
	h.Write(binary.BigEndian.AppendUint64(nil, version))
	return int(binary.BigEndian.Uint64(h.Sum(nil)[:8])%100) < rollout
}

// Phone is what a phone knows of itself when it looks for a release.
type Phone struct {
	DeviceID  string
	Hardware  string
	Committed uint64   // the version of the committed (running, healthy) firmware
	Floor     uint64   // the highest floor it has seen and kept
	Failed    []uint64 // versions that failed on it: never tried again by itself
}

// Target is one image target as the phone's verified metadata lists it.
type Target struct {
	Name   string
	Custom []byte
}

// Skip is a target Pick passed over, and why.
type Skip struct {
	Target string
	Err    error // wraps ErrName, ErrMetadata or one of Pick's reasons
}

// Choice is what Pick decided.
type Choice struct {
	// Target and Release are the release to install; Target is "" if none.
	Target  string
	Release Release
	// Floor is the highest floor of the phone's and of every valid release for its
	// hardware: what the phone keeps from now on, whether or not it installs anything. A
	// signed floor bars the versions below it even on a phone outside that release's rollout.
	Floor   uint64
	Skipped []Skip
}

// Pick chooses, from the image targets the phone's verified metadata lists, the newest
// release the phone may install: for its hardware, above its committed version, at or above
// the highest floor (its own and every release's for its hardware), with a min_version at
// most its committed version, not one that failed on it, and with the phone in its rollout.
// Targets whose name or metadata does not parse are skipped with the error. Pick is pure:
// the same input always gives the same choice.
func Pick(p Phone, targets []Target) Choice {
	c := Choice{Floor: p.Floor}
	var valid []Target
	var rels []Release
	for _, t := range targets {
		r, err := Parse(t.Name, t.Custom)
		switch {
		case err != nil:
			c.Skipped = append(c.Skipped, Skip{t.Name, err})
		case r.Hardware != p.Hardware:
			c.Skipped = append(c.Skipped, Skip{t.Name, fmt.Errorf("%w: %s, this phone is %s", ErrOtherHardware, r.Hardware, p.Hardware)})
		default:
			valid = append(valid, t)
			rels = append(rels, r)
			c.Floor = max(c.Floor, r.Floor)
		}
	}
	for i, r := range rels {
		var err error
		switch {
		case r.Version <= p.Committed:
			err = fmt.Errorf("%w: %d, committed %d", ErrNotNewer, r.Version, p.Committed)
		case r.Version < c.Floor:
			err = fmt.Errorf("%w: %d, floor %d", ErrBelowFloor, r.Version, c.Floor)
		case r.MinVersion > p.Committed:
			err = fmt.Errorf("%w: needs %d, committed %d", ErrMinVersion, r.MinVersion, p.Committed)
		case slices.Contains(p.Failed, r.Version):
			err = fmt.Errorf("%w: %d", ErrFailed, r.Version)
		case !InRollout(p.DeviceID, r.Version, r.Rollout):
			err = fmt.Errorf("%w: %d%% of phones", ErrNotInRollout, r.Rollout)
		}
		if err != nil {
			c.Skipped = append(c.Skipped, Skip{valid[i].Name, err})
			continue
		}
		if c.Target == "" || r.Version > c.Release.Version {
			if c.Target != "" {
				c.Skipped = append(c.Skipped, Skip{c.Target, fmt.Errorf("%w: %d", ErrSuperseded, c.Release.Version)})
			}
			c.Target, c.Release = valid[i].Name, r
		} else {
			c.Skipped = append(c.Skipped, Skip{valid[i].Name, fmt.Errorf("%w: %d", ErrSuperseded, r.Version)})
		}
	}
	return c
}
