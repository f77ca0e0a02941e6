// Package pin says what a PIN is ([Check]: the digits a caller keys at a wall phone), and
// makes and checks PIN verifiers: argon2id hashes in the PHC string format
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// (salt and hash in unpadded standard base64), the form the reference argon2 tool and most
// libraries read and write.
//
// It keeps two promises. A PIN is never stored in the clear: the facility policy carries only
// verifiers. And checking a PIN costs a bounded amount: the parameters come from a policy
// file, so [Parse] refuses any verifier whose memory, passes, lanes, salt or key lie outside
// [MaxMemory] and the other bounds, and a hostile or mistaken policy cannot make a phone
// spend minutes or gigabytes on one key press.
//
// What it does not promise: a four-digit PIN has ten thousand values, so anyone who reads a
// policy file can recover its PINs by trying them all, at argon2id's cost per try. The hash
// slows that; the phone's lockout after failed attempts ([Lockout]) is what stops guessing at
// the keypad.
package pin

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Errors; test with errors.Is.
var (
	// ErrMalformed: the verifier is not an argon2id PHC string in canonical form.
	ErrMalformed = errors.New("pin: malformed verifier")
	// ErrVersion: the verifier is for an argon2 version other than 19 (0x13).
	ErrVersion = errors.New("pin: unsupported argon2 version")
	// ErrParams: the parameters lie outside the bounds below; returned by Parse and Hash.
	ErrParams = errors.New("pin: parameters out of bounds")
	// ErrEmptyPIN: Hash was asked for a verifier of the empty PIN, which any caller would
	// match by pressing nothing.
	ErrEmptyPIN = errors.New("pin: empty PIN")
)

// The PIN rule: what a caller can key at a wall phone. Hashing does not enforce it (a
// verifier is of whatever string it was made from); whoever chooses PINs checks them with
// [Check] first, or a caller could be given a PIN nobody can enter.
const (
	// MinLen is the fewest digits a PIN has.
	MinLen = 4
	// MaxLen is the most digits a PIN has.
	MaxLen = 12
)

// Errors of Check. Unlike the others they carry no "pin:" prefix: they are said as they are
// to the person choosing a PIN.
var (
	// ErrLength: the PIN is shorter than MinLen or longer than MaxLen bytes (a digit is one).
	ErrLength = fmt.Errorf("a PIN has %d to %d digits", MinLen, MaxLen)
	// ErrDigits: the PIN has a character other than the digits 0-9.
	ErrDigits = errors.New("a PIN has only the digits 0-9")
)

// Check reports whether p follows the PIN rule: MinLen to MaxLen of the digits 0-9. It
// returns ErrLength or ErrDigits, length first.
func Check(p string) error {
	if len(p) < MinLen || len(p) > MaxLen {
		return ErrLength
	}
	if strings.Trim(p, "0123456789") != "" {
		return ErrDigits
	}
	return nil
}

// Version is the only argon2 version accepted: 0x13, written "v=19".
const Version = argon2.Version

// The bounds a verifier's parameters must lie within.
const (
	// MaxMemory is 256 MiB, in KiB: more than a phone can spare.
	MaxMemory = 256 * 1024
	// MaxTime bounds the passes over memory.
	MaxTime = 16
	// MaxThreads bounds the lanes; more lanes add goroutines, not security, on a small board.
	MaxThreads = 16
	// MinSaltLen is the PHC string format's minimum salt, in bytes.
	MinSaltLen = 8
	// MaxSaltLen bounds the salt decoded from a verifier.
	MaxSaltLen = 64
	// MinKeyLen is the shortest hash worth comparing, in bytes.
	MinKeyLen = 16
	// MaxKeyLen bounds the hash decoded from a verifier.
	MaxKeyLen = 64
	// maxVerifier bounds the verifier string before it is split.
	maxVerifier = 256
)

const (
	prefix      = "$argon2id$v=19$"
	b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// Params are argon2id's cost parameters and the sizes of salt and hash.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams is what a phone hashes new PINs with: m=19456 KiB, t=2, p=1, a 16-byte salt
// and a 32-byte hash. That is OWASP's minimum for argon2id, chosen because a small ARM board
// must also verify within a key press and spare 19 MiB while a call is up.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// TestParams are for tests only: 8 KiB and one pass, so a test suite can hash many PINs
// quickly. A verifier made with them protects nothing; never ship one.
func TestParams() Params {
	return Params{Memory: 8, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Validate reports whether p lies within the bounds above, and within argon2's own rule that
// memory is at least 8 KiB per lane. It wraps [ErrParams].
func (p Params) Validate() error {
	switch {
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("%w: p=%d, want 1..%d", ErrParams, p.Threads, MaxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxMemory:
		// Below 8 KiB per lane x/crypto would quietly raise the memory, where the reference
		// implementation refuses; refusing keeps verifiers portable.
		return fmt.Errorf("%w: m=%d KiB, want %d..%d", ErrParams, p.Memory, 8*uint32(p.Threads), MaxMemory)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("%w: t=%d, want 1..%d", ErrParams, p.Time, MaxTime)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("%w: salt of %d bytes, want %d..%d", ErrParams, p.SaltLen, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("%w: hash of %d bytes, want %d..%d", ErrParams, p.KeyLen, MinKeyLen, MaxKeyLen)
	}
	return nil
}

// Verifier is a parsed PIN verifier.
type Verifier struct {
	Params Params // SaltLen and KeyLen match Salt and Key
	Salt   []byte
	Key    []byte
}

// Hash makes a verifier for pin with parameters p and a fresh salt read from rand (normally
// crypto/rand.Reader).
func Hash(pin string, p Params, rand io.Reader) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if pin == "" {
		return "", ErrEmptyPIN
	}
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return "", fmt.Errorf("pin: read salt: %w", err)
	}
	v := Verifier{Params: p, Salt: salt, Key: derive(pin, salt, p)}
	return v.String(), nil
}

func derive(pin string, salt []byte, p Params) []byte {
	return argon2.IDKey([]byte(pin), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// Verify reports whether pin matches verifier. The error is only for a verifier that does
// not parse; a wrong PIN is (false, nil).
func Verify(verifier, pin string) (bool, error) {
	v, err := Parse(verifier)
	if err != nil {
		return false, err
	}
	return v.Verify(pin), nil
}

// Verify reports whether pin matches. The comparison takes the same time wherever the
// hashes differ.
func (v Verifier) Verify(pin string) bool {
	got := derive(pin, v.Salt, v.Params)
	return subtle.ConstantTimeCompare(got, v.Key) == 1
}

// String returns the PHC string form, which Parse accepts back unchanged.
func (v Verifier) String() string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", prefix,
		v.Params.Memory, v.Params.Time, v.Params.Threads, enc.EncodeToString(v.Salt), enc.EncodeToString(v.Key))
}

// Parse reads a verifier in PHC string form. Only the canonical form is accepted: version
// 19, parameters m, t, p in that order in plain decimal, no other parameters, unpadded base64
// with zero trailing bits. So a verifier has one spelling, and [Verifier.String] gives it
// back. Parameters outside [MaxMemory] and the other bounds are refused with [ErrParams]
// before any hashing.
func Parse(verifier string) (Verifier, error) {
	if len(verifier) > maxVerifier {
		return Verifier{}, fmt.Errorf("%w: %d characters", ErrMalformed, len(verifier))
	}
	fields := strings.Split(verifier, "$")
	// "", "argon2id", "v=19", "m=...,t=...,p=...", salt, hash
	if len(fields) != 6 || fields[0] != "" {
		return Verifier{}, fmt.Errorf("%w: want $argon2id$v=19$m=M,t=T,p=P$SALT$HASH", ErrMalformed)
	}
	if fields[1] != "argon2id" {
		return Verifier{}, fmt.Errorf("%w: algorithm %q, want argon2id", ErrMalformed, fields[1])
	}
	if fields[2] != fmt.Sprintf("v=%d", Version) {
		if strings.HasPrefix(fields[2], "v=") {
			return Verifier{}, fmt.Errorf("%w: %q", ErrVersion, fields[2])
		}
		return Verifier{}, fmt.Errorf("%w: %q where v=%d belongs", ErrMalformed, fields[2], Version)
	}
	var p Params
	kv := strings.Split(fields[3], ",")
	if len(kv) != 3 {
		return Verifier{}, fmt.Errorf("%w: parameters %q, want m=M,t=T,p=P", ErrMalformed, fields[3])
	}
	m, err := decimal(kv[0], "m=", 32)
	if err != nil {
		return Verifier{}, err
	}
	t, err := decimal(kv[1], "t=", 32)
	if err != nil {
		return Verifier{}, err
	}
	threads, err := decimal(kv[2], "p=", 8)
	if err != nil {
		return Verifier{}, err
	}
	p.Memory, p.Time, p.Threads = uint32(m), uint32(t), uint8(threads)

	enc := base64.RawStdEncoding.Strict()
	// Checked before decoding so that the length of a hostile field costs nothing.
	if len(fields[4]) > enc.EncodedLen(MaxSaltLen) || len(fields[5]) > enc.EncodedLen(MaxKeyLen) {
		return Verifier{}, fmt.Errorf("%w: salt longer than %d bytes or hash longer than %d", ErrParams, MaxSaltLen, MaxKeyLen)
	}
	// encoding/base64 skips newlines; a verifier with one would have two spellings.
	for _, f := range fields[4:] {
		if strings.TrimLeft(f, b64Alphabet) != "" {
			return Verifier{}, fmt.Errorf("%w: %q is not unpadded standard base64", ErrMalformed, f)
		}
	}
	salt, err := enc.DecodeString(fields[4])
	if err != nil {
		return Verifier{}, fmt.Errorf("%w: salt: %w", ErrMalformed, err)
	}
	key, err := enc.DecodeString(fields[5])
	if err != nil {
		return Verifier{}, fmt.Errorf("%w: hash: %w", ErrMalformed, err)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.Validate(); err != nil {
		return Verifier{}, err
	}
	return Verifier{Params: p, Salt: salt, Key: key}, nil
}

// Lockout is the PIN-failure state of one caller ID: wrong PINs in a row, and, once there
// were too many, the time before which no PIN of that ID is checked. The zero Lockout is an
// ID with no failures. The call machine counts with it and the state database keeps it; it
// is defined here, beside the PINs it counts, so that the call machine need not link the
// database to name it.
type Lockout struct {
	Failures int
	// Until is zero while the ID is not locked out.
	Until time.Time
}

// decimal parses "name=value" where value is canonical decimal: digits only, no sign, no
// leading zero.
func decimal(s, name string, bits int) (uint64, error) {
	v, ok := strings.CutPrefix(s, name)
	if !ok || v == "" || (len(v) > 1 && v[0] == '0') || strings.TrimLeft(v, "0123456789") != "" {
		return 0, fmt.Errorf("%w: parameter %q, want %sN in plain decimal", ErrMalformed, s, name)
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		// Too large for its type: a cost, not a syntax, problem.
		return 0, fmt.Errorf("%w: %s: %w", ErrParams, s, err)
	}
	return n, nil
}
