package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// MarshalPrivateKey is the file form of an Ed25519 key: PKCS #8 in a PEM block, which
// openssl and other tools read.
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParsePrivateKey reads what MarshalPrivateKey wrote; anything else is ErrDamaged.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) { return parse(b) }

// Create makes a fresh key and writes it to path (mode 0600), replacing any key there. The
// file is replaced atomically: a power cut leaves the old key or the new one, never half.
func Create(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err := MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write device key: %w", err)
	}
	return key, nil
}
