// Package uplink drains the phone's spool to the facility's vault: any S3-compatible object
// store (AWS S3, MinIO, Ceph RGW, Versity) reached with write-only credentials, or a local
// directory on the simulated phone.
//
// It keeps promise 4 (nothing recorded is lost, and what is upstream is there exactly once):
// every object has a key fixed by what it is (see [SegmentKey]), so a file sent again after a
// crash overwrites its own object; the store must confirm each upload with a matching
// checksum (the SHA-256 the spool committed) before the local copy is removed, and the spool
// marks, removes and forgets the file in that order, so a crash at any point leaves the file
// either on the phone or in the vault, and an upload repeated at worst. Outages of hours or
// days are normal: every failure is retried, forever, with exponential backoff and jitter.
// It keeps its part of promise 3: it only ever ships ciphertext (segments and manifests as
// the spool holds them; call records sealed with age here, since they hold numbers) and the
// phone's credentials cannot read anything back. Purge requests (promise 5) go first, to
// their own prefix, where the back office's `wallphonectl vault purge` finds them.
//
// Call records stay in state.db after they are shipped: destroy-on-discovery (package
// purge) needs them to find a past call whose number became privileged.
//
// Memory does not grow with the backlog: the spool is read a batch at a time from its index,
// and files are streamed from flash.
package uplink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/spool"
)

// Spool is the part of *spool.Spool the uplink drains.
type Spool interface {
	Oldest(max int, skip func(spool.Entry) bool) ([]spool.Entry, error)
	Path(e spool.Entry) string
	ReadFile(e spool.Entry) ([]byte, error)
	Remove(e spool.Entry) error
	Purges() ([]string, error)
	ReadPurge(callID string) ([]byte, error)
	RemovePurge(callID string) error
	Usage() spool.Usage
}

// Calls is the phone's call log (store.DB).
type Calls interface {
	Calls(fn func(callID string, record []byte) error) error
}

// Registry says which registry the phone decides with: its version, and until when it is
// valid (zero: unknown). The status object reports both.
// The value may also say what firmware runs (FirmwareState() string) for the status object.
type Registry interface {
	RegistryState() (version uint64, expires time.Time)
}

// Options configure an Uplink.
type Options struct {
	Vault    Vault
	Spool    Spool
	Facility string
	DeviceID string
	// Calls and Recipients ship the call records, sealed to Recipients; nil Calls ships none.
	Calls      Calls
	Recipients []age.Recipient
	// State remembers which call records went; required with Calls.
	State *State
	// Registry feeds the status object; nil reports none.
	Registry Registry
	// Poll is how long an empty spool waits before it is looked at again (default 10 s);
	// StatusEvery how often the status object is written (default 5 min).
	Poll        time.Duration
	StatusEvery time.Duration
	// RetryBase and RetryMax bound the backoff after a failure (defaults 1 s and 10 min).
	RetryBase, RetryMax time.Duration
	// Timeout bounds one upload (default 2 min), plus a second for every 8 KiB: a store or
	// link that stalls is given up on and tried again.
	Timeout time.Duration
	// Batch is how many spool entries are read from the index at a time (default 64).
	Batch  int
	Logger *slog.Logger

	// afterPut, in tests, runs after an upload is confirmed and before the local copy goes.
	afterPut func(key string)
	// onRetry, in tests, runs after each failure is logged.
	onRetry func(err error)
}

// Uplink drains a spool into a vault. Run it once.
type Uplink struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex // guards the fields below, read by Status
	lastErr  string
	errAt    time.Time
	lastSent time.Time
	sent     int64
	// skip holds files that failed their checksum on the phone: kept for inspection, not
	// retried until the agent restarts.
	skip map[spool.Entry]bool
}

// New checks the options.
func New(o Options) (*Uplink, error) {
	switch {
	case o.Vault == nil || o.Spool == nil:
		return nil, errors.New("uplink: a vault and a spool are required")
	case !validName(o.Facility) || !validName(o.DeviceID):
		return nil, fmt.Errorf("uplink: facility %q and device %q must be 1 to 64 of [A-Za-z0-9_.-]", o.Facility, o.DeviceID)
	case o.Calls != nil && (o.State == nil || len(o.Recipients) == 0):
		return nil, errors.New("uplink: shipping call records needs the state file and the recipients to seal them to")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Poll, 10*time.Second)
	def(&o.StatusEvery, 5*time.Minute)
	def(&o.RetryBase, time.Second)
	def(&o.RetryMax, 10*time.Minute)
	def(&o.Timeout, 2*time.Minute)
	if o.Batch <= 0 {
		o.Batch = 64
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Uplink{o: o, log: log, skip: make(map[spool.Entry]bool)}, nil
}

// Run drains the spool until ctx is done, and then returns nil. Failures are logged and
// retried with backoff; they never end it.
func (u *Uplink) Run(ctx context.Context) error {
	u.loop(ctx, false)
	return nil
}

// Drain is Run that returns once everything there is has been shipped (nil), or when ctx is
// done (its error). It writes the status object last.
func (u *Uplink) Drain(ctx context.Context) error {
	u.loop(ctx, true)
	return ctx.Err()
}

func (u *Uplink) loop(ctx context.Context, untilEmpty bool) {
	fails := 0
	nextStatus := time.Now()
	for ctx.Err() == nil {
		sent, err := u.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		done := untilEmpty && err == nil && sent == 0
		if done || time.Now().After(nextStatus) {
			if serr := u.putStatus(ctx); serr != nil && err == nil {
				err, done = serr, false
			}
			nextStatus = time.Now().Add(u.o.StatusEvery)
		}
		if done {
			return
		}
		wait := u.o.Poll
		switch {
		case err != nil:
			fails++
			wait = Backoff(fails, u.o.RetryBase, u.o.RetryMax, rand.Float64)
			u.noteError(err)
			u.log.Warn("uplink: vault unreachable or refusing; retrying", "event", "uplink_retry",
				"err", err, "attempt", fails, "retry_in", wait.Round(time.Millisecond))
			if u.o.onRetry != nil {
				u.o.onRetry(err)
			}
		case sent > 0:
			fails = 0
			continue
		default:
			fails = 0
		}
		t := time.NewTimer(min(wait, time.Until(nextStatus)+time.Millisecond))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// Backoff is the wait before attempt (from 1) after a failure: base doubled per attempt up to
// max, and then a random point in its upper half, so that phones cut off together do not
// come back together. rnd returns a number in [0, 1).
func Backoff(attempt int, base, max time.Duration, rnd func() float64) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// pass ships purge requests, then a batch of the oldest spooled files, then a batch of call
// records. It stops at the first failure.
func (u *Uplink) pass(ctx context.Context) (sent int, err error) {
	ids, err := u.o.Spool.Purges()
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := u.sendPurge(ctx, id); err != nil {
			return sent, err
		}
		sent++
	}
	es, err := u.o.Spool.Oldest(u.o.Batch, u.skipped)
	if err != nil {
		return sent, err
	}
	for _, e := range es {
		switch err := u.sendEntry(ctx, e); {
		case errors.Is(err, ErrChecksum):
			if _, rerr := u.o.Spool.ReadFile(e); errors.Is(rerr, spool.ErrNotFound) {
				continue // replaced (a manifest rewritten mid-call) or removed since listed
			}
			u.mu.Lock()
			u.skip[e] = true
			u.mu.Unlock()
			u.noteError(err)
			u.log.Error("uplink: a spooled file differs from what was committed: kept on the phone for inspection, not uploaded",
				"event", "uplink_corrupt", "file", u.o.Spool.Path(e), "err", err)
		case err != nil:
			return sent, err
		default:
			sent++
		}
	}
	if len(es) == u.o.Batch {
		return sent, nil // more files first: records are small and can wait
	}
	n, err := u.sendRecords(ctx)
	return sent + n, err
}

func (u *Uplink) skipped(e spool.Entry) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.skip[e]
}

func (u *Uplink) sendEntry(ctx context.Context, e spool.Entry) error {
	key := SegmentKey(u.o.Facility, u.o.DeviceID, e.CallID, e.Seq)
	if e.Seq == spool.ManifestSeq {
		key = ManifestKey(u.o.Facility, u.o.DeviceID, e.CallID)
	}
	f, err := os.Open(u.o.Spool.Path(e))
	if errors.Is(err, os.ErrNotExist) {
		// Removed since it was listed (a call destroyed, a manifest replaced), when the
		// index no longer lists it either; else gone behind the spool's back, which the
		// spool reports at its next start. Either way there is nothing to send.
		return fmt.Errorf("uplink: %s: %w: the file is gone", u.o.Spool.Path(e), ErrChecksum)
	}
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	defer f.Close()
	if err := u.put(ctx, key, f, e.Size, e.SHA256); err != nil {
		return err
	}
	if err := u.o.Spool.Remove(e); err != nil && !errors.Is(err, spool.ErrNotFound) {
		// Uploaded: the next try uploads it to the same key again and removes it then.
		return fmt.Errorf("uplink: uploaded %s but could not remove the local copy: %w", key, err)
	}
	return nil
}

func (u *Uplink) sendPurge(ctx context.Context, callID string) error {
	b, err := u.o.Spool.ReadPurge(callID)
	if errors.Is(err, spool.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	key := PurgeKey(u.o.Facility, u.o.DeviceID, callID)
	if err := u.putBytes(ctx, key, b); err != nil {
		return err
	}
	if err := u.o.Spool.RemovePurge(callID); err != nil && !errors.Is(err, spool.ErrNotFound) {
		return fmt.Errorf("uplink: uploaded %s but could not remove the local copy: %w", key, err)
	}
	u.log.Info("uplink: purge request delivered to the vault", "event", "purge_uploaded", "call_id", callID)
	return nil
}

// errBatchFull stops the walk over the call records.
var errBatchFull = errors.New("batch full")

// sendRecords seals and ships up to a batch of call records not shipped yet in their
// current form (a record rewritten, e.g. scrubbed after a purge, goes again to the same key).
func (u *Uplink) sendRecords(ctx context.Context) (int, error) {
	if u.o.Calls == nil {
		return 0, nil
	}
	type rec struct {
		id  string
		sum [32]byte
		b   []byte
	}
	var todo []rec
	err := u.o.Calls.Calls(func(id string, b []byte) error {
		sum := sha256.Sum256(b)
		var have string
		if _, err := u.o.State.get(bucketRecords, id, &have); err != nil {
			return err
		}
		if have == hex.EncodeToString(sum[:]) {
			return nil
		}
		todo = append(todo, rec{id, sum, b})
		if len(todo) == u.o.Batch {
			return errBatchFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return 0, fmt.Errorf("uplink: read call records: %w", err)
	}
	sent := 0
	for _, r := range todo {
		if !spool.ValidCallID(r.id) {
			// It could name no object; noted as done so that it is not looked at again.
			u.log.Error("uplink: a call record with an unusable id is not shipped", "event", "uplink_error", "call_id", fmt.Sprintf("%q", r.id))
			if err := u.o.State.put(bucketRecords, r.id, hex.EncodeToString(r.sum[:])); err != nil {
				return sent, err
			}
			sent++ // handled: Drain goes on to the next batch
			continue
		}
		var sealed bytes.Buffer
		w, err := age.Encrypt(&sealed, u.o.Recipients...)
		if err != nil {
			return sent, fmt.Errorf("uplink: seal call record: %w", err)
		}
		if _, err := w.Write(r.b); err != nil {
			return sent, err
		}
		if err := w.Close(); err != nil {
			return sent, err
		}
		key := RecordKey(u.o.Facility, u.o.DeviceID, r.id)
		if err := u.putBytes(ctx, key, sealed.Bytes()); err != nil {
			return sent, err
		}
		if err := u.o.State.put(bucketRecords, r.id, hex.EncodeToString(r.sum[:])); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

// put uploads one object within the upload timeout and notes it sent.
func (u *Uplink) put(ctx context.Context, key string, r io.ReaderAt, size int64, sum [32]byte) error {
	ctx, cancel := context.WithTimeout(ctx, u.o.Timeout+time.Duration(size/(8<<10))*time.Second)
	defer cancel()
	if err := u.o.Vault.Put(ctx, key, r, size, sum); err != nil {
		return err
	}
	u.confirmed(key)
	return nil
}

func (u *Uplink) putBytes(ctx context.Context, key string, b []byte) error {
	return u.put(ctx, key, bytes.NewReader(b), int64(len(b)), sha256.Sum256(b))
}

func (u *Uplink) confirmed(key string) {
	if u.o.afterPut != nil {
		u.o.afterPut(key)
	}
	u.mu.Lock()
	u.sent++
	u.lastSent = time.Now()
	u.mu.Unlock()
}

func (u *Uplink) noteError(err error) {
	u.mu.Lock()
	u.lastErr, u.errAt = err.Error(), time.Now()
	u.mu.Unlock()
}

// Status is the small object a phone writes to status/<facility>/<device>.json now and then:
// what the back office watches to see that a phone ships. It holds no number.
type Status struct {
	Format           string    `json:"format"`
	Facility         string    `json:"facility"`
	DeviceID         string    `json:"device_id"`
	Time             time.Time `json:"time"`
	SpoolBytes       int64     `json:"spool_bytes"`
	SpoolSegments    int       `json:"spool_segments"`
	SpoolManifests   int       `json:"spool_manifests"`
	SpoolPurges      int       `json:"spool_purges"`
	SpoolCalls       int       `json:"spool_calls"`
	OldestWaiting    time.Time `json:"oldest_waiting,omitzero"`
	OldestAgeSeconds int64     `json:"oldest_age_seconds"`
	RegistryVersion  uint64    `json:"registry_version"`
	RegistryExpires  time.Time `json:"registry_expires,omitzero"`
	RegistryStale    bool      `json:"registry_stale"`
	Uploaded         int64     `json:"uploaded"`
	LastUpload       time.Time `json:"last_upload,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorTime    time.Time `json:"last_error_time,omitzero"`
	// Firmware says what firmware runs, and of an update, what came of it (as the console's
	// status says it); empty from a phone that does not update its firmware.
	Firmware string `json:"firmware,omitempty"`
}

// StatusFormat names the status layout.
const StatusFormat = "wallphone-status/1"

// Status is the phone's status now.
func (u *Uplink) Status() (Status, error) {
	now := time.Now().UTC()
	us := u.o.Spool.Usage()
	s := Status{Format: StatusFormat, Facility: u.o.Facility, DeviceID: u.o.DeviceID, Time: now,
		SpoolBytes: us.Bytes, SpoolSegments: us.Segments, SpoolManifests: us.Manifests, SpoolPurges: us.Purges, SpoolCalls: us.Calls}
	es, err := u.o.Spool.Oldest(1, nil)
	if err != nil {
		return s, err
	}
	if len(es) == 1 {
		s.OldestWaiting = es[0].Created.UTC()
		s.OldestAgeSeconds = int64(now.Sub(es[0].Created).Seconds())
	}
	if u.o.Registry != nil {
		s.RegistryVersion, s.RegistryExpires = u.o.Registry.RegistryState()
		s.RegistryStale = !s.RegistryExpires.IsZero() && now.After(s.RegistryExpires)
	}
	if f, ok := u.o.Registry.(interface{ FirmwareState() string }); ok {
		s.Firmware = f.FirmwareState()
	}
	u.mu.Lock()
	s.Uploaded, s.LastUpload, s.LastError, s.LastErrorTime = u.sent, u.lastSent.UTC(), u.lastErr, u.errAt.UTC()
	u.mu.Unlock()
	return s, nil
}

func (u *Uplink) putStatus(ctx context.Context) error {
	s, err := u.Status()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	return u.putBytes(ctx, StatusKey(u.o.Facility, u.o.DeviceID), b)
}
