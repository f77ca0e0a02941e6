// Package audit is the phone's tamper-evident record of what it decided and who touched it:
// every call decision (with the registry and policy it was decided under) and every console
// action, appended to a hash chain and signed with the device key. It keeps promises 1 and 7
// checkable after the fact: an auditor can show which registry a call was decided under, and
// that no entry was removed, changed or reordered, without the log holding the numbers of
// privileged or free calls (they appear only as a keyed hash, see NumberMAC).
//
// The log is a file of JSON lines. Each entry's hash covers the previous entry's hash and the
// entry itself; its signature covers the hash. A line cut short by a power cut is the only
// damage Open repairs (it was never acknowledged); anything else is reported by Verify.
//
// # Key changes
//
// The device key changes when a phone is enrolled (again). The change is an entry of the
// chain (kind KindKeyChange, see Log.ChangeKey): signed by the key in force until then, it
// names the new public key, and every entry after it must be signed by the new key. Verify
// starts from the key the log starts with and follows the changes forward, so an auditor
// needs that first key and learns every later one from the chain itself; Summary.Key is the
// key in force at the end, which must be the phone's current key (its hello, its start-up
// line). Verification does not go the other way, from the current key back, because
// nothing then vouches for the older keys but the current one: whoever holds the current
// key (a phone taken over today) could rewrite the history before it with keys of their
// own making. Forward, the entries before a change stay bound to a key that was destroyed
// at the change.
package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/wallphone/wallphone/internal/strictjson"
)

// domain separates the chain's hashes from any other SHA-256 the phone computes.
const domain = "wallphone-audit-v1\n"

// genesis is the "previous hash" of the first entry.
var genesis = hex.EncodeToString(make([]byte, sha256.Size))

// maxLine bounds one entry; an audit entry is a few hundred bytes.
const maxLine = 64 << 10

// Entry is one line of the log.
type Entry struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Kind   string            `json:"kind"`
	Fields map[string]string `json:"fields,omitempty"`
	Prev   string            `json:"prev"`
	Hash   string            `json:"hash"`
	Sig    string            `json:"sig"`
}

// Errors from Verify and Open.
var (
	// ErrBroken: the chain does not hold (an entry was changed, removed, reordered or forged).
	ErrBroken = errors.New("audit: chain broken")
	// ErrSignature: an entry's signature does not verify under the device key in force at
	// that entry (the key Verify was given, or the last one a key change named).
	ErrSignature = errors.New("audit: bad signature")
	// ErrKeyChange: a key-change entry does not name a valid Ed25519 public key.
	ErrKeyChange = errors.New("audit: key change names no valid key")
)

// KindKeyChange is the kind of the entry that hands the log over to a new device key. Its
// fields: FieldNewKey, the new public key in hex; "new_key_fingerprint" and
// "old_key_fingerprint", for people reading the log.
const KindKeyChange = "device_key_changed"

// FieldNewKey is the field of a key-change entry that holds the new public key (hex).
const FieldNewKey = "new_key"

// Log appends to one audit file. It is safe for concurrent use: the call loop and the console
// both append.
type Log struct {
	mu   sync.Mutex // guards the fields below, and the file's end: one append at a time
	f    *os.File
	key  ed25519.PrivateKey // signs the next entry; ChangeKey replaces it
	now  func() time.Time
	seq  uint64
	last string
}

// Options configure Open.
type Options struct {
	// Key signs every entry: the device key.
	Key ed25519.PrivateKey
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Open opens or creates the log at path and finds the head of its chain. A last line cut
// short by a crash is cut off (Repaired reports it); it was never acknowledged to anyone.
func Open(path string, o Options) (*Log, bool, error) {
	if len(o.Key) != ed25519.PrivateKeySize {
		return nil, false, errors.New("audit: a device key is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("audit: %w", err)
	}
	l := &Log{f: f, key: o.Key, now: o.Now, last: genesis}
	repaired, err := l.findHead()
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("audit %s: %w", path, err)
	}
	return l, repaired, nil
}

// findHead reads the last complete entry (streaming: the log may be large) and cuts off a
// torn tail.
func (l *Log) findHead() (bool, error) {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	r := bufio.NewReaderSize(l.f, 64<<10)
	var good int64 // bytes up to the end of the last complete line
	var last []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return false, fmt.Errorf("entry at byte %d longer than %d bytes", good, maxLine)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err
		}
		good += int64(len(line))
		last = append(last[:0], line...)
	}
	repaired := false
	if st, err := l.f.Stat(); err != nil {
		return false, err
	} else if st.Size() != good {
		if err := l.f.Truncate(good); err != nil {
			return false, err
		}
		repaired = true
	}
	if len(last) > 0 {
		var e Entry
		if err := json.Unmarshal(last, &e); err != nil {
			return false, fmt.Errorf("%w: last entry does not parse: %v", ErrBroken, err)
		}
		if want := e.computeHash(); e.Hash != want {
			return false, fmt.Errorf("%w: last entry (seq %d) does not match its hash", ErrBroken, e.Seq)
		}
		l.seq, l.last = e.Seq, e.Hash
	}
	_, err := l.f.Seek(0, io.SeekEnd)
	return repaired, err
}

// Append adds one entry and returns once it is on flash.
func (l *Log) Append(kind string, fields map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(kind, fields)
}

// ChangeKey hands the log over to next: it appends a KindKeyChange entry naming next's public
// key, signed by the key in force, and from then on signs with next. Both happen under the
// lock, so no entry is ever signed by the old key after the change or by the new one before
// it. If the entry cannot be written, the log keeps its key and ChangeKey returns the error:
// the caller must then not put next in force anywhere else either.
func (l *Log) ChangeKey(next ed25519.PrivateKey) error {
	if len(next) != ed25519.PrivateKeySize {
		return errors.New("audit: the new device key is not an Ed25519 key")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pub := next.Public().(ed25519.PublicKey)
	err := l.append(KindKeyChange, map[string]string{
		FieldNewKey:           hex.EncodeToString(pub),
		"new_key_fingerprint": fingerprint(pub),
		"old_key_fingerprint": fingerprint(l.key.Public().(ed25519.PublicKey)),
	})
	if err != nil {
		return err
	}
	l.key = next
	return nil
}

// fingerprint is identity.Fingerprint (the first 16 bytes of the key's SHA-256 in hex), the
// form technicians write down; audit does not import identity, which it does not otherwise need.
func fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// append writes one entry; l.mu is held.
func (l *Log) append(kind string, fields map[string]string) error {
	e := Entry{Seq: l.seq + 1, Time: l.now().UTC(), Kind: kind, Fields: fields, Prev: l.last}
	e.Hash = e.computeHash()
	h, _ := hex.DecodeString(e.Hash)
	e.Sig = hex.EncodeToString(ed25519.Sign(l.key, h))
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	l.seq, l.last = e.Seq, e.Hash
	return nil
}

// Head is the sequence number and hash of the last entry: what a status report or an uplink
// anchors elsewhere, so that cutting entries off the end shows.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.last
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

func (e *Entry) computeHash() string {
	body, err := json.Marshal(struct {
		Seq    uint64            `json:"seq"`
		Time   time.Time         `json:"time"`
		Kind   string            `json:"kind"`
		Fields map[string]string `json:"fields,omitempty"`
	}{e.Seq, e.Time, e.Kind, e.Fields})
	if err != nil {
		panic(err) // strings, a time and an integer always marshal
	}
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte(e.Prev))
	h.Write([]byte{'\n'})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Summary is what Verify found.
type Summary struct {
	Entries uint64
	Head    string
	First   time.Time
	Last    time.Time
	// Key is the device key in force after the last entry: the key Verify was given, or the
	// one the last key change named (nil if neither). An auditor checks it against the
	// phone's current key.
	Key ed25519.PublicKey
	// KeyChanges are the key-change entries, in order.
	KeyChanges []KeyChange
}

// KeyChange is one key-change entry as Verify found it.
type KeyChange struct {
	Seq  uint64
	Time time.Time
	Key  ed25519.PublicKey // the key in force from the entry after it
}

// Verify walks a whole log and checks every link and, if pub is given, every signature:
// pub is the key the log starts with, and each key-change entry, once its own signature
// verifies under the key in force, puts the key it names in force for the entries after it.
// Without pub only the chain is checked (and the key changes are still reported). It stops
// at the first fault and names its line.
func Verify(r io.Reader, pub ed25519.PublicKey) (Summary, error) {
	s := Summary{Key: pub}
	prev := genesis
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	line := 0
	for sc.Scan() {
		line++
		var e Entry
		if err := strictjson.Decode(sc.Bytes(), &e); err != nil {
			return s, fmt.Errorf("line %d: %w: does not parse: %v", line, ErrBroken, err)
		}
		switch {
		case e.Seq != s.Entries+1:
			return s, fmt.Errorf("line %d: %w: sequence %d, want %d (an entry is missing or out of order)", line, ErrBroken, e.Seq, s.Entries+1)
		case e.Prev != prev:
			return s, fmt.Errorf("line %d: %w: does not follow the entry before it", line, ErrBroken)
		case e.Hash != e.computeHash():
			return s, fmt.Errorf("line %d: %w: entry changed after it was written", line, ErrBroken)
		}
		if pub != nil {
			h, _ := hex.DecodeString(e.Hash)
			sig, err := hex.DecodeString(e.Sig)
			if err != nil || !ed25519.Verify(s.Key, h, sig) {
				return s, fmt.Errorf("line %d: %w (key in force: %s)", line, ErrSignature, fingerprint(s.Key))
			}
		}
		if e.Kind == KindKeyChange {
			k, err := hex.DecodeString(e.Fields[FieldNewKey])
			if err != nil || len(k) != ed25519.PublicKeySize {
				return s, fmt.Errorf("line %d: %w: %s %q", line, ErrKeyChange, FieldNewKey, e.Fields[FieldNewKey])
			}
			s.Key = ed25519.PublicKey(k)
			s.KeyChanges = append(s.KeyChanges, KeyChange{Seq: e.Seq, Time: e.Time, Key: s.Key})
		}
		if s.Entries == 0 {
			s.First = e.Time
		}
		s.Entries, s.Head, s.Last, prev = e.Seq, e.Hash, e.Time, e.Hash
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("line %d: %w", line+1, err)
	}
	return s, nil
}

// NumberMAC is the keyed hash that stands for a number the log must not hold (privileged and
// free calls). Only someone holding the facility's audit key can match a number to it:
// without the key, trying every phone number gets nowhere.
func NumberMAC(key []byte, e164 string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("wallphone-number-v1\n"))
	m.Write([]byte(e164))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// ParseKey reads an audit key file: hex, at least 32 bytes.
func ParseKey(b []byte) ([]byte, error) {
	k, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("audit key: not hex: %w", err)
	}
	if len(k) < 32 {
		return nil, fmt.Errorf("audit key: %d bytes, want at least 32", len(k))
	}
	return k, nil
}

// LastKeyChange returns the key the last key-change entry of the log at path hands over to,
// or nil if there is none (or no log). It reads the log as a stream and checks nothing else:
// it tells a start-up whether an enrolment cut short got as far as recording its new key.
func LastKeyChange(path string) (ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	var last ed25519.PublicKey
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		// Cheap test first: most entries are decisions.
		if !bytes.Contains(sc.Bytes(), []byte(KindKeyChange)) {
			continue
		}
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Kind != KindKeyChange {
			continue
		}
		if k, err := hex.DecodeString(e.Fields[FieldNewKey]); err == nil && len(k) == ed25519.PublicKeySize {
			last = k
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return last, nil
}
