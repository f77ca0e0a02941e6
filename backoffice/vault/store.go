package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/uplink"
)

// store is the vault's objects as the back office uses them, in a bucket or a directory
// with the same keys (uplink.NewDir's layout), as restic keeps a repository in either.
type store interface {
	// list yields every object under prefix in lexical order of keys, or an error and stops.
	list(ctx context.Context, prefix string) iter.Seq2[object, error]
	// open reads an object; a key that is not there wraps fs.ErrNotExist.
	open(ctx context.Context, key string) (io.ReadCloser, error)
	// put writes an object whole, replacing what the key held.
	put(ctx context.Context, key string, b []byte) error
	// remove deletes an object for good (a power cut after it returns does not bring it back).
	remove(ctx context.Context, key string) error
}

// object is one listed object: its key and size.
type object struct {
	key  string
	size int64
}

// bucket is an S3-compatible bucket.
type bucket struct {
	cl   *minio.Client
	name string
}

func (b *bucket) list(ctx context.Context, prefix string) iter.Seq2[object, error] {
	return func(yield func(object, error) bool) {
		// Cancelled when the caller stops early, so that minio's lister goroutine ends.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for o := range b.cl.ListObjects(ctx, b.name, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				yield(object{}, o.Err)
				return
			}
			if !yield(object{o.Key, o.Size}, nil) {
				return
			}
		}
	}
}

func (b *bucket) open(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := b.cl.GetObject(ctx, b.name, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	// GetObject asks nothing of the store until the first read: Stat makes a missing key
	// an error here, as it is for a directory.
	if _, err := o.Stat(); err != nil {
		o.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
		}
		return nil, err
	}
	return o, nil
}

func (b *bucket) put(ctx context.Context, key string, data []byte) error {
	_, err := b.cl.PutObject(ctx, b.name, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ContentType: "application/json"})
	return err
}

func (b *bucket) remove(ctx context.Context, key string) error {
	return b.cl.RemoveObject(ctx, b.name, key, minio.RemoveObjectOptions{})
}

// dir is a local directory holding one file per object, at the object's key.
type dir struct {
	root string
}

// file is where key lives, as the phone's uplink writes it. Keys come from listings and from
// uplink's key functions over names checked by the caller; one that would leave the root is
// refused all the same.
func (d *dir) file(key string) (string, error) { return uplink.DirFile(d.root, key) }

func (d *dir) list(ctx context.Context, prefix string) iter.Seq2[object, error] {
	return func(yield func(object, error) bool) {
		// A missing vault is an error (a wrong dir in vault.json must not read as empty); a
		// missing directory inside it only means no keys.
		if _, err := os.Stat(d.root); err != nil {
			yield(object{}, fmt.Errorf("vault: %w", err))
			return
		}
		start := filepath.Join(d.root, filepath.FromSlash(path.Dir(prefix+"x")))
		err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return filepath.SkipAll
			}
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			// A name starting with a dot is a file the phone is still writing
			// (atomicfile's temporary name): no object has one.
			if strings.HasPrefix(e.Name(), ".") && p != start {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !e.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(d.root, p)
			if err != nil {
				return err
			}
			key := filepath.ToSlash(rel)
			if !strings.HasPrefix(key, prefix) {
				return nil
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			if !yield(object{key, info.Size()}, nil) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			yield(object{}, err)
		}
	}
}

// errStop ends a walk whose caller stopped listening.
var errStop = errors.New("stop")

func (d *dir) open(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.file(key)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

func (d *dir) put(_ context.Context, key string, b []byte) error {
	p, err := d.file(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFunc(p, 0o600, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// remove deletes the file, then the directories it leaves empty up to the root: a purged
// call's directory would otherwise still name it.
func (d *dir) remove(_ context.Context, key string) error {
	p, err := d.file(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(p)
	for parent != d.root && strings.HasPrefix(parent, d.root) {
		// Fails when the directory is not empty (or a phone is writing there): that is the
		// end of what is left empty.
		if os.Remove(parent) != nil {
			break
		}
		parent = filepath.Dir(parent)
	}
	return atomicfile.SyncDir(parent)
}
