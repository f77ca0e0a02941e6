// Package tufclient is the phone's side of distribution: it refreshes the TUF metadata of the
// vendor's repository with go-tuf's updater, and downloads targets (the registry, a delta, the
// facility's policy) straight to a writer, checked against the signed length and hash. It
// keeps promise 6: a phone uses nothing that the repository's keys did not sign, never goes
// back to an older version (go-tuf keeps the trusted metadata in the phone's data directory),
// and knows until when what it trusts is fresh.
package tufclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// Options configure a Client.
type Options struct {
	// Dir keeps the trusted metadata between runs (<data>/tuf).
	Dir string
	// Root is the root metadata installed at enrolment: trusted only until a newer root,
	// verified through it, is in Dir.
	Root []byte
	// URL is the repository's base (http, https or file): metadata/ and targets/ below it.
	URL string
	// HTTP carries requests; nil means a client with the timeouts below.
	HTTP *http.Client
	// MaxTarget refuses any target longer than this, whatever the metadata says.
	MaxTarget int64
}

// Errors.
var (
	// ErrNoTarget: the repository's targets do not list the name.
	ErrNoTarget = errors.New("tufclient: no such target")
	// ErrTooLarge: a target is longer than MaxTarget.
	ErrTooLarge = errors.New("tufclient: target larger than allowed")
	// ErrMismatch: a target's bytes do not match its signed length or hash.
	ErrMismatch = errors.New("tufclient: target does not match its signed length and hash")
)

// Client refreshes and downloads. It is not safe for concurrent use.
type Client struct {
	o       Options
	fetcher *fetcher
	up      *updater.Updater
	// Damaged lists the cached metadata files the last Refresh found damaged and dropped.
	Damaged []string
	// RootChanged is set by New when the enrolled root is not the one the cache in Dir grew
	// from: the cache was dropped, and the new root is trusted from here on.
	RootChanged *RootChange
}

// RootChange names the enrolled roots, old and new, by the SHA-256 of their bytes.
type RootChange struct{ Old, New string }

// enrolledRootFile records which enrolled root the cache in Dir grew from.
const enrolledRootFile = "enrolled-root.sha256"

// Target is a verified description of one target.
type Target struct {
	Name   string
	Length int64
	SHA256 []byte
	// Custom is the target's custom metadata (e.g. {"version": 7}), as signed.
	Custom json.RawMessage
}

// New prepares a client. Nothing is fetched until Refresh.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
		return nil, fmt.Errorf("tufclient: repository URL %q: want http, https or file", o.URL)
	}
	if len(o.Root) == 0 {
		return nil, errors.New("tufclient: no trusted root")
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	if o.MaxTarget <= 0 {
		o.MaxTarget = 64 << 20
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tufclient: %w", err)
	}
	c := &Client{o: o, fetcher: &fetcher{http: o.HTTP}}
	if err := c.checkEnrolledRoot(); err != nil {
		return nil, err
	}
	return c, nil
}

// trustedRoot is the newest root the phone verified, or the enrolled one when the cached copy
// is missing or damaged (a damaged cache costs a walk along the root chain, nothing more).
func (c *Client) trustedRoot() []byte {
	b, err := os.ReadFile(filepath.Join(c.o.Dir, "root.json"))
	if err == nil {
		if _, err := metadata.Root().FromBytes(b); err == nil {
			return b
		}
	}
	return c.o.Root
}

// Refresh brings the trusted metadata up to date and returns until when it is fresh: the
// earliest expiry of the root, timestamp, snapshot and targets it now trusts. On error the
// previous trusted metadata stays in Dir, untouched by whatever was refused.
func (c *Client) Refresh(ctx context.Context) (time.Time, error) {
	c.dropDamaged()
	cfg, err := config.New(c.o.URL+"/metadata", c.trustedRoot())
	if err != nil {
		return time.Time{}, fmt.Errorf("tufclient: %w", err)
	}
	cfg.RemoteTargetsURL = c.o.URL + "/targets"
	cfg.LocalMetadataDir = c.o.Dir
	cfg.LocalTargetsDir = filepath.Join(c.o.Dir, "targets")
	cfg.DisableLocalCache = false
	cfg.Fetcher = c.fetcher
	c.fetcher.ctx = ctx
	up, err := updater.New(cfg)
	if err != nil {
		// The enrolled root itself does not verify: nothing can be trusted.
		return time.Time{}, fmt.Errorf("tufclient: trusted root: %w", err)
	}
	if err := up.Refresh(); err != nil {
		return time.Time{}, fmt.Errorf("tufclient: refresh: %w", err)
	}
	c.up = up
	t := up.GetTrustedMetadataSet()
	until := t.Root.Signed.Expires
	for _, e := range []time.Time{t.Timestamp.Signed.Expires, t.Snapshot.Signed.Expires, t.Targets[metadata.TARGETS].Signed.Expires} {
		if e.Before(until) {
			until = e
		}
	}
	return until, nil
}

// dropDamaged removes cached metadata files that do not even parse (a flash fault, a torn
// write): go-tuf would stop at them. What parses but does not verify, go-tuf itself replaces
// from the repository. The versions a dropped file held are lost to rollback protection, but
// the installed registry and policy keep their own versions, which never go down.
func (c *Client) dropDamaged() {
	parse := map[string]func([]byte) error{
		"root.json":      func(b []byte) error { _, err := metadata.Root().FromBytes(b); return err },
		"timestamp.json": func(b []byte) error { _, err := metadata.Timestamp().FromBytes(b); return err },
		"snapshot.json":  func(b []byte) error { _, err := metadata.Snapshot().FromBytes(b); return err },
		"targets.json":   func(b []byte) error { _, err := metadata.Targets().FromBytes(b); return err },
	}
	for name, p := range parse {
		path := filepath.Join(c.o.Dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if err := p(b); err != nil {
			c.Damaged = append(c.Damaged, fmt.Sprintf("%s: %v", name, err))
			os.Remove(path)
		}
	}
}

// Target describes a target of the metadata trusted by the last successful Refresh.
func (c *Client) Target(name string) (Target, error) {
	if c.up == nil {
		return Target{}, errors.New("tufclient: no successful refresh yet")
	}
	tf, ok := c.up.GetTopLevelTargets()[name]
	if !ok {
		return Target{}, fmt.Errorf("%w: %s", ErrNoTarget, name)
	}
	sum, ok := tf.Hashes["sha256"]
	if !ok || len(sum) != sha256.Size {
		return Target{}, fmt.Errorf("tufclient: target %s has no sha256", name)
	}
	t := Target{Name: name, Length: tf.Length, SHA256: sum}
	if tf.Custom != nil {
		t.Custom = *tf.Custom
	}
	return t, nil
}

// Fetch streams a target into w and returns an error (wrapping ErrMismatch or ErrTooLarge) if
// its bytes are not exactly the signed ones; the caller must discard what w received then.
func (c *Client) Fetch(ctx context.Context, t Target, w io.Writer) error {
	if t.Length > c.o.MaxTarget {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLarge, t.Name, t.Length, c.o.MaxTarget)
	}
	// Consistent snapshots: the file is named by its hash, so a publish under way never
	// swaps it under a download.
	dir, base := path.Split(t.Name)
	rel := dir + fmt.Sprintf("%x", t.SHA256) + "." + base
	body, err := c.fetcher.open(ctx, c.o.URL+"/targets/"+rel)
	if err != nil {
		return fmt.Errorf("tufclient: %s: %w", t.Name, err)
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(body, t.Length+1))
	if err != nil {
		return fmt.Errorf("tufclient: %s: %w", t.Name, err)
	}
	return check(t, n, h)
}

func check(t Target, n int64, h hash.Hash) error {
	if n != t.Length {
		return fmt.Errorf("%w: %s: %d bytes, signed length %d", ErrMismatch, t.Name, n, t.Length)
	}
	if !bytes.Equal(h.Sum(nil), t.SHA256) {
		return fmt.Errorf("%w: %s: sha256 differs", ErrMismatch, t.Name)
	}
	return nil
}

// fetcher serves go-tuf's metadata downloads and our target downloads, over HTTP(S) or from a
// folder (file://, for a repository on a USB stick or the simulated phone's demo).
type fetcher struct {
	http *http.Client
	ctx  context.Context
}

func (f *fetcher) open(ctx context.Context, raw string) (io.ReadCloser, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		return os.Open(u.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	res, err := f.http.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		return nil, &metadata.ErrDownloadHTTP{StatusCode: res.StatusCode, URL: raw}
	}
	return res.Body, nil
}

// DownloadFile is go-tuf's fetcher interface: at most maxLength bytes.
func (f *fetcher) DownloadFile(raw string, maxLength int64, _ time.Duration) ([]byte, error) {
	ctx := f.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	body, err := f.open(ctx, raw)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// go-tuf reads a missing next root version as "no newer root".
			return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: raw}
		}
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is longer than %d bytes", raw, maxLength)}
	}
	return b, nil
}

// checkEnrolledRoot drops the cache when the enrolled root is not the one it grew from: a
// re-enrolment with a new root is the technician's decision to trust it, and a newer root
// cached under the old one must not overrule it.
func (c *Client) checkEnrolledRoot() error {
	sum := sha256.Sum256(c.o.Root)
	now := hex.EncodeToString(sum[:])
	marker := filepath.Join(c.o.Dir, enrolledRootFile)
	b, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("tufclient: %w", err)
	case strings.TrimSpace(string(b)) == now:
		return nil
	default:
		entries, err := os.ReadDir(c.o.Dir)
		if err != nil {
			return fmt.Errorf("tufclient: %w", err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(c.o.Dir, e.Name())); err != nil {
				return fmt.Errorf("tufclient: reset for the new root: %w", err)
			}
		}
		c.RootChanged = &RootChange{Old: strings.TrimSpace(string(b)), New: now}
	}
	if err := atomicfile.Write(marker, []byte(now+"\n"), 0o600); err != nil {
		return fmt.Errorf("tufclient: %w", err)
	}
	return nil
}
