package uplink

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// Vault is where objects go. Put returns nil only once the vault holds exactly size bytes
// whose SHA-256 is sum under key, replacing whatever the key held: that is when the phone may
// delete its copy.
type Vault interface {
	Put(ctx context.Context, key string, r io.ReaderAt, size int64, sum [32]byte) error
}

// Errors of Put.
var (
	// ErrChecksum: the bytes read, or the bytes the store holds, do not match the SHA-256
	// the spool committed. Nothing is deleted locally.
	ErrChecksum = errors.New("checksum does not match")
	// ErrUnconfirmed: the store accepted the upload but gave back neither the checksum sent
	// nor an ETag that matches, so the upload is not taken as confirmed.
	ErrUnconfirmed = errors.New("store did not confirm the checksum")
)

// DirVault is a local directory acting as the vault, with the bucket's key layout: the
// simulated phone's default.
type DirVault struct {
	path     string
	throttle *throttle
}

// NewDir is the vault in directory path, written at most bytesPerSecond (0: no cap).
func NewDir(path string, bytesPerSecond int64) *DirVault {
	return &DirVault{path: path, throttle: newThrottle(bytesPerSecond)}
}

// DirFile is where a directory vault rooted at root keeps key: the bucket's key layout as
// paths. A key that would leave the root is refused, whoever made it.
func DirFile(root, key string) (string, error) {
	p := filepath.FromSlash(key)
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("vault %s: key %q is outside the vault", root, key)
	}
	return filepath.Join(root, p), nil
}

// Put writes the object atomically (temporary file, fsync, rename), hashing what it copies:
// ErrChecksum if that is not sum.
func (d *DirVault) Put(ctx context.Context, key string, r io.ReaderAt, size int64, sum [32]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := DirFile(d.path, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("vault %s: %w", d.path, err)
	}
	return atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), d.throttle.reader(ctx, io.NewSectionReader(r, 0, size)))
		if err != nil {
			return err
		}
		if n != size || [32]byte(h.Sum(nil)) != sum {
			return fmt.Errorf("vault %s: %s: %w", d.path, key, ErrChecksum)
		}
		return nil
	})
}
