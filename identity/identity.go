// Package identity is the phone's own key: an Ed25519 key pair made on the phone at first
// start, whose private half never leaves it. Purge requests and console answers are signed
// with it; its fingerprint is how the back office and technicians recognise the phone.
package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

const pemType = "PRIVATE KEY"

// ErrDamaged is returned when the key file exists but does not hold an Ed25519 key.
var ErrDamaged = errors.New("device key file is damaged")

// LoadOrCreate reads the device key at path, or makes one there if there is no file. It never
// replaces a file it cannot read: a phone that silently changed its key would no longer match
// what the back office enrolled.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := parse(b)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return key, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("read device key: %w", err)
	}
	if key, err = Create(path); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

func parse(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemType {
		return nil, fmt.Errorf("%w: no %s block", ErrDamaged, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: not an Ed25519 key", ErrDamaged)
	}
	return ek, nil
}

// Fingerprint is the short form of a public key that people compare: the first 16 bytes of
// its SHA-256, in hex.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}
