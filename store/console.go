package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var keyConsole = []byte("console_lockout")

// ConsoleFailures returns the serial console's count of failed authentications in a row and
// the time before which it refuses the next attempt; zero values if it has none.
func (db *DB) ConsoleFailures() (failures int, until time.Time, err error) {
	var l lockoutRecord
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyConsole)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("%s: console lockout: %w", db.path, err)
		}
		return nil
	})
	return l.Failures, l.Until, err
}

// SetConsoleFailures stores the serial console's failure count and lock time; zero values
// remove them.
func (db *DB) SetConsoleFailures(failures int, until time.Time) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		l := lockoutRecord{Failures: failures, Until: until}
		if l == (lockoutRecord{}) {
			return b.Delete(keyConsole)
		}
		v, err := json.Marshal(l)
		if err != nil {
			return err
		}
		return b.Put(keyConsole, v)
	})
}
