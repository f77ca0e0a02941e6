package provisioning

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wallphone/wallphone/identity"
)

// Domain-separation strings: a signature made for one purpose is never valid for another.
const (
	certDomain = "wallphone technician certificate v1\x00"
	authDomain = "wallphone console auth v1\x00"
)

// Certificate errors, each saying why a technician was refused.
var (
	ErrCertificate    = errors.New("certificate unreadable")
	ErrUntrusted      = errors.New("certificate not signed by a provisioning key this phone trusts")
	ErrOtherFacility  = errors.New("certificate is for another facility")
	ErrExpired        = errors.New("certificate has expired")
	ErrNotYetValid    = errors.New("certificate is not valid yet")
	ErrBadSignature   = errors.New("challenge signature does not verify with the certificate's key")
	ErrNoChallenge    = errors.New("no open challenge (it was used, has expired, or hello was not sent)")
	ErrTrust          = errors.New("provisioning trust file unreadable")
	ErrNoProvisioning = errors.New("this phone trusts no provisioning key")
)

// CertBody is what a facility vouches for: this key belongs to this technician, for this
// facility, between these times.
type CertBody struct {
	Version   int       `json:"version"`
	Serial    uint64    `json:"serial"`
	Name      string    `json:"name"`
	Facility  string    `json:"facility"`
	PublicKey []byte    `json:"public_key"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// certFile is the certificate as a technician carries it: the body exactly as signed, the
// signer's fingerprint (for the error message, not for trust) and the signature.
type certFile struct {
	Body      []byte `json:"body"`
	Signer    string `json:"signer"`
	Signature []byte `json:"signature"`
}

// Certificate is a parsed technician certificate whose signature is not yet checked.
type Certificate struct {
	CertBody
	body      []byte
	Signer    string
	signature []byte
}

// IssueCertificate signs body with a facility's provisioning key and returns the file.
func IssueCertificate(body CertBody, provisioningKey ed25519.PrivateKey) ([]byte, error) {
	body.Version = 1
	if err := body.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	f := certFile{
		Body:      b,
		Signer:    identity.Fingerprint(provisioningKey.Public().(ed25519.PublicKey)),
		Signature: ed25519.Sign(provisioningKey, append([]byte(certDomain), b...)),
	}
	out, err := json.MarshalIndent(f, "", "  ")
	return append(out, '\n'), err
}

func (b CertBody) check() error {
	switch {
	case b.Version != 1:
		return fmt.Errorf("%w: version %d", ErrCertificate, b.Version)
	case b.Name == "" || len(b.Name) > 128:
		return fmt.Errorf("%w: technician name missing or too long", ErrCertificate)
	case !validName(b.Facility):
		return fmt.Errorf("%w: facility %q", ErrCertificate, b.Facility)
	case len(b.PublicKey) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: public key of %d bytes", ErrCertificate, len(b.PublicKey))
	case !b.NotAfter.After(b.NotBefore):
		return fmt.Errorf("%w: not-after is not after not-before", ErrCertificate)
	}
	return nil
}

// ParseCertificate reads a certificate file. It checks the form only; Verify checks trust.
func ParseCertificate(b []byte) (*Certificate, error) {
	var f certFile
	if err := decode(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	if len(f.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrCertificate, len(f.Signature))
	}
	c := &Certificate{body: f.Body, Signer: f.Signer, signature: f.Signature}
	if err := decode(f.Body, &c.CertBody); err != nil {
		return nil, fmt.Errorf("%w: body: %w", ErrCertificate, err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Verify checks that a trusted provisioning key of the certificate's facility signed it,
// that facility (if not empty: the phone is enrolled) is the certificate's, and that it is
// valid at now.
func (c *Certificate) Verify(trust Trust, facility string, now time.Time) error {
	if facility != "" && c.Facility != facility {
		return fmt.Errorf("%w: it names %q, this phone belongs to %q", ErrOtherFacility, c.Facility, facility)
	}
	signed := false
	for _, k := range trust.Keys(c.Facility) {
		if ed25519.Verify(k, append([]byte(certDomain), c.body...), c.signature) {
			signed = true
			break
		}
	}
	if !signed {
		return fmt.Errorf("%w (signer %s, facility %q)", ErrUntrusted, c.Signer, c.Facility)
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.NotAfter) {
		return fmt.Errorf("%w: valid until %s", ErrExpired, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// AuthMessage is what a technician signs to answer a challenge: bound to the phone, so an
// answer for one phone is no use on another.
func AuthMessage(deviceID string, challenge []byte) []byte {
	m := append([]byte(authDomain), deviceID...)
	m = append(m, 0)
	return append(m, challenge...)
}

// Trust is the set of provisioning public keys a phone accepts, each for one facility.
type Trust struct {
	keys map[string][]ed25519.PublicKey
}

// Keys returns the keys trusted for a facility.
func (t Trust) Keys(facility string) []ed25519.PublicKey { return t.keys[facility] }

// Len is how many keys there are.
func (t Trust) Len() int {
	n := 0
	for _, ks := range t.keys {
		n += len(ks)
	}
	return n
}

// PublicKeyLine is one line of a provisioning trust file: the facility and its key.
func PublicKeyLine(facility string, pub ed25519.PublicKey) string {
	return facility + " ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// ParseTrust reads a provisioning trust file: one "FACILITY ed25519:BASE64" a line; blank
// lines and lines starting with # are skipped.
func ParseTrust(b []byte) (Trust, error) {
	t := Trust{keys: map[string][]ed25519.PublicKey{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || !validName(fields[0]) || !strings.HasPrefix(fields[1], "ed25519:") {
			return Trust{}, fmt.Errorf("%w: line %d: want FACILITY ed25519:BASE64", ErrTrust, n)
		}
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(fields[1], "ed25519:"))
		if err != nil || len(k) != ed25519.PublicKeySize {
			return Trust{}, fmt.Errorf("%w: line %d: not an Ed25519 public key", ErrTrust, n)
		}
		t.keys[fields[0]] = append(t.keys[fields[0]], ed25519.PublicKey(k))
	}
	if err := sc.Err(); err != nil {
		return Trust{}, fmt.Errorf("%w: %w", ErrTrust, err)
	}
	return t, nil
}
