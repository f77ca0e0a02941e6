package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/call"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/internal/atomicfile"
	"github.com/wallphone/wallphone/pin"
	"github.com/wallphone/wallphone/policy"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/store"
)

// lockedStore is the state database in force, for every goroutine: compaction closes and
// reopens it under dbMu.
type lockedStore struct{ a *Agent }

func (s lockedStore) db() (*store.DB, func()) {
	s.a.dbMu.RLock()
	return s.a.db, s.a.dbMu.RUnlock
}

func (s lockedStore) Lockout(id string) (pin.Lockout, error) {
	db, done := s.db()
	defer done()
	return db.Lockout(id)
}

func (s lockedStore) SetLockout(id string, l pin.Lockout) error {
	db, done := s.db()
	defer done()
	return db.SetLockout(id, l)
}

func (s lockedStore) PutCall(id string, rec []byte) error {
	db, done := s.db()
	defer done()
	return db.PutCall(id, rec)
}

func (s lockedStore) Calls(fn func(callID string, record []byte) error) error {
	db, done := s.db()
	defer done()
	return db.Calls(fn)
}

func (s lockedStore) DeviceID() (string, error) {
	db, done := s.db()
	defer done()
	return db.DeviceID()
}

func (s lockedStore) ConsoleFailures() (int, time.Time, error) {
	db, done := s.db()
	defer done()
	return db.ConsoleFailures()
}

func (s lockedStore) SetConsoleFailures(n int, until time.Time) error {
	db, done := s.db()
	defer done()
	return db.SetConsoleFailures(n, until)
}

// compactStore rewrites the state database without its freed pages.
func (a *Agent) compactStore() error {
	a.dbMu.Lock()
	defer a.dbMu.Unlock()
	path := a.db.Path()
	if err := a.db.Close(); err != nil {
		return err
	}
	if err := store.Compact(path); err != nil {
		a.log.Error("compacting the state database failed: scrubbed numbers may remain in its free pages", "event", "purge_error", "err", err)
	}
	db, err := store.Open(path)
	if err != nil {
		return err
	}
	a.db = db
	return nil
}

// Decided appends a decision to the audit log. No number is written in clear, whatever the
// decision: the log cannot be scrubbed if a recorded number turns out privileged later. It
// runs on the call loop and waits for the fsync on purpose: the entry is on flash before
// anything is dialed, once per call, while a prompt plays (the handset's rings ride out the
// pause).
func (a *Agent) Decided(callID string, at time.Time, d call.Decision) error {
	f := map[string]string{
		"call_id": callID, "decision": string(d.Kind), "reason": d.Reason,
		"registry_version": strconv.FormatUint(d.RegistryVersion, 10),
		"policy_version":   strconv.FormatInt(d.PolicyVersion, 10),
		"decided_at":       at.UTC().Format(time.RFC3339Nano),
	}
	if a.registryFromRepo() && a.regSHA256 != "" {
		// The hash of the registry that decided, taken with it: not the installed one, which may
		// be newer and waiting for the call to end.
		f["registry_sha256"] = a.regSHA256
	}
	if d.E164 != "" {
		f["number_mac"] = audit.NumberMAC(a.auditKey, d.E164)
	}
	if d.Stale {
		f["registry_stale"] = "true"
	}
	if d.Kind == call.Privileged {
		f["privileged_kind"] = string(d.Privileged.Kind)
	}
	return a.audit.Append("decision", f)
}

// openAudit opens the audit log and its key. A phone enrolled without a key gets a random
// one of its own: its hashes then match nothing outside the phone, which is safe.
func (a *Agent) openAudit() error {
	path := filepath.Join(a.cfg.DataDir, "conf", provisioning.AuditKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if a.auditKey, err = audit.ParseKey(b); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		a.auditKey = make([]byte, 32)
		rand.Read(a.auditKey)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(path, []byte(hex.EncodeToString(a.auditKey)+"\n"), 0o600); err != nil {
			return err
		}
		a.log.Warn("no audit key installed: made one for this phone alone", "event", "audit_key_created", "file", path)
	default:
		return err
	}
	l, repaired, err := audit.Open(filepath.Join(a.cfg.DataDir, "audit.log"), audit.Options{Key: a.key})
	if err != nil {
		return fmt.Errorf("%w (move the file aside to start a new log; keep it for the auditors)", err)
	}
	if repaired {
		a.log.Warn("audit log: an entry cut short by a power cut was removed", "event", "audit_repaired")
	}
	a.audit = l
	return nil
}

// completeCutShort finishes the records of calls the phone stopped in the middle of (a power
// cut, kill -9): the call machine keeps a recorded call's record from before its first
// segment, unended. Each gets EndReason cut_short and, for Ended, the time it was found. The
// sweep that follows finds them like any other.
func (a *Agent) completeCutShort() error {
	var open []callrecord.Record
	err := a.db.Calls(func(id string, b []byte) error {
		r, err := callrecord.Parse(b)
		if err != nil {
			return nil // the sweep reports it
		}
		if r.Ended.IsZero() {
			open = append(open, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("call records: %w", err)
	}
	now := a.clock.Now()
	for _, r := range open {
		r.Ended, r.EndReason = now, callrecord.EndCutShort
		b, err := r.Encode()
		if err == nil {
			err = a.db.PutCall(r.CallID, b)
		}
		if err != nil {
			return fmt.Errorf("call record %s: %w", r.CallID, err)
		}
		a.log.Warn("call cut short: the phone stopped during it", "event", "call_cut_short", "call_id", r.CallID,
			"recorded", r.Recorded)
	}
	return nil
}

// retain drops who called whom from the records that no longer need it: the call ended
// longer ago than the policy's retention, and its recording is no longer on the phone (the
// sweep needs the number to destroy a recording the phone holds; copies that left are the
// back office's vault sweep's). The database is then compacted, so that the dropped numbers
// do not linger in free pages.
func (a *Agent) retain() error {
	keep := policy.DefaultCallRecordRetention
	if a.policy != nil {
		keep = a.policy.Retention.CallRecords
	}
	spooled, err := a.spool.Calls()
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	cutoff := a.clock.Now().Add(-keep)
	var expired []callrecord.Record
	err = lockedStore{a}.Calls(func(id string, b []byte) error {
		r, err := callrecord.Parse(b)
		if err != nil || r.Ended.IsZero() || !r.Ended.Before(cutoff) || (r.Number == "" && r.CallerID == "") {
			return nil
		}
		if _, onPhone := slices.BinarySearch(spooled, id); !onPhone {
			expired = append(expired, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	for _, r := range expired {
		r.Number, r.CallerID, r.Expired = "", "", true
		b, err := r.Encode()
		if err == nil {
			err = lockedStore{a}.PutCall(r.CallID, b)
		}
		if err != nil {
			return fmt.Errorf("retention: %s: %w", r.CallID, err)
		}
	}
	if len(expired) == 0 {
		return nil
	}
	a.log.Info("call records past retention: caller IDs and numbers dropped", "event", "records_expired",
		"calls", len(expired), "retention", keep.String())
	return a.compactStore()
}

// finishKeyChange completes or drops a device key change an enrolment cut short left staged,
// as the audit log says, before the key is loaded: the log and the key must agree.
func (a *Agent) finishKeyChange() error {
	logPath := filepath.Join(a.cfg.DataDir, "audit.log")
	finished, dropped, err := provisioning.FinishKeyChange(a.cfg.DataDir, func(pub ed25519.PublicKey) (bool, error) {
		last, err := audit.LastKeyChange(logPath)
		return last != nil && last.Equal(pub), err
	})
	switch {
	case err != nil:
		return fmt.Errorf("device key change left by an enrolment: %w", err)
	case finished:
		a.log.Warn("an enrolment cut short had recorded its new device key: it is now in place",
			"event", "device_key_change_finished")
	case dropped:
		a.log.Warn("an enrolment cut short had not recorded its new device key: the phone keeps its key",
			"event", "device_key_change_dropped")
	}
	return nil
}

func (s lockedStore) firmware() ([]byte, error) {
	db, done := s.db()
	defer done()
	return db.Firmware()
}

func (s lockedStore) setFirmware(b []byte) error {
	db, done := s.db()
	defer done()
	return db.SetFirmware(b)
}

func (s lockedStore) firmwareProgress() ([]byte, error) {
	db, done := s.db()
	defer done()
	return db.FirmwareProgress()
}

func (s lockedStore) setFirmwareProgress(b []byte) error {
	db, done := s.db()
	defer done()
	return db.SetFirmwareProgress(b)
}
