// Package spool is the phone's crash-safe store of sealed recording files waiting for upload:
// the segments and manifests of recorded calls, and the signed purge requests of calls
// destroyed on the phone.
//
// It keeps promise 4 (nothing recorded is lost): a power cut or a kill -9 at any moment
// leaves every file whose commit returned readable and byte-exact, and no half-written file
// visible. It keeps its part of promise 3 (no plaintext rests on the phone): it only ever
// receives ciphertext, and it refuses a segment or manifest that does not begin like an age
// file ([ErrNotSealed]), so a mistake upstream cannot put plaintext on flash through it.
//
// # Layout
//
// Under the spool directory:
//
//	segments/<call id>/<seq, 6 digits>.age   segment seq (from 0) of a call
//	manifests/<call id>.age                  the sealed manifest of a call
//	purge/<call id>.json                     a signed purge request waiting for upload
//	index.db                                 bbolt: size, SHA-256 and time of every file above
//	.tmp-*                                   a file being written, beside its final name
//
// Readers other than the phone (wallphonectl, the back office) find these files through
// [List], [CallPaths], [ListSegments] and [SegmentFile], not by spelling the names again;
// [FetchedPaths] is where the objects of a call fetched from the vault go.
//
// # How a file is committed
//
// A commit writes a temporary file in the directory of its final name, fsyncs it, renames it
// to its final name, fsyncs the directory, and then records size and SHA-256 in the index.
// The index is therefore never ahead of the files: whatever has a final name is complete.
// Replacing a manifest or purge request first notes the replacement's size and hash in the
// index entry, so that after a crash Open can tell which of the two the file holds. Removing
// marks the index entry first, then removes the file, then drops the entry, so that Open
// finishes a removal a crash interrupted (a call destroyed on discovery stays destroyed)
// instead of mistaking the missing file for damage.
//
// # What Open repairs
//
// Open brings the spool to a consistent state after any crash, and logs each repair:
//
//   - every .tmp-* file is removed (Warn): it was never visible, and its commit never
//     returned;
//   - a final-named file with no index entry (a stop between rename and index) is complete,
//     because it was renamed only after fsync: it is indexed with its size and SHA-256
//     computed now (Warn);
//   - an index entry marked for removal: the file, if still there, is removed and the entry
//     dropped (Warn);
//   - an index entry noting a replacement: the file is hashed; the entry becomes whichever
//     version the file holds (Warn), or, if it holds neither, keeps the committed version
//     (Error);
//   - an index entry whose file is gone: something removed the file behind the spool's back;
//     the entry is dropped (Error, naming the file);
//   - an index entry whose file has a different size: the file is kept, and so is the entry
//     as committed (Error, naming the file and both sizes). The index is the record of what
//     was committed, so the damage is not laundered into a "good" file: ReadFile reports
//     [ErrCorrupt] for it until it is removed, and Open logs it again at every start;
//   - empty call directories are removed (Warn);
//   - a damaged index.db (garbage, cut short, failing bbolt's consistency check) is moved
//     aside to index.db.damaged-<unix time> and the index is rebuilt from the files (Error,
//     naming both files): a damaged index never stops the phone keeping its recordings;
//   - files the spool does not know (other names) are left alone (Warn).
//
// Usage is computed from the repaired index. Open hashes only the files it indexes and those
// with a replacement noted; a change to an indexed file that keeps its size is found by
// ReadFile.
//
// # Concurrency
//
// A Spool is safe for concurrent use. Changes (commits, removals) are serialized, fsyncs
// included; Usage and CanRecord never wait behind them. Only one process may open a spool:
// the index is locked while open.
package spool

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors. Each is wrapped with the call, file or numbers it concerns; test with errors.Is.
var (
	// ErrFull is returned by CommitSegment and CommitManifest when the file would take the
	// spool's Used bytes over Options.MaxBytes (nothing is written then), and by CanRecord
	// when less than Options.Reserve is left.
	ErrFull = errors.New("spool is full")
	// ErrExists is returned by CommitSegment for a segment that is already committed: a
	// segment is never overwritten.
	ErrExists = errors.New("already in the spool")
	// ErrCorrupt is returned by ReadFile and ReadPurge when the file's size or SHA-256
	// differs from what was committed, or when an indexed file is gone. The error names the
	// file; the file is left as it is, for inspection.
	ErrCorrupt = errors.New("spooled file differs from what was committed")
	// ErrBadID is returned for a call id that is not 1 to 64 characters of [A-Za-z0-9_-], and
	// for a segment number outside 0 to 999999: such names could not safely name a file.
	ErrBadID = errors.New("bad call id or segment number")
	// ErrNotFound is returned by ReadFile, Remove, ReadPurge and RemovePurge when the entry or
	// purge request is not in the spool: never committed, removed, or (for an Entry of a
	// manifest) replaced since the Entry was returned.
	ErrNotFound = errors.New("not in the spool")
	// ErrNotSealed is returned by CommitSegment and CommitManifest for bytes that do not begin
	// like an age file (binary or armored). Nothing is written.
	ErrNotSealed = errors.New("not an age-encrypted file")
	// ErrClosed is returned by every method but Path, Usage and CanRecord after Close.
	ErrClosed = errors.New("spool is closed")
)

const (
	segmentsDir  = "segments"
	manifestsDir = "manifests"
	purgeDir     = "purge"
	indexName    = "index.db"
	tmpPrefix    = ".tmp-"

	// MaxSeq is the highest segment number: six digits name the file.
	MaxSeq = 999999
	// ManifestSeq is Entry.Seq of a manifest.
	ManifestSeq = -1
)

// Options configure a Spool.
type Options struct {
	// Dir is the spool directory; Open creates it if needed.
	Dir string
	// MaxBytes bounds the spool: the bytes of every committed file under Dir (index.db and
	// files the spool does not know are not counted). It must be positive.
	MaxBytes int64
	// Reserve is the room a new recording needs: CanRecord fails when MaxBytes minus the
	// bytes used is less than Reserve. It must be between 0 and MaxBytes.
	Reserve int64
	// Logger gets a Warn for every repair Open makes and an Error for every sign of damage;
	// nil discards.
	Logger *slog.Logger
}

// Entry is one committed segment or manifest.
type Entry struct {
	CallID string
	// Seq is the segment number, or ManifestSeq (-1) for the call's manifest.
	Seq int
	// Size and SHA256 are those of the file as committed.
	Size   int64
	SHA256 [32]byte
	// Created is when it was committed (for a file Open indexed, its modification time).
	Created time.Time
}

// Usage is what the spool holds.
type Usage struct {
	// Bytes is the size of every committed file: what MaxBytes bounds.
	Bytes     int64
	Segments  int
	Manifests int
	Purges    int
	// Calls counts the calls with a segment or a manifest in the spool.
	Calls int
}

// Spool is an opened spool directory. It is safe for concurrent use.
type Spool struct {
	dir     string
	max     int64
	reserve int64
	log     *slog.Logger
	db      *bolt.DB

	// mu serializes every change to the files under dir and to the index, so that a check
	// (is this segment there already, is there room) and the change it allows are one step,
	// and so that ReadFile and ReadPurge, which take it too, never see a file between its
	// rename and its index entry. It is held across fsyncs. The listings do not take it:
	// each is one bbolt read transaction, a consistent view of the index.
	mu     sync.Mutex
	closed bool // set by Close; guarded by mu

	// usageMu guards used, so that Usage and CanRecord never wait behind an fsync. Only
	// holders of mu change used; the lock order is mu, then usageMu.
	usageMu sync.Mutex
	used    usage
}

// usage is Usage with the calls themselves, so that Calls is kept exactly.
type usage struct {
	bytes                       int64
	segments, manifests, purges int
	calls                       map[string]int // call id → its segments and manifest
}

// Open opens the spool in o.Dir, creating it if needed, and repairs what a crash left (see
// the package documentation). The errors name the file and say what to do.
func Open(o Options) (*Spool, error) {
	switch {
	case o.Dir == "":
		return nil, errors.New("spool: no directory given")
	case o.MaxBytes <= 0:
		return nil, fmt.Errorf("spool: MaxBytes is %d: give the spool a positive size bound", o.MaxBytes)
	case o.Reserve < 0 || o.Reserve > o.MaxBytes:
		return nil, fmt.Errorf("spool: Reserve is %d: it must be between 0 and MaxBytes (%d)", o.Reserve, o.MaxBytes)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Spool{dir: o.Dir, max: o.MaxBytes, reserve: o.Reserve, log: log}
	for _, d := range []string{o.Dir, s.join(segmentsDir), s.join(manifestsDir), s.join(purgeDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("spool: %w (check that the data directory exists and the agent may write it)", err)
		}
	}
	if err := syncDir(o.Dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	raw, err := s.openIndex()
	if err != nil {
		return nil, err
	}
	recs, err := s.repair(raw)
	if err != nil {
		s.db.Close()
		return nil, err
	}
	s.used = usage{calls: make(map[string]int)}
	for k, r := range recs {
		n, _ := parseRel(k)
		s.used.add(n, r.size, 1)
	}
	return s, nil
}

// Close closes the index. It waits for a change in progress to finish.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// CommitSegment commits segment seq (from 0) of a call: a complete age file. It writes a
// temporary file in the call's directory, fsyncs it, renames it to its final name, fsyncs the
// directory, and then records it in the index; when it returns nil the segment survives any
// crash. It returns ErrExists if that segment is already committed (it never overwrites),
// ErrFull if the segment would take the spool's bytes over MaxBytes, and ErrNotSealed if data
// is not an age file; nothing is written then.
func (s *Spool) CommitSegment(callID string, seq int, data []byte) (Entry, error) {
	n, err := segmentName(callID, seq)
	if err != nil {
		return Entry{}, err
	}
	return s.commit(n, data)
}

// CommitManifest commits the sealed manifest of a call, by the same steps as CommitSegment,
// replacing an older manifest of the call atomically: after a crash the call has the old
// manifest or the new one, whole. ErrFull counts only the growth over the older manifest.
// The Entry's Seq is ManifestSeq.
func (s *Spool) CommitManifest(callID string, data []byte) (Entry, error) {
	if !ValidCallID(callID) {
		return Entry{}, fmt.Errorf("spool: manifest of call %q: %w", callID, ErrBadID)
	}
	return s.commit(name{kind: kindManifest, call: callID, seq: ManifestSeq}, data)
}

// CommitPurge commits the signed purge request of a call (opaque bytes to the spool), by the
// same steps, replacing an older one of the call atomically. It is never refused for space:
// purge requests are tiny and must not be lost. They count in Usage all the same.
func (s *Spool) CommitPurge(callID string, data []byte) error {
	if !ValidCallID(callID) {
		return fmt.Errorf("spool: purge request of call %q: %w", callID, ErrBadID)
	}
	_, err := s.commit(name{kind: kindPurge, call: callID, seq: ManifestSeq}, data)
	return err
}

// CanRecord reports whether a new recording fits: nil, or ErrFull (wrapped, saying the bytes
// used and the bound) when MaxBytes minus the bytes used is less than Reserve, or when the
// file system holding the spool has less than Reserve free (the spool's own bound says
// nothing of the logs, the database and whatever else shares the flash).
func (s *Spool) CanRecord() error {
	used := s.Usage().Bytes
	if s.max-used < s.reserve {
		return fmt.Errorf("spool: %w: %d of %d bytes used, and a recording needs %d free", ErrFull, used, s.max, s.reserve)
	}
	return s.fsRoom(s.reserve, "a recording")
}

// Room reports whether need more bytes fit, both under MaxBytes and on the file system: the
// recorder asks it after each segment, so that a call ends while its last segment still fits.
func (s *Spool) Room(need int64) error {
	used := s.Usage().Bytes
	if s.max-used < need {
		return fmt.Errorf("spool: %w: %d of %d bytes used, and the next segment needs %d", ErrFull, used, s.max, need)
	}
	return s.fsRoom(need, "the next segment")
}

func (s *Spool) fsRoom(need int64, what string) error {
	free, err := fsFree(s.dir)
	if err != nil {
		// Not knowing is not a reason to refuse: the commits still fail cleanly when full.
		s.log.Warn("spool: free space unknown", "dir", s.dir, "err", err)
		return nil
	}
	if free < need {
		return fmt.Errorf("spool: %w: the file system holding %s has %d bytes free, and %s needs %d",
			ErrFull, s.dir, free, what, need)
	}
	return nil
}

// Usage is what the spool holds now.
func (s *Spool) Usage() Usage {
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	return Usage{Bytes: s.used.bytes, Segments: s.used.segments, Manifests: s.used.manifests,
		Purges: s.used.purges, Calls: len(s.used.calls)}
}

// Calls lists the calls with a segment or a manifest in the spool, sorted; call ids begin
// with a UTC timestamp, so the oldest come first. Purge requests are listed by Purges.
func (s *Spool) Calls() ([]string, error) {
	seen := make(map[string]bool)
	err := s.view(func(b *bolt.Bucket) error {
		for _, prefix := range []string{segmentsDir + "/", manifestsDir + "/"} {
			c := b.Cursor()
			for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
				n, ok := parseRel(string(k))
				if !ok || !live(v) {
					continue
				}
				seen[n.call] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sortedKeys(seen), nil
}

// Segments lists the committed segments of a call in seq order; none is not an error.
func (s *Spool) Segments(callID string) ([]Entry, error) {
	if !ValidCallID(callID) {
		return nil, fmt.Errorf("spool: segments of call %q: %w", callID, ErrBadID)
	}
	var es []Entry
	prefix := []byte(segmentsDir + "/" + callID + "/")
	err := s.view(func(b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			n, ok := parseRel(string(k))
			if !ok {
				continue
			}
			r, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("spool: index entry of %s: %w", s.path(n), err)
			}
			if !r.removing {
				es = append(es, r.entry(n))
			}
		}
		return nil
	})
	return es, err
}

// Manifest returns the entry of a call's manifest, and whether it has one.
func (s *Spool) Manifest(callID string) (Entry, bool, error) {
	if !ValidCallID(callID) {
		return Entry{}, false, fmt.Errorf("spool: manifest of call %q: %w", callID, ErrBadID)
	}
	n := name{kind: kindManifest, call: callID, seq: ManifestSeq}
	r, ok, err := s.get(n)
	if err != nil || !ok || r.removing {
		return Entry{}, false, err
	}
	return r.entry(n), true, nil
}

// Path is the file of an entry, or "" if the entry's call id or seq could name no file.
func (s *Spool) Path(e Entry) string {
	n, err := entryName(e)
	if err != nil {
		return ""
	}
	return s.path(n)
}

// ReadFile reads the file of an entry the spool returned and checks its size and SHA-256
// against the index: ErrCorrupt, naming the file, if they differ or the file is gone;
// ErrNotFound if the entry was removed or (a manifest) replaced since.
func (s *Spool) ReadFile(e Entry) ([]byte, error) {
	n, err := entryName(e)
	if err != nil {
		return nil, err
	}
	return s.read(n, func(r record) bool { return r.size == e.Size && r.sum == e.SHA256 })
}

// DeleteCall removes every segment and the manifest of a call, not its purge request: the
// index entries are marked, the files removed, the directories fsynced, and then the entries
// dropped, so that a crash in between is finished by Open and the call cannot come back. It
// is used to destroy a recording found to be privileged and after a call's upload. removed
// counts the files removed; a call with nothing spooled gives 0 and no error.
func (s *Spool) DeleteCall(callID string) (removed int, err error) {
	if !ValidCallID(callID) {
		return 0, fmt.Errorf("spool: delete call %q: %w", callID, ErrBadID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("spool: delete call %s: %w", callID, ErrClosed)
	}
	// The call's entries, marked for removal in one transaction.
	recs := make(map[string]record)
	err = s.view(func(b *bolt.Bucket) error {
		prefix := []byte(segmentsDir + "/" + callID + "/")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r, _ := decodeRecord(v) // an unreadable entry goes too
			recs[string(k)] = r
		}
		mk := name{kind: kindManifest, call: callID, seq: ManifestSeq}.rel()
		if v := b.Get([]byte(mk)); v != nil {
			r, _ := decodeRecord(v)
			recs[mk] = r
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("spool: delete call %s: %w", callID, err)
	}
	if len(recs) > 0 {
		err = s.update(func(b *bolt.Bucket) error {
			for k, r := range recs {
				r.removing, r.next = true, nil
				if err := b.Put([]byte(k), r.encode()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("spool: delete call %s: %w", callID, err)
		}
	}

	// The files: everything in the call's directory, then the manifest.
	callDir := s.join(segmentsDir, callID)
	des, err := os.ReadDir(callDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("spool: delete call %s: %w", callID, err)
	}
	for _, de := range des {
		if err := os.Remove(filepath.Join(callDir, de.Name())); err != nil {
			return removed, fmt.Errorf("spool: delete call %s: %w (the rest is removed when the agent next starts)", callID, err)
		}
		removed++
	}
	if len(des) > 0 {
		if err := syncDir(callDir); err != nil {
			return removed, fmt.Errorf("spool: delete call %s: %w", callID, err)
		}
	}
	if err := os.Remove(callDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return removed, fmt.Errorf("spool: delete call %s: %w (the rest is removed when the agent next starts)", callID, err)
	}
	mpath := s.join(manifestsDir, manifestFile(callID))
	switch err := os.Remove(mpath); {
	case err == nil:
		removed++
	case !errors.Is(err, os.ErrNotExist):
		return removed, fmt.Errorf("spool: delete call %s: %w (the rest is removed when the agent next starts)", callID, err)
	}
	for _, d := range []string{s.join(segmentsDir), s.join(manifestsDir)} {
		if err := syncDir(d); err != nil {
			return removed, fmt.Errorf("spool: delete call %s: %w", callID, err)
		}
	}

	// Then the entries.
	if len(recs) == 0 {
		return removed, nil
	}
	err = s.update(func(b *bolt.Bucket) error {
		for k := range recs {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("spool: delete call %s: files removed, index not updated: %w (it is updated when the agent next starts)", callID, err)
	}
	s.usageMu.Lock()
	for k, r := range recs {
		n, _ := parseRel(k)
		s.used.add(n, r.size, -1)
	}
	s.usageMu.Unlock()
	return removed, nil
}

// Remove removes one entry the spool returned, after its upload is confirmed: entry marked,
// file removed, directory fsynced, entry dropped. ErrNotFound if it was removed or (a
// manifest) replaced since: the newer manifest is never removed by an older Entry.
func (s *Spool) Remove(e Entry) error {
	n, err := entryName(e)
	if err != nil {
		return err
	}
	return s.remove(n, func(r record) bool { return r.size == e.Size && r.sum == e.SHA256 })
}

// Purges lists the calls with a purge request in the spool, sorted.
func (s *Spool) Purges() ([]string, error) {
	var ids []string
	prefix := []byte(purgeDir + "/")
	err := s.view(func(b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if n, ok := parseRel(string(k)); ok && live(v) {
				ids = append(ids, n.call)
			}
		}
		return nil
	})
	return ids, err
}

// ReadPurge reads the purge request of a call, checked against the index like ReadFile.
func (s *Spool) ReadPurge(callID string) ([]byte, error) {
	if !ValidCallID(callID) {
		return nil, fmt.Errorf("spool: purge request of call %q: %w", callID, ErrBadID)
	}
	return s.read(name{kind: kindPurge, call: callID, seq: ManifestSeq}, func(record) bool { return true })
}

// RemovePurge removes the purge request of a call, after its upload is confirmed.
func (s *Spool) RemovePurge(callID string) error {
	if !ValidCallID(callID) {
		return fmt.Errorf("spool: purge request of call %q: %w", callID, ErrBadID)
	}
	return s.remove(name{kind: kindPurge, call: callID, seq: ManifestSeq}, func(record) bool { return true })
}

// commit writes n with data; see CommitSegment.
func (s *Spool) commit(n name, data []byte) (Entry, error) {
	what := n.String()
	if n.kind != kindPurge && !sealed(data) {
		return Entry{}, fmt.Errorf("spool: %s: %w: refusing to write it", what, ErrNotSealed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, fmt.Errorf("spool: %s: %w", what, ErrClosed)
	}
	path := s.path(n)
	old, have, err := s.get(n)
	if err != nil {
		return Entry{}, err
	}
	switch {
	case have && old.removing:
		return Entry{}, fmt.Errorf("spool: %s: an earlier removal of %s failed half way; restart the agent to finish it", what, path)
	case have && n.kind == kindSegment:
		return Entry{}, fmt.Errorf("spool: %s: %w", what, ErrExists)
	case n.kind == kindSegment:
		// Not indexed, so it cannot be there; but a segment is never overwritten.
		if _, err := os.Lstat(path); err == nil {
			return Entry{}, fmt.Errorf("spool: %s: %w (%s is there but not indexed; it is indexed when the agent next starts)", what, ErrExists, path)
		}
	}
	grow := int64(len(data))
	if have {
		grow -= old.size
	}
	if n.kind != kindPurge {
		if used := s.Usage().Bytes; used+grow > s.max {
			return Entry{}, fmt.Errorf("spool: %s: %w: %d more bytes would make %d of %d", what, ErrFull, grow, used+grow, s.max)
		}
	}

	v := version{size: int64(len(data)), sum: sha256.Sum256(data), created: time.Now().UTC()}
	if n.kind == kindSegment {
		if err := makeDir(filepath.Dir(path)); err != nil {
			return Entry{}, fmt.Errorf("spool: %s: %w", what, err)
		}
	}
	if have {
		// Note the replacement first: after a crash, Open hashes the file to learn which
		// version it holds.
		old.next = &v
		if err := s.put(n, old); err != nil {
			return Entry{}, fmt.Errorf("spool: %s: %w", what, err)
		}
	}
	renamed, err := writeFile(path, data)
	if err != nil && !renamed {
		if have {
			old.next = nil
			if perr := s.put(n, old); perr != nil {
				err = errors.Join(err, perr)
			}
		}
		return Entry{}, fmt.Errorf("spool: %s: %w", what, err)
	}
	// Renamed: the file holds data even if the directory fsync failed, so the index must say
	// so.
	if perr := s.put(n, record{version: v}); perr != nil {
		return Entry{}, fmt.Errorf("spool: %s: written to %s but not indexed: %w (it is indexed when the agent next starts)", what, path, errors.Join(err, perr))
	}
	if err != nil {
		return Entry{}, fmt.Errorf("spool: %s: %w", what, err)
	}
	s.usageMu.Lock()
	if have {
		s.used.bytes -= old.size
		s.used.bytes += v.size
	} else {
		s.used.add(n, v.size, 1)
	}
	s.usageMu.Unlock()
	return record{version: v}.entry(n), nil
}

// read reads n and checks it against the index; want says whether the caller's idea of the
// entry is still the indexed one.
func (s *Spool) read(n name, want func(record) bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("spool: %s: %w", n, ErrClosed)
	}
	path := s.path(n)
	r, ok, err := s.get(n)
	switch {
	case err != nil:
		return nil, err
	case !ok || r.removing:
		return nil, fmt.Errorf("spool: %s: %w", n, ErrNotFound)
	case !want(r):
		return nil, fmt.Errorf("spool: %s: %w (replaced since that entry was read)", n, ErrNotFound)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("spool: %s: %w: the file is gone though the index lists it; something removed it behind the spool's back", path, ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != r.size || sum != r.sum {
		return nil, fmt.Errorf("spool: %s: %w: it has %d bytes with SHA-256 %x, and was committed with %d bytes and SHA-256 %x; the file is kept for inspection",
			path, ErrCorrupt, len(b), sum, r.size, r.sum)
	}
	return b, nil
}

// remove removes n if want approves of its index entry.
func (s *Spool) remove(n name, want func(record) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("spool: remove %s: %w", n, ErrClosed)
	}
	path := s.path(n)
	r, ok, err := s.get(n)
	switch {
	case err != nil:
		return err
	case !ok || r.removing:
		return fmt.Errorf("spool: remove %s: %w", n, ErrNotFound)
	case !want(r):
		return fmt.Errorf("spool: remove %s: %w (replaced since that entry was read)", n, ErrNotFound)
	}
	r.removing = true
	r.next = nil
	if err := s.put(n, r); err != nil {
		return fmt.Errorf("spool: remove %s: %w", n, err)
	}
	switch err := os.Remove(path); {
	case errors.Is(err, os.ErrNotExist):
		s.log.Error("spool: an indexed file was already gone when it was removed: something removed it behind the spool's back", "file", path)
	case err != nil:
		return fmt.Errorf("spool: remove %s: %w (it is removed when the agent next starts)", n, err)
	}
	dir := filepath.Dir(path)
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("spool: remove %s: %w", n, err)
	}
	if n.kind == kindSegment {
		// The call's last segment takes its directory with it; a later segment makes it
		// again. A directory with files in it stays.
		if os.Remove(dir) == nil {
			if err := syncDir(filepath.Dir(dir)); err != nil {
				return fmt.Errorf("spool: remove %s: %w", n, err)
			}
		}
	}
	if err := s.update(func(b *bolt.Bucket) error { return b.Delete([]byte(n.rel())) }); err != nil {
		return fmt.Errorf("spool: remove %s: file removed, index not updated: %w (it is updated when the agent next starts)", n, err)
	}
	s.usageMu.Lock()
	s.used.add(n, r.size, -1)
	s.usageMu.Unlock()
	return nil
}

// add counts delta (1 or -1) files of size bytes named n.
func (u *usage) add(n name, size int64, delta int) {
	u.bytes += int64(delta) * size
	switch n.kind {
	case kindSegment:
		u.segments += delta
	case kindManifest:
		u.manifests += delta
	case kindPurge:
		u.purges += delta
		return
	}
	u.calls[n.call] += delta
	if u.calls[n.call] <= 0 {
		delete(u.calls, n.call)
	}
}

// sealed reports whether b begins like an age file, binary or armored.
func sealed(b []byte) bool {
	return bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")) ||
		bytes.HasPrefix(b, []byte("-----BEGIN AGE ENCRYPTED FILE-----"))
}

func (s *Spool) join(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *Spool) path(n name) string { return s.join(filepath.FromSlash(n.rel())) }

// writeFile writes data to path by way of a temporary file beside it: write, fsync, rename,
// fsync the directory. renamed says whether path now holds data (it does even when the
// directory fsync fails). On any failure before the rename the temporary file is removed.
func writeFile(path string, data []byte) (renamed bool, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return false, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("write %s: sync: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	return true, syncDir(dir)
}

// makeDir makes dir if it is not there, and then fsyncs its parent so that the new entry
// survives a power cut.
func makeDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir fsyncs a directory, making the renames and removals in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// isTemp reports whether a file name is one of the spool's temporary files.
func isTemp(name string) bool { return strings.HasPrefix(name, tmpPrefix) }

// view runs fn on the files bucket in a read transaction.
func (s *Spool) view(fn func(*bolt.Bucket) error) error {
	err := s.db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketFiles)) })
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("spool: %w", ErrClosed)
	}
	return err
}

// update runs fn on the files bucket in a write transaction.
func (s *Spool) update(fn func(*bolt.Bucket) error) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketFiles)) })
	if err != nil {
		return fmt.Errorf("index %s: %w", s.join(indexName), err)
	}
	return nil
}

// get reads the index entry of n.
func (s *Spool) get(n name) (r record, ok bool, err error) {
	err = s.view(func(b *bolt.Bucket) error {
		v := b.Get([]byte(n.rel()))
		if v == nil {
			return nil
		}
		ok = true
		r, err = decodeRecord(v)
		if err != nil {
			return fmt.Errorf("spool: index entry of %s: %w (restart the agent: the file is indexed again)", s.path(n), err)
		}
		return nil
	})
	return r, ok, err
}

// put writes the index entry of n.
func (s *Spool) put(n name, r record) error {
	return s.update(func(b *bolt.Bucket) error { return b.Put([]byte(n.rel()), r.encode()) })
}
