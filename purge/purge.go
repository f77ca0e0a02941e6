// Package purge destroys recordings found to be privileged after they were made (promise 5):
// when a registry arrives in which the number of a past recorded call is privileged, every
// spooled file of that call is deleted at once, and a purge request signed by the device key
// is queued so that the copies already uploaded are destroyed in the vault too. The call's
// record keeps that it happened, never the number.
package purge

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/wallphone/wallphone/internal/strictjson"
	"time"
)

// Format names the request layout.
const Format = "wallphone-purge/1"

// ReasonPrivileged: the number called is privileged under a later registry.
const ReasonPrivileged = "privileged"

// Request asks the vault to destroy every object of one call.
type Request struct {
	Format          string    `json:"format"`
	DeviceID        string    `json:"device_id"`
	CallID          string    `json:"call_id"`
	Reason          string    `json:"reason"`
	RegistryVersion uint64    `json:"registry_version"`
	Requested       time.Time `json:"requested"`
}

// signed is the wire form: the request's exact bytes, the key that signed them and the
// signature, so that the vault checks the bytes it will act on, not a re-encoding.
type signed struct {
	Request []byte `json:"request"`
	Key     []byte `json:"key"`
	Sig     []byte `json:"sig"`
}

// ErrSignature is returned by Verify for a request whose signature does not check out.
var ErrSignature = errors.New("purge: bad signature")

// ErrFormat is returned by Verify for bytes that are not a purge request.
var ErrFormat = errors.New("purge: not a purge request")

// Sign makes the wire form of r, signed with the device key.
func Sign(r Request, key ed25519.PrivateKey) ([]byte, error) {
	r.Format = Format
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signed{Request: payload, Key: key.Public().(ed25519.PublicKey), Sig: ed25519.Sign(key, payload)})
}

// Verify checks a request's signature against the key it carries and returns the request and
// that key. The caller must still check that the key is the enrolled key of r.DeviceID: a
// signature proves only who signed, not that they may.
func Verify(b []byte) (Request, ed25519.PublicKey, error) {
	var s signed
	if err := strictjson.Decode(b, &s); err != nil {
		return Request{}, nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if len(s.Key) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize {
		return Request{}, nil, fmt.Errorf("%w: key or signature of the wrong size", ErrFormat)
	}
	pub := ed25519.PublicKey(s.Key)
	if !ed25519.Verify(pub, s.Request, s.Sig) {
		return Request{}, nil, ErrSignature
	}
	var r Request
	if err := strictjson.Decode(s.Request, &r); err != nil {
		return Request{}, nil, fmt.Errorf("%w: signed bytes: %v", ErrFormat, err)
	}
	if r.Format != Format || r.CallID == "" || r.DeviceID == "" {
		return Request{}, nil, fmt.Errorf("%w: signed bytes are not of %s", ErrFormat, Format)
	}
	return r, pub, nil
}
