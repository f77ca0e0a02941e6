package identity_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/identity"
)

func TestCreateThenLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.key")
	key, created, err := identity.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("first call: created = false")
	}
	if len(key) != ed25519.PrivateKeySize {
		t.Fatalf("key of %d bytes", len(key))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	// The file is a PKCS #8 PEM block that other tools can read.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("key file is not one PRIVATE KEY block:\n%s", b)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := parsed.(ed25519.PrivateKey); !ok || !k.Equal(key) {
		t.Error("file does not hold the key returned")
	}
	msg := []byte("purge request")
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), msg, ed25519.Sign(key, msg)) {
		t.Error("the key does not sign")
	}
	// No temporary files are left beside it.
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Errorf("directory holds %v (%v), want the key file only", ents, err)
	}

	again, created, err := identity.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second call: created = true")
	}
	if !again.Equal(key) {
		t.Error("second call returned a different key")
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, after) {
		t.Error("loading rewrote the key file")
	}
}

func TestNewKeysDiffer(t *testing.T) {
	a, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Equal(b) {
		t.Error("two phones made the same key")
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestDamaged(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"garbage", []byte("this is not a key\n")},
		{"raw key bytes", edKey},
		{"wrong block type", pemBlock("RSA PRIVATE KEY", edDER)},
		{"public key block", pemBlock("PUBLIC KEY", edDER)},
		{"not PKCS #8", pemBlock("PRIVATE KEY", []byte("not DER"))},
		{"cut short", pemBlock("PRIVATE KEY", edDER[:len(edDER)-4])},
		{"ECDSA key", pemBlock("PRIVATE KEY", ecDER)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "device.key")
			if err := os.WriteFile(path, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			key, created, err := identity.LoadOrCreate(path)
			if !errors.Is(err, identity.ErrDamaged) {
				t.Errorf("err = %v, want ErrDamaged", err)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("%q does not name the file", err)
			}
			if key != nil || created {
				t.Errorf("returned a key (created %v) with a damaged file", created)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, tc.file) {
				t.Error("the damaged file was replaced")
			}
		})
	}
}

func TestUnreadablePath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
	}{
		{"directory", dir},
		{"missing parent", filepath.Join(dir, "missing", "device.key")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _, err := identity.LoadOrCreate(tc.path)
			if err == nil || key != nil {
				t.Fatalf("LoadOrCreate = %d-byte key, %v; want an error", len(key), err)
			}
			if errors.Is(err, identity.ErrDamaged) {
				t.Errorf("err = %v; a path that cannot be read is not a damaged key", err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("%q does not name %s", err, tc.path)
			}
		})
	}
}

// rfc8032Seed and rfc8032Public are the key pair of RFC 8032, section 7.1, test 1.
const (
	rfc8032Seed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfc8032Public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	// rfc8032Fingerprint is the first half of sha256 of the public key's 32 bytes, computed
	// outside Go: printf '\xd7\x5a...\x1a' | sha256sum.
	rfc8032Fingerprint = "21fe31dfa154a261626bf854046fd227"
)

func TestFingerprint(t *testing.T) {
	pub, err := hex.DecodeString(rfc8032Public)
	if err != nil {
		t.Fatal(err)
	}
	got := identity.Fingerprint(pub)
	if got != rfc8032Fingerprint {
		t.Errorf("Fingerprint = %s, want %s", got, rfc8032Fingerprint)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
		t.Errorf("Fingerprint %q is not 32 lower-case hex digits", got)
	}
	if again := identity.Fingerprint(pub); again != got {
		t.Errorf("Fingerprint not stable: %s then %s", got, again)
	}
	other := bytes.Clone(pub)
	other[31] ^= 1
	if identity.Fingerprint(other) == got {
		t.Error("a different key has the same fingerprint")
	}
}

// TestKnownKeyFile loads a key file holding the RFC 8032 key and checks its fingerprint.
func TestKnownKeyFile(t *testing.T) {
	seed, err := hex.DecodeString(rfc8032Seed)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "device.key")
	if err := os.WriteFile(path, pemBlock("PRIVATE KEY", der), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, created, err := identity.LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("LoadOrCreate: created %v, %v", created, err)
	}
	pub := loaded.Public().(ed25519.PublicKey)
	if hex.EncodeToString(pub) != rfc8032Public {
		t.Errorf("public key %x, want %s", pub, rfc8032Public)
	}
	if fp := identity.Fingerprint(pub); fp != rfc8032Fingerprint {
		t.Errorf("Fingerprint = %s, want %s", fp, rfc8032Fingerprint)
	}
}
