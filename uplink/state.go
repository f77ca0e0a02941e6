package uplink

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// State is the uplink's own small bbolt file (uplink.db beside the spool): the multipart
// uploads in flight, and the SHA-256 of every call record already shipped. Losing it loses
// nothing: uploads start again from the first part, and records are shipped again to the
// same keys.
type State struct{ db *bolt.DB }

var (
	bucketMultipart = []byte("multipart")
	bucketRecords   = []byte("records")
)

// OpenState opens or creates the state file at path.
func OpenState(path string) (*State, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, InitialMmapSize: 1 << 20})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("uplink: state %s is in use by another process: stop the other wallphoned first", path)
	}
	if err != nil {
		return nil, fmt.Errorf("uplink: open state %s: %w (remove it if it is damaged: nothing is lost, uploads start again)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMultipart, bucketRecords} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("uplink: state %s: %w", path, err)
	}
	return &State{db: db}, nil
}

// Close closes the state file.
func (s *State) Close() error { return s.db.Close() }

func (s *State) get(bucket []byte, key string, v any) (ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket).Get([]byte(key))
		if b == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(b, v)
	})
	if err != nil {
		return false, fmt.Errorf("uplink: state %s: %w", key, err)
	}
	return ok, nil
}

func (s *State) put(bucket []byte, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), b) }); err != nil {
		return fmt.Errorf("uplink: state %s: %w", key, err)
	}
	return nil
}

func (s *State) delete(bucket []byte, key string) error {
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(key)) }); err != nil {
		return fmt.Errorf("uplink: state %s: %w", key, err)
	}
	return nil
}
