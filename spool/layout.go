package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The layout, for readers other than the phone: wallphonectl reads a spool copied off a
// phone, and a call the back office fetched from the vault. They find the files by the
// names below, which are the names the spool writes (see the package documentation), and
// never open the index: a reader takes no lock, repairs nothing and needs no write access.

// ErrNotSpool is returned by List for a directory with neither segments/ nor manifests/.
var ErrNotSpool = errors.New("not a spool")

// sealedExt ends the name of every sealed file: segments and manifests are age files.
const sealedExt = ".age"

// SegmentFile is the file name of segment seq: six digits and ".age" ("000042.age").
func SegmentFile(seq int) string { return fmt.Sprintf("%06d%s", seq, sealedExt) }

// ParseSegmentFile reads a name SegmentFile makes; ok is false for any other name.
func ParseSegmentFile(name string) (seq int, ok bool) {
	digits, ok := strings.CutSuffix(name, sealedExt)
	if !ok || len(digits) != 6 || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	seq, err := strconv.Atoi(digits)
	return seq, err == nil
}

// manifestFile is the file name of a call's manifest.
func manifestFile(callID string) string { return callID + sealedExt }

// parseManifestFile reads a name manifestFile makes; ok is false for any other name.
func parseManifestFile(name string) (callID string, ok bool) {
	id, ok := strings.CutSuffix(name, sealedExt)
	return id, ok && ValidCallID(id)
}

// Paths are where one call's sealed files are, whether or not they are there.
type Paths struct {
	// Manifest is the call's sealed manifest.
	Manifest string
	// SegmentDir is the directory of its sealed segments, named by SegmentFile.
	SegmentDir string
	// Record is its sealed call record: "" in a spool, which never holds one.
	Record string
}

// CallPaths are where a call's files are in the spool directory dir. It returns ErrBadID
// for a call id that could not name a file.
func CallPaths(dir, callID string) (Paths, error) {
	if !ValidCallID(callID) {
		return Paths{}, fmt.Errorf("spool: call %q: %w", callID, ErrBadID)
	}
	return Paths{
		Manifest:   filepath.Join(dir, manifestsDir, manifestFile(callID)),
		SegmentDir: filepath.Join(dir, segmentsDir, callID),
	}, nil
}

// FetchedPaths are where the objects of one call fetched from the vault go in dir:
// dir/manifest.age, dir/record.age and dir/segments/, whose files are named as in a spool so
// that one reader opens both.
func FetchedPaths(dir string) Paths {
	return Paths{
		Manifest:   filepath.Join(dir, "manifest"+sealedExt),
		SegmentDir: filepath.Join(dir, segmentsDir),
		Record:     filepath.Join(dir, "record"+sealedExt),
	}
}

// SegmentInfo is one segment file found by List or ListSegments.
type SegmentInfo struct {
	Seq  int
	Path string
	Size int64
}

// ListSegments lists the segment files in dir, a directory of one call's segments, in seq
// order, and by name the other entries in it (a file the spool was writing, anything else)
// for the reader to report. An error from reading dir is returned as it is, so that
// errors.Is(err, fs.ErrNotExist) tells a call with no segment directory.
func ListSegments(dir string) (segs []SegmentInfo, other []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		seq, ok := ParseSegmentFile(e.Name())
		if !ok || !e.Type().IsRegular() {
			other = append(other, e.Name())
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, nil, err
		}
		segs = append(segs, SegmentInfo{Seq: seq, Path: filepath.Join(dir, e.Name()), Size: info.Size()})
	}
	// ReadDir sorts by name, and six digits sort as numbers.
	return segs, other, nil
}

// CallFiles are the files of one call that List found.
type CallFiles struct {
	CallID string
	// Manifest is the path of the call's sealed manifest, "" if it has none.
	Manifest string
	// Segments are its segment files, in seq order.
	Segments []SegmentInfo
}

// List reads the spool directory dir for the calls in it, by their files alone: a call with
// a segment directory or a manifest is listed, sorted by call id (the oldest first). It
// returns ErrNotSpool, wrapped, for a directory with neither segments/ nor manifests/.
func List(dir string) ([]CallFiles, error) {
	segDirs, err1 := os.ReadDir(filepath.Join(dir, segmentsDir))
	mans, err2 := os.ReadDir(filepath.Join(dir, manifestsDir))
	if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) {
		return nil, fmt.Errorf("spool: %s is %w: it has neither %s/ nor %s/", dir, ErrNotSpool, segmentsDir, manifestsDir)
	}
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	calls := make(map[string]*CallFiles)
	get := func(id string) *CallFiles {
		if calls[id] == nil {
			calls[id] = &CallFiles{CallID: id}
		}
		return calls[id]
	}
	for _, e := range mans {
		if id, ok := parseManifestFile(e.Name()); ok && e.Type().IsRegular() {
			get(id).Manifest = filepath.Join(dir, manifestsDir, e.Name())
		}
	}
	for _, d := range segDirs {
		if !d.IsDir() || !ValidCallID(d.Name()) {
			continue
		}
		segs, _, err := ListSegments(filepath.Join(dir, segmentsDir, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		get(d.Name()).Segments = segs
	}
	out := make([]CallFiles, 0, len(calls))
	for _, id := range sortedKeys(calls) {
		out = append(out, *calls[id])
	}
	return out, nil
}
