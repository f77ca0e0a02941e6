package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// schemaVersion is the layout of the index; a newer one is refused rather than misread.
const schemaVersion = 1

var (
	bucketMeta = []byte("meta")
	// bucketFiles maps the path of every committed file, relative to the spool directory and
	// with slashes, to its encoded record.
	bucketFiles = []byte("files")

	keySchema = []byte("schema")
)

// kind is what a spooled file is.
type kind int

const (
	kindSegment kind = iota
	kindManifest
	kindPurge
)

// name is one spooled file: its kind, call and, for a segment, number.
type name struct {
	kind kind
	call string
	seq  int
}

// rel is the file's path relative to the spool directory, with slashes: its index key.
func (n name) rel() string {
	switch n.kind {
	case kindSegment:
		return segmentsDir + "/" + n.call + "/" + SegmentFile(n.seq)
	case kindManifest:
		return manifestsDir + "/" + manifestFile(n.call)
	default:
		return purgeDir + "/" + n.call + ".json"
	}
}

func (n name) String() string {
	switch n.kind {
	case kindSegment:
		return fmt.Sprintf("segment %d of call %s", n.seq, n.call)
	case kindManifest:
		return "manifest of call " + n.call
	default:
		return "purge request of call " + n.call
	}
}

// parseRel is the inverse of rel; ok is false for anything rel would not make.
func parseRel(rel string) (n name, ok bool) {
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 3 && parts[0] == segmentsDir:
		seq, ok := ParseSegmentFile(parts[2])
		return name{kind: kindSegment, call: parts[1], seq: seq}, ok && ValidCallID(parts[1])
	case len(parts) == 2 && parts[0] == manifestsDir:
		id, ok := parseManifestFile(parts[1])
		return name{kind: kindManifest, call: id, seq: ManifestSeq}, ok
	case len(parts) == 2 && parts[0] == purgeDir:
		id, ok := strings.CutSuffix(parts[1], ".json")
		return name{kind: kindPurge, call: id, seq: ManifestSeq}, ok && ValidCallID(id)
	}
	return name{}, false
}

// ValidCallID reports whether a call id is 1 to 64 characters of [A-Za-z0-9_-]: it then names
// a file or directory and nothing else (no separators, no dots).
func ValidCallID(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func segmentName(callID string, seq int) (name, error) {
	if !ValidCallID(callID) {
		return name{}, fmt.Errorf("spool: segment %d of call %q: %w", seq, callID, ErrBadID)
	}
	if seq < 0 || seq > MaxSeq {
		return name{}, fmt.Errorf("spool: segment %d of call %s: %w: segments are numbered 0 to %d", seq, callID, ErrBadID, MaxSeq)
	}
	return name{kind: kindSegment, call: callID, seq: seq}, nil
}

// entryName is the file of an entry: its manifest for ManifestSeq, else a segment.
func entryName(e Entry) (name, error) {
	if e.Seq == ManifestSeq {
		if !ValidCallID(e.CallID) {
			return name{}, fmt.Errorf("spool: manifest of call %q: %w", e.CallID, ErrBadID)
		}
		return name{kind: kindManifest, call: e.CallID, seq: ManifestSeq}, nil
	}
	return segmentName(e.CallID, e.Seq)
}

// version is one committed content of a file.
type version struct {
	size    int64
	sum     [32]byte
	created time.Time
}

// record is the index entry of a file: what was committed.
type record struct {
	version
	// removing is set before the file is removed and the entry dropped after, so that Open
	// finishes a removal that a crash interrupted.
	removing bool
	// next is set before the file is replaced (a manifest or purge request), so that after a
	// crash Open can tell which of the two the file holds.
	next *version
}

func (r record) entry(n name) Entry {
	return Entry{CallID: n.call, Seq: n.seq, Size: r.size, SHA256: r.sum, Created: r.created}
}

// The encoding of a record: format byte, flags, then one or two versions of 48 bytes (size,
// created as Unix nanoseconds, both big-endian, and the SHA-256).
const (
	recordFormat = 1
	flagRemoving = 1 << 0
	flagNext     = 1 << 1
	versionLen   = 8 + 8 + 32
)

func (r record) encode() []byte {
	var flags byte
	if r.removing {
		flags |= flagRemoving
	}
	if r.next != nil {
		flags |= flagNext
	}
	b := make([]byte, 0, 2+2*versionLen)
	b = append(b, recordFormat, flags)
	b = r.version.append(b)
	if r.next != nil {
		b = r.next.append(b)
	}
	return b
}

func (v version) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(v.size))
	b = binary.BigEndian.AppendUint64(b, uint64(v.created.UnixNano()))
	return append(b, v.sum[:]...)
}

func decodeRecord(b []byte) (record, error) {
	if len(b) < 2 || b[0] != recordFormat {
		return record{}, errors.New("unknown index entry format")
	}
	flags := b[1]
	want := 2 + versionLen
	if flags&flagNext != 0 {
		want += versionLen
	}
	if len(b) != want || flags&^(flagRemoving|flagNext) != 0 {
		return record{}, errors.New("malformed index entry")
	}
	r := record{removing: flags&flagRemoving != 0}
	var ok bool
	if r.version, ok = decodeVersion(b[2:]); !ok {
		return record{}, errors.New("malformed index entry")
	}
	if flags&flagNext != 0 {
		v, ok := decodeVersion(b[2+versionLen:])
		if !ok {
			return record{}, errors.New("malformed index entry")
		}
		r.next = &v
	}
	return r, nil
}

func decodeVersion(b []byte) (version, bool) {
	v := version{
		size:    int64(binary.BigEndian.Uint64(b)),
		created: time.Unix(0, int64(binary.BigEndian.Uint64(b[8:]))).UTC(),
	}
	copy(v.sum[:], b[16:versionLen])
	return v, v.size >= 0
}

// live reports whether an encoded record is of a file that is not being removed.
func live(v []byte) bool {
	r, err := decodeRecord(v)
	return err == nil && !r.removing
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// damagedError is an index bbolt cannot read safely; Open moves it aside and rebuilds it.
type damagedError struct{ cause error }

func (e *damagedError) Error() string { return "damaged: " + e.cause.Error() }

// openIndex opens index.db and returns every entry in its files bucket, moving a damaged
// index aside and starting a fresh one.
func (s *Spool) openIndex() (map[string][]byte, error) {
	path := s.join(indexName)
	db, raw, err := loadIndex(path)
	var dmg *damagedError
	if errors.As(err, &dmg) {
		aside := fmt.Sprintf("%s.damaged-%d", path, time.Now().Unix())
		for i := 2; exists(aside); i++ {
			aside = fmt.Sprintf("%s.damaged-%d-%d", path, time.Now().Unix(), i)
		}
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("spool: index %s is %v, and moving it aside failed: %w; move it aside by hand and start again: the index is rebuilt from the files", path, dmg, err)
		}
		if err := syncDir(s.dir); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.log.Error("spool: the index was damaged; moved it aside and rebuilding it from the files (no recording is lost; keep the old index for inspection)",
			"index", path, "moved_to", aside, "damage", dmg.cause.Error())
		db, raw, err = loadIndex(path)
	}
	if err != nil {
		return nil, err
	}
	s.db = db
	return raw, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// loadIndex opens the index at path, checks it and reads its files bucket. A *damagedError
// says the file is not a sound index.
func loadIndex(path string) (db *bolt.DB, raw map[string][]byte, err error) {
	// bbolt trusts the pages it reads: in a damaged file they can point past the end of the
	// map, which faults and would kill the process, or hold nonsense that bbolt panics on.
	// Either way the index is damaged, and the recordings must not pay for it.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				closeQuietly(db)
			}
			db, raw, err = nil, nil, &damagedError{fmt.Errorf("reading it faulted or panicked (%v): it is cut short or holds garbage", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// Small and fixed: the index holds sizes and hashes, not data, and 32-bit boards
		// cannot map much.
		InitialMmapSize: 1 << 20,
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, nil, fmt.Errorf("spool: index %s is in use by another process: stop the other wallphoned first", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping),
		err != nil && strings.HasPrefix(err.Error(), "file size too small"):
		return nil, nil, &damagedError{err}
	case err != nil:
		return nil, nil, fmt.Errorf("spool: open index %s: %w (check that the agent may read and write the spool directory)", path, err)
	}
	raw, err = readIndex(db, path)
	if err == nil {
		err = initIndex(db, path)
	}
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, raw, nil
}

// readIndex checks the whole index and copies out its files bucket.
func readIndex(db *bolt.DB, path string) (map[string][]byte, error) {
	raw := make(map[string][]byte)
	err := db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			if v := m.Get(keySchema); v != nil && (len(v) != 1 || v[0] != schemaVersion) {
				return fmt.Errorf("spool: index %s has schema %v, this agent knows %d: a newer agent wrote it; update this one", path, v, schemaVersion)
			}
		}
		// Touch every page here, where SetPanicOnFault turns a fault into a panic that
		// loadIndex recovers: bbolt's Check below runs on a goroutine of its own.
		if err := tx.ForEach(func(bname []byte, b *bolt.Bucket) error {
			return walk(b, func(k, v []byte) {
				if string(bname) == string(bucketFiles) {
					raw[string(k)] = append([]byte(nil), v...)
				}
			})
		}); err != nil {
			return err
		}
		var first error
		for err := range tx.Check() { // read to the end: Check's goroutine sends every error
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return &damagedError{first}
		}
		return nil
	})
	return raw, err
}

// walk calls fn with every key and value in b and its nested buckets, copying each so that
// every page is read.
func walk(b *bolt.Bucket, fn func(k, v []byte)) error {
	var scratch []byte
	return b.ForEach(func(k, v []byte) error {
		scratch = append(append(scratch[:0], k...), v...)
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return walk(nb, func([]byte, []byte) {})
			}
			return nil
		}
		fn(k, v)
		return nil
	})
}

func initIndex(db *bolt.DB, path string) error {
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketFiles} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if m.Get(keySchema) == nil {
			return m.Put(keySchema, []byte{schemaVersion})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: index %s: %w", path, err)
	}
	return nil
}

// closeQuietly closes a bbolt database that faulted; closing it may fault as well.
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	db.Close()
}
