// Package store is the phone's local state in one bbolt file: the device identity, PIN
// lockouts and call records. It keeps promise 4 (nothing lost) for the state it holds: every
// write is a committed transaction, and a damaged file is reported by name, never silently
// replaced.
//
// Bulk data (audio, the registry) lives in files beside it; bbolt holds indexes and state,
// so the file stays small enough to map on 32-bit boards.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/wallphone/wallphone/pin"
)

// schemaVersion is the layout of the buckets below; a newer file is refused rather than
// misread.
const schemaVersion = 1

var (
	bucketMeta     = []byte("meta")
	bucketLockouts = []byte("lockouts")
	bucketCalls    = []byte("calls")

	keySchema   = []byte("schema")
	keyDeviceID = []byte("device_id")
)

// Errors returned by Open.
var (
	// ErrDamaged: the file is not a readable state database.
	ErrDamaged = errors.New("state database is damaged")
	// ErrLocked: another process holds the database open.
	ErrLocked = errors.New("state database is in use by another process")
	// ErrSchema: the database was written by a newer agent.
	ErrSchema = errors.New("state database has an unknown schema version")
)

// DB is the opened state database. Its methods are safe for concurrent use.
type DB struct {
	path string
	bolt *bolt.DB
}

// Open opens or creates the state database at path. The errors name the file and say what to
// do, because the person reading them is at a wall phone with a laptop.
func Open(path string) (db *DB, err error) {
	// bbolt trusts the pages it reads: in a damaged file (one cut short, say) they can point
	// past the end of the map, which faults and would kill the process, or hold nonsense that
	// bbolt panics on. Either way the file is damaged, and the person at the phone needs to
	// be told which file and what to do.
	var b *bolt.DB
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if b != nil {
				b.Close()
			}
			db, err = nil, damaged(path, r)
		}
	}()
	b, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// Small and fixed: the file holds state, not bulk data, and 32-bit boards cannot map
		// much.
		InitialMmapSize: 1 << 20,
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%s: %w: stop the other wallphoned first", path, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping),
		tooShort(err):
		return nil, damaged(path, err)
	case err != nil:
		return nil, fmt.Errorf("open state database %s: %w (check that the data directory exists and the agent may read and write it)", path, err)
	}
	db = &DB{path: path, bolt: b}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

func damaged(path string, cause any) error {
	return fmt.Errorf("%s: %w (%v): stop the agent, move the file aside for inspection and start again; a fresh database is created, and PIN lockouts and call records in the old one are not carried over", path, ErrDamaged, cause)
}

// tooShort reports bbolt's refusal of a file shorter than its two meta pages, which is an
// error of its own rather than one of its sentinels.
func tooShort(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "file size too small")
}

func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketLockouts, bucketCalls} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("%s: create bucket %s: %w", db.path, name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 1 || v[0] != schemaVersion {
				return fmt.Errorf("%s: %w %v (this agent knows %d): a newer agent wrote it; update this one", db.path, ErrSchema, v, schemaVersion)
			}
		} else if err := meta.Put(keySchema, []byte{schemaVersion}); err != nil {
			return err
		}
		if meta.Get(keyDeviceID) == nil {
			var id [8]byte
			if _, err := rand.Read(id[:]); err != nil {
				return err
			}
			if err := meta.Put(keyDeviceID, []byte("wp-"+hex.EncodeToString(id[:]))); err != nil {
				return err
			}
		}
		return nil
	})
}

// Path is the file the database lives in.
func (db *DB) Path() string { return db.path }

// Close closes the database.
func (db *DB) Close() error { return db.bolt.Close() }

// DeviceID is the phone's identity, made on first start.
func (db *DB) DeviceID() (string, error) {
	var id string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(keyDeviceID))
		return nil
	})
	return id, err
}

// lockoutRecord is how a failure count and lock time are stored (schema 1). It is the
// database's own type, not pin.Lockout with tags, so that a change to pin cannot change
// the file's layout unnoticed.
type lockoutRecord struct {
	Failures int       `json:"failures"`
	Until    time.Time `json:"until,omitzero"`
}

// Lockout returns the state of a caller ID; the zero Lockout if it has none.
func (db *DB) Lockout(callerID string) (pin.Lockout, error) {
	var l lockoutRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLockouts).Get([]byte(callerID))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("%s: lockout of %q: %w", db.path, callerID, err)
		}
		return nil
	})
	return pin.Lockout{Failures: l.Failures, Until: l.Until}, err
}

// SetLockout stores the state of a caller ID; the zero Lockout removes it.
func (db *DB) SetLockout(callerID string, l pin.Lockout) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLockouts)
		if l == (pin.Lockout{}) {
			return b.Delete([]byte(callerID))
		}
		v, err := json.Marshal(lockoutRecord{Failures: l.Failures, Until: l.Until})
		if err != nil {
			return err
		}
		return b.Put([]byte(callerID), v)
	})
}

// PutCall stores the record of a finished call under its id.
func (db *DB) PutCall(callID string, record []byte) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCalls).Put([]byte(callID), record)
	})
}

// Calls calls fn with every stored call record, in call-id order; the bytes are copies.
func (db *DB) Calls(fn func(callID string, record []byte) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCalls).ForEach(func(k, v []byte) error {
			return fn(string(k), append([]byte(nil), v...))
		})
	})
}

// Compact rewrites the closed database at path into a fresh file holding only live data, then
// puts it in place. bbolt never overwrites a freed page, so a value deleted or replaced (a
// number scrubbed from a call record when its recording was destroyed) stays in the file
// until its page is reused; after Compact it is gone from the file.
func Compact(path string) error {
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("compact %s: %w", path, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("compact %s: %w", path, err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{InitialMmapSize: 1 << 20})
	if err != nil {
		return fmt.Errorf("compact %s: %w", path, err)
	}
	if err := bolt.Compact(dst, src, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("compact %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("compact %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
