package provisioning

import (
	"errors"
	"fmt"
	"time"

	"github.com/wallphone/wallphone/internal/strictjson"
)

// Message types. An answer has the request's type with the high bit set, or TypeError.
const (
	TypeHello    byte = 0x01
	TypeAuth     byte = 0x02
	TypeStatus   byte = 0x03
	TypeSelftest byte = 0x04
	TypeLogs     byte = 0x05
	TypePut      byte = 0x06
	TypeEnroll   byte = 0x07
	TypeReset    byte = 0x08
	TypeReboot   byte = 0x09
	TypeBye      byte = 0x0a
	// TypeUpdate asks the phone to install firmware from the technician's copy of the
	// repository; while it runs, the phone sends TypeRead requests and TypeProgress notes.
	TypeUpdate byte = 0x0b
	// TypeRead is the phone's request, during an update, for bytes of a file of the
	// technician's repository. Its answer's payload is binary (see AppendData), the one
	// payload that is not JSON.
	TypeRead byte = 0x0c
	// TypeProgress is the phone's note, during an update, of how far it is; it has no answer.
	TypeProgress byte = 0x0d
	TypeError    byte = 0xff

	answerBit byte = 0x80
)

var typeNames = map[byte]string{
	TypeHello: "hello", TypeAuth: "auth", TypeStatus: "status", TypeSelftest: "selftest",
	TypeLogs: "logs", TypePut: "put", TypeEnroll: "enroll", TypeReset: "reset",
	TypeReboot: "reboot", TypeBye: "bye", TypeUpdate: "update",
}

// ErrMessage: a frame arrived intact but its payload is not a valid message of its type.
var ErrMessage = errors.New("bad message")

// Limits on what one enrolment may carry.
const (
	// ChunkSize is how many bytes of an item one put carries (its base64 fits a frame).
	ChunkSize = 2048
	// MaxItemSize is the largest configuration item.
	MaxItemSize = 256 << 10
	maxItems    = 16
	maxLogLines = 200
)

// Hello is the answer to hello: who the phone is, and a fresh challenge.
type Hello struct {
	DeviceID       string `json:"device_id"`
	Firmware       string `json:"firmware"`
	DeviceKey      []byte `json:"device_key"` // Ed25519 public key
	KeyFingerprint string `json:"key_fingerprint"`
	Facility       string `json:"facility,omitempty"` // empty: not enrolled
	Challenge      []byte `json:"challenge"`
	// ChallengeTTL is how long the challenge may be answered.
	ChallengeTTL time.Duration `json:"challenge_ttl"`
}

// Auth answers a challenge.
type Auth struct {
	Certificate []byte `json:"certificate"` // the certificate file as issued
	Signature   []byte `json:"signature"`   // over AuthMessage(device id, challenge)
}

// AuthOK is the answer to a successful auth.
type AuthOK struct {
	Technician string    `json:"technician"`
	Facility   string    `json:"facility"`
	Serial     uint64    `json:"serial"`
	NotAfter   time.Time `json:"not_after"`
}

// Logs asks for the last Lines lines of the agent's log.
type Logs struct {
	Lines int `json:"lines"`
}

// LogLines is the answer to logs.
type LogLines struct {
	Lines []string `json:"lines"`
}

// Put carries one chunk of a configuration item for the next enroll.
type Put struct {
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Total  int    `json:"total"`
	Data   []byte `json:"data"`
}

// Enroll installs the items put before it, each named with the SHA-256 (hex) of its content.
type Enroll struct {
	Items map[string]string `json:"items"`
}

// Enrolled is the answer to enroll.
type Enrolled struct {
	Facility       string   `json:"facility"`
	DeviceKey      []byte   `json:"device_key"`
	KeyFingerprint string   `json:"key_fingerprint"`
	Installed      []string `json:"installed"`
}

// Reset asks for a factory reset: first with no nonce (the phone answers with one and what
// will be lost), then again with that nonce to carry it out.
type Reset struct {
	Nonce []byte `json:"nonce,omitempty"`
}

// ResetAnswer is the answer to reset.
type ResetAnswer struct {
	Nonce []byte `json:"nonce,omitempty"` // set on the first step
	// Unsent is how many recordings the spool holds that are not yet upstream.
	Unsent int  `json:"unsent"`
	Done   bool `json:"done"`
}

// Done is the answer to commands that only succeed or fail.
type Done struct {
	Message string `json:"message,omitempty"`
}

// Error codes: why the phone refused. The technician's tool maps them to exit codes.
const (
	CodeNotAuthenticated = "not_authenticated"
	CodeAuthFailed       = "auth_failed"
	CodeBackoff          = "backoff"
	CodeLocked           = "locked"
	CodeBadRequest       = "bad_request"
	CodeRefused          = "refused"
	CodeFailed           = "failed"
	// CodeNotFound is the technician's answer to a TypeRead of a file its repository lacks.
	CodeNotFound = "not_found"
)

// Error is the phone's refusal of a request.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter says when the next attempt may come (backoff and locked).
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (try again in %s)", e.RetryAfter.Round(time.Second))
	}
	return s
}

// Is lets errors.Is match an *Error by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// decode parses a payload strictly: one JSON object of the expected shape, no unknown
// fields, nothing after it.
func decode(payload []byte, v any) error {
	if err := strictjson.Decode(payload, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMessage, err)
	}
	return nil
}

// ParseRequest checks a request of type t and returns it as one of the request structs
// (nil for those with no fields).
func ParseRequest(t byte, payload []byte) (any, error) {
	var v any
	switch t {
	case TypeHello, TypeStatus, TypeSelftest, TypeReboot, TypeBye, TypeUpdate:
		var empty struct{}
		if err := decode(payload, &empty); err != nil {
			return nil, err
		}
		return nil, nil
	case TypeAuth:
		var a Auth
		if err := decode(payload, &a); err != nil {
			return nil, err
		}
		if len(a.Certificate) == 0 || len(a.Signature) == 0 {
			return nil, fmt.Errorf("%w: auth needs a certificate and a signature", ErrMessage)
		}
		v = a
	case TypeLogs:
		var l Logs
		if err := decode(payload, &l); err != nil {
			return nil, err
		}
		if l.Lines < 1 || l.Lines > maxLogLines {
			return nil, fmt.Errorf("%w: logs: lines must be 1 to %d", ErrMessage, maxLogLines)
		}
		v = l
	case TypePut:
		var p Put
		if err := decode(payload, &p); err != nil {
			return nil, err
		}
		if err := p.check(); err != nil {
			return nil, err
		}
		v = p
	case TypeEnroll:
		var e Enroll
		if err := decode(payload, &e); err != nil {
			return nil, err
		}
		if len(e.Items) > maxItems {
			return nil, fmt.Errorf("%w: enroll: more than %d items", ErrMessage, maxItems)
		}
		for name, sum := range e.Items {
			if len(sum) != 64 || !validName(name) {
				return nil, fmt.Errorf("%w: enroll: item %q", ErrMessage, name)
			}
		}
		v = e
	case TypeReset:
		var r Reset
		if err := decode(payload, &r); err != nil {
			return nil, err
		}
		if r.Nonce != nil && len(r.Nonce) != nonceSize {
			return nil, fmt.Errorf("%w: reset: nonce of %d bytes", ErrMessage, len(r.Nonce))
		}
		v = r
	default:
		return nil, fmt.Errorf("%w: unknown message type %#x", ErrMessage, t)
	}
	return v, nil
}

func (p Put) check() error {
	switch {
	case !validName(p.Name):
		return fmt.Errorf("%w: put: item name %q", ErrMessage, p.Name)
	case p.Total < 0 || p.Total > MaxItemSize:
		return fmt.Errorf("%w: put: %s: size %d (at most %d)", ErrMessage, p.Name, p.Total, MaxItemSize)
	case len(p.Data) > ChunkSize:
		return fmt.Errorf("%w: put: chunk of %d bytes (at most %d)", ErrMessage, len(p.Data), ChunkSize)
	case p.Offset < 0 || p.Offset+len(p.Data) > p.Total:
		return fmt.Errorf("%w: put: %s: chunk at %d+%d outside %d bytes", ErrMessage, p.Name, p.Offset, len(p.Data), p.Total)
	}
	return nil
}

// validName keeps item names to plain file names: nothing that could leave the conf directory.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ParseAnswer decodes the answer to a request of type req into v, or returns the phone's
// *Error.
func ParseAnswer(req byte, f Frame, v any) error {
	switch f.Type {
	case TypeError:
		var e Error
		if err := decode(f.Payload, &e); err != nil {
			return err
		}
		if e.Code == "" {
			return fmt.Errorf("%w: error without a code", ErrMessage)
		}
		return &e
	case req | answerBit:
		if v == nil {
			v = &struct{}{}
		}
		return decode(f.Payload, v)
	}
	return fmt.Errorf("%w: answer of type %#x to a request of type %#x", ErrMessage, f.Type, req)
}
