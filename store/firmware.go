package store

import bolt "go.etcd.io/bbolt"

// The firmware's state (what is committed, pending, failed; the floor) and an install's
// progress, each kept as its owner encodes it: the store only keeps them across power cuts,
// in the same transactions as everything else the phone keeps.
var (
	keyFirmware         = []byte("firmware")
	keyFirmwareProgress = []byte("firmware_progress")
)

// Firmware returns the firmware state as last stored, nil if none.
func (db *DB) Firmware() ([]byte, error) { return db.getMeta(keyFirmware) }

// SetFirmware stores the firmware state.
func (db *DB) SetFirmware(b []byte) error { return db.putMeta(keyFirmware, b) }

// FirmwareProgress returns an install's progress as last stored, nil if none.
func (db *DB) FirmwareProgress() ([]byte, error) { return db.getMeta(keyFirmwareProgress) }

// SetFirmwareProgress stores an install's progress; nil removes it.
func (db *DB) SetFirmwareProgress(b []byte) error { return db.putMeta(keyFirmwareProgress, b) }

func (db *DB) getMeta(key []byte) ([]byte, error) {
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(key); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

func (db *DB) putMeta(key, b []byte) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if b == nil {
			return tx.Bucket(bucketMeta).Delete(key)
		}
		return tx.Bucket(bucketMeta).Put(key, b)
	})
}
