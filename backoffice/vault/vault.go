// Package vault is the back office's side of the vault, used by wallphonectl with the
// vault's admin credentials: it carries out the phones' signed purge requests (promise 5: a
// recording found to be privileged is destroyed upstream too) and fetches a call's sealed
// objects for an investigator. The vault is a bucket or, as the simulated phone's by default,
// a directory with the same keys: every operation works on either.
//
// A purge request is acted on only if its signature verifies with the key enrolled for the
// device that the request and its object key both name; anything else is refused and
// nothing is deleted. Each purge leaves a receipt object naming what was deleted.
package vault

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/uplink"
)

// Errors.
var (
	// ErrRefused wraps the reason a purge request was not carried out: bad signature, a key
	// not enrolled for the device, a request whose fields disagree with its key.
	ErrRefused = errors.New("purge request refused")
	// ErrEnrolled is wrapped by ParseEnrolled's errors.
	ErrEnrolled = errors.New("enrolled devices file")
)

// maxRequest bounds a purge request read from the vault: they are a few hundred bytes.
const maxRequest = 64 << 10

// Vault is the vault with admin access: a bucket with the admin's credentials, or the
// directory a simulated phone ships to (uplink.NewDir), with the same keys.
type Vault struct {
	st store
}

// New opens the vault of c: its bucket with c's keys (the admin's), or its directory when
// c.Dir is set. transport is for a bucket only (nil: the default).
func New(c uplink.Config, transport http.RoundTripper) (*Vault, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Dir != "" {
		return &Vault{st: &dir{root: filepath.Clean(c.Dir)}}, nil
	}
	host, secure := c.Host()
	cl, err := minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure: secure, Region: c.RegionOrDefault(), Transport: transport, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, err
	}
	return &Vault{st: &bucket{cl: cl, name: c.Bucket}}, nil
}

// Enrolled maps a device id to the fingerprint of its enrolled signing key
// (identity.Fingerprint).
type Enrolled map[string]string

// ParseEnrolled reads the enrolled devices file: one "DEVICE-ID FINGERPRINT" per line, blank
// lines and # comments allowed, each device once.
func ParseEnrolled(b []byte) (Enrolled, error) {
	e := Enrolled{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) != 2:
			return nil, fmt.Errorf("%w: line %d: want DEVICE-ID FINGERPRINT", ErrEnrolled, n)
		case !spool.ValidCallID(f[0]):
			return nil, fmt.Errorf("%w: line %d: device id %q is not 1 to 64 of [A-Za-z0-9_-]", ErrEnrolled, n, f[0])
		case len(f[1]) != 32 || !isHex(f[1]):
			return nil, fmt.Errorf("%w: line %d: fingerprint %q is not 32 hex digits", ErrEnrolled, n, f[1])
		case e[f[0]] != "":
			return nil, fmt.Errorf("%w: line %d: device %s enrolled twice", ErrEnrolled, n, f[0])
		}
		e[f[0]] = strings.ToLower(f[1])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnrolled, err)
	}
	return e, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// Receipt is what the back office leaves at receipts/<facility>/<device>/<call>.json.
//
// A receipt of a purge request names the request; one of the vault sweep has none, says
// FoundBy "vault-sweep", and its registry version is the one that made the number privileged.
type Receipt struct {
	Format          string    `json:"format"`
	Request         string    `json:"request,omitempty"`
	RequestSHA256   string    `json:"request_sha256,omitempty"`
	FoundBy         string    `json:"found_by,omitempty"`
	Facility        string    `json:"facility"`
	DeviceID        string    `json:"device_id"`
	DeviceKey       string    `json:"device_key"`
	CallID          string    `json:"call_id"`
	Reason          string    `json:"reason"`
	RegistryVersion uint64    `json:"registry_version"`
	Requested       time.Time `json:"requested,omitzero"`
	Purged          time.Time `json:"purged"`
	Deleted         []string  `json:"deleted"`
}

// ReceiptFormat names the receipt layout.
const ReceiptFormat = "wallphone-purge-receipt/1"

// Outcome is what became of one purge request: a receipt, or an error (wrapping ErrRefused
// when the request was refused, in which case it is left in the vault for inspection).
type Outcome struct {
	Key     string
	Receipt *Receipt
	Err     error
}

// Purge carries out every purge request in the vault, calling report with each outcome. Its
// own error is for the vault itself failing (listing); a refused or failed request is an
// Outcome and the rest go on.
func (v *Vault) Purge(ctx context.Context, enrolled Enrolled, now func() time.Time, report func(Outcome)) error {
	// Listed first, then acted on: purging removes objects, and a listing that is read while
	// its directory changes may skip or repeat one.
	var keys []string
	for obj, err := range v.st.list(ctx, uplink.PurgePrefix) {
		key := obj.key
		if err != nil {
			return fmt.Errorf("list %s: %w", uplink.PurgePrefix, err)
		}
		keys = append(keys, key)
	}
	for _, key := range keys {
		r, err := v.purgeOne(ctx, key, enrolled, now)
		report(Outcome{Key: key, Receipt: r, Err: err})
	}
	return nil
}

func (v *Vault) purgeOne(ctx context.Context, key string, enrolled Enrolled, now func() time.Time) (*Receipt, error) {
	fac, dev, call, ok := uplink.ParsePurgeKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not purge/<facility>/<device>/<call>.json", ErrRefused, key)
	}
	b, err := v.get(ctx, key, maxRequest)
	if err != nil {
		return nil, err
	}
	req, pub, err := purge.Verify(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	fp := identity.Fingerprint(pub)
	switch {
	case req.DeviceID != dev || req.CallID != call:
		return nil, fmt.Errorf("%w: the request names device %s call %s, its key device %s call %s", ErrRefused, req.DeviceID, req.CallID, dev, call)
	case enrolled[dev] == "":
		return nil, fmt.Errorf("%w: device %s is not enrolled", ErrRefused, dev)
	case enrolled[dev] != fp:
		return nil, fmt.Errorf("%w: signed by key %s, but device %s is enrolled with %s", ErrRefused, fp, dev, enrolled[dev])
	}
	sum := sha256.Sum256(b)
	rc := &Receipt{Format: ReceiptFormat, Request: key, RequestSHA256: hex.EncodeToString(sum[:]), Facility: fac,
		DeviceID: dev, DeviceKey: fp, CallID: call, Reason: req.Reason, RegistryVersion: req.RegistryVersion, Requested: req.Requested}
	if err := v.destroy(ctx, rc, key, now); err != nil {
		return nil, err
	}
	return rc, nil
}

// destroy deletes every object of rc's call and leaves rc as its receipt. last is the
// object that says the call is to be destroyed (the purge request, or for a sweep the
// call's own manifest): it is deleted after the receipt is written, so that a run cut short
// anywhere finds the call again and finishes it. A call destroyed before (a request the
// phone sent again after a crash, a sweep cut short) keeps its first receipt's list of what
// was deleted.
func (v *Vault) destroy(ctx context.Context, rc *Receipt, last string, now func() time.Time) error {
	rkey := uplink.ReceiptKey(rc.Facility, rc.DeviceID, rc.CallID)
	if old, err := v.get(ctx, rkey, 1<<20); err == nil {
		var prev Receipt
		if json.Unmarshal(old, &prev) == nil {
			rc.Deleted = prev.Deleted
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	prefix := uplink.CallPrefix(rc.Facility, rc.DeviceID, rc.CallID)
	var doomed []string
	for obj, err := range v.st.list(ctx, prefix) {
		key := obj.key
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if key != last {
			doomed = append(doomed, key)
		}
	}
	for _, key := range doomed {
		if err := v.st.remove(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		rc.Deleted = appendNew(rc.Deleted, key)
	}
	// Listed again: a store that answered a delete without deleting is caught here.
	if err := v.gone(ctx, prefix, last); err != nil {
		return err
	}
	lastInCall := strings.HasPrefix(last, prefix)
	if lastInCall {
		rc.Deleted = appendNew(rc.Deleted, last)
	}
	if rc.Deleted == nil {
		rc.Deleted = []string{}
	}
	rc.Purged = now().UTC()
	out, err := json.MarshalIndent(rc, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if err := v.st.put(ctx, rkey, out); err != nil {
		return fmt.Errorf("write receipt %s: %w", rkey, err)
	}
	if err := v.st.remove(ctx, last); err != nil {
		return fmt.Errorf("delete %s after writing its receipt: %w", last, err)
	}
	if lastInCall {
		return v.gone(ctx, prefix, "")
	}
	return nil
}

// appendNew appends key to keys unless it is there.
func appendNew(keys []string, key string) []string {
	if slices.Contains(keys, key) {
		return keys
	}
	return append(keys, key)
}

// gone checks that no object is left under prefix but except.
func (v *Vault) gone(ctx context.Context, prefix, except string) error {
	for obj, err := range v.st.list(ctx, prefix) {
		key := obj.key
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if key != except {
			return fmt.Errorf("%s is still in the vault after its deletion", key)
		}
	}
	return nil
}

func (v *Vault) get(ctx context.Context, key string, limit int64) ([]byte, error) {
	o, err := v.st.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return b, nil
}

// Fetch downloads every object of a call into dir, where spool.FetchedPaths says and
// recordings decrypt reads them: the manifest, the call record, and the segments under the
// names they have in a spool. It returns how many it wrote.
func (v *Vault) Fetch(ctx context.Context, facility, device, callID, dir string) (int, error) {
	// Names, not paths: "../x" must not reach outside the vault's layout (or, for a
	// directory vault, outside the directory).
	for what, name := range map[string]string{"facility": facility, "device": device, "call": callID} {
		if !spool.ValidCallID(name) {
			return 0, fmt.Errorf("%s id %q: %w", what, name, spool.ErrBadID)
		}
	}
	local := spool.FetchedPaths(dir)
	if err := os.MkdirAll(local.SegmentDir, 0o700); err != nil {
		return 0, err
	}
	// Objects are told apart by the last element of their key, as uplink names them; a
	// segment's is its file name in a spool.
	manifest := path.Base(uplink.ManifestKey(facility, device, callID))
	record := path.Base(uplink.RecordKey(facility, device, callID))
	prefix := uplink.CallPrefix(facility, device, callID)
	n := 0
	for obj, err := range v.st.list(ctx, prefix) {
		key := obj.key
		if err != nil {
			return n, fmt.Errorf("list %s: %w", prefix, err)
		}
		var dst string
		switch name := path.Base(key); name {
		case manifest:
			dst = local.Manifest
		case record:
			dst = local.Record
		default:
			dst = filepath.Join(local.SegmentDir, name)
		}
		obj, err := v.st.open(ctx, key)
		if err != nil {
			return n, fmt.Errorf("fetch %s: %w", key, err)
		}
		err = atomicfile.WriteFunc(dst, 0o600, func(w io.Writer) error { _, err := io.Copy(w, obj); return err })
		obj.Close()
		if err != nil {
			return n, fmt.Errorf("fetch %s: %w", key, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("no objects under %s", prefix)
	}
	return n, nil
}
