package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/internal/strictjson"
)

// Progress is how far the install of one release has come.
type Progress struct {
	// Image is the signed SHA-256 of the image target, Index the SHA-256 of its block index:
	// together they name the release the record belongs to.
	Image, Index [sha256.Size]byte
	// Length is the image's signed length.
	Length int64
	// Next is the first block not yet done: blocks [0, Next) are written into the slot,
	// synced, read back and checked against the index.
	Next int64
}

// ProgressStore keeps one Progress across restarts and reboots. Save must replace the record
// atomically and durably: after it returns, a power cut leaves the new record, and during it
// the old one or the new one, never a torn one. The agent keeps it in its state database.
type ProgressStore interface {
	// Load returns the record, the zero Progress if there is none, or an error wrapping
	// ErrProgress if what is stored is damaged (the install then starts over).
	Load() (Progress, error)
	Save(Progress) error
}

// progressVersion is the version of the encoding below; a record of another version is
// damaged to this code, and the install starts over.
const progressVersion = 1

type progressJSON struct {
	Version int    `json:"version"`
	Image   string `json:"image_sha256"`
	Index   string `json:"index_sha256"`
	Length  int64  `json:"length"`
	Next    int64  `json:"next_block"`
}

// MarshalBinary encodes the record as versioned JSON, the form FileStore keeps and a
// database may keep too.
func (p Progress) MarshalBinary() ([]byte, error) {
	return json.Marshal(progressJSON{Version: progressVersion, Image: hex.EncodeToString(p.Image[:]),
		Index: hex.EncodeToString(p.Index[:]), Length: p.Length, Next: p.Next})
}

// UnmarshalBinary decodes what MarshalBinary encoded; anything else wraps ErrProgress.
func (p *Progress) UnmarshalBinary(b []byte) error {
	var j progressJSON
	if err := strictjson.Decode(b, &j); err != nil {
		return fmt.Errorf("%w: %w", ErrProgress, err)
	}
	if j.Version != progressVersion {
		return fmt.Errorf("%w: version %d, this reads %d", ErrProgress, j.Version, progressVersion)
	}
	var q Progress
	for _, f := range []struct {
		s   string
		dst *[sha256.Size]byte
	}{{j.Image, &q.Image}, {j.Index, &q.Index}} {
		if n, err := hex.Decode(f.dst[:], []byte(f.s)); err != nil || n != sha256.Size || len(f.s) != 2*sha256.Size {
			return fmt.Errorf("%w: bad SHA-256 %q", ErrProgress, f.s)
		}
	}
	if j.Length < 0 || j.Next < 0 {
		return fmt.Errorf("%w: length %d, next block %d", ErrProgress, j.Length, j.Next)
	}
	q.Length, q.Next = j.Length, j.Next
	*p = q
	return nil
}

// FileStore keeps the record in a file, replaced atomically (internal/atomicfile): for tests
// and the simulated phone.
type FileStore struct{ Path string }

// Load reads the record; a missing file is no record.
func (s FileStore) Load() (Progress, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Progress{}, nil
	}
	if err != nil {
		return Progress{}, fmt.Errorf("install: progress: %w", err)
	}
	var p Progress
	if err := p.UnmarshalBinary(b); err != nil {
		return Progress{}, fmt.Errorf("install: progress %s: %w", s.Path, err)
	}
	return p, nil
}

// Save replaces the record: temporary file, fsync, rename, fsync of the directory.
func (s FileStore) Save(p Progress) error {
	b, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("install: progress: %w", err)
	}
	if err := atomicfile.Write(s.Path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("install: progress: %w", err)
	}
	return nil
}

var _ ProgressStore = FileStore{}
