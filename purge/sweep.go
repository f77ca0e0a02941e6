package purge

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"

	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/registry"
)

// Registry is the registry in force, as the sweep needs it.
type Registry interface {
	Lookup(e164 string) (registry.Entry, bool)
	Version() uint64
}

// Calls is the phone's call log.
type Calls interface {
	Calls(fn func(callID string, record []byte) error) error
	PutCall(callID string, record []byte) error
}

// Spool is where the sealed files of recorded calls wait, and where purge requests queue.
type Spool interface {
	CommitPurge(callID string, data []byte) error
	DeleteCall(callID string) (removed int, err error)
}

// Sweep checks every call the phone has a record of with a number (recorded and blocked
// calls) against reg, and destroys the ones whose number is now privileged: a recorded call's
// files, and the number in every such record, since that it was called at all is
// privileged; a purge request is queued for each, as a sealed copy of the record may be in
// the vault. It is idempotent: the order below (request queued, files deleted, record
// scrubbed last) means a sweep cut short by a power cut is finished by the next one. It
// returns how many records it scrubbed.
func Sweep(reg Registry, calls Calls, sp Spool, key ed25519.PrivateKey, deviceID string, now time.Time, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	type hit struct {
		rec  callrecord.Record
		kind string
	}
	var hits []hit
	err := calls.Calls(func(id string, b []byte) error {
		r, err := callrecord.Parse(b)
		if err != nil {
			// A record that does not parse cannot be checked; say so loudly, go on with the rest.
			log.Error("call record unreadable: not checked against the registry", "event", "purge_error", "call_id", id, "err", err)
			return nil
		}
		if r.Number == "" || r.Destroyed {
			return nil
		}
		if e, ok := reg.Lookup(r.Number); ok {
			hits = append(hits, hit{r, string(e.Kind)})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge: read call records: %w", err)
	}
	for _, h := range hits {
		r := h.rec
		req, err := Sign(Request{DeviceID: deviceID, CallID: r.CallID, Reason: ReasonPrivileged,
			RegistryVersion: reg.Version(), Requested: now.UTC()}, key)
		if err != nil {
			return 0, err
		}
		if err := sp.CommitPurge(r.CallID, req); err != nil {
			return 0, fmt.Errorf("purge: queue request for %s: %w", r.CallID, err)
		}
		removed := 0
		if r.Recorded {
			if removed, err = sp.DeleteCall(r.CallID); err != nil {
				return 0, fmt.Errorf("purge: delete %s: %w", r.CallID, err)
			}
		}
		r.Number = ""
		r.Destroyed = true
		r.DestroyedRegistryVersion = reg.Version()
		b, err := r.Encode()
		if err != nil {
			return 0, fmt.Errorf("purge: scrub record %s: %w", r.CallID, err)
		}
		if err := calls.PutCall(r.CallID, b); err != nil {
			return 0, fmt.Errorf("purge: scrub record %s: %w", r.CallID, err)
		}
		// The number is not logged: it is privileged.
		if !r.Recorded {
			log.Warn("call record scrubbed: the number called is privileged", "event", "record_scrubbed",
				"call_id", r.CallID, "kind", h.kind, "registry_version", reg.Version())
			continue
		}
		log.Warn("recording destroyed: the number called is privileged", "event", "recording_destroyed",
			"call_id", r.CallID, "kind", h.kind, "registry_version", reg.Version(), "files_deleted", removed)
	}
	return len(hits), nil
}
