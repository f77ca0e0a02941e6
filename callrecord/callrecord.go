// Package callrecord is the record a phone keeps of every call in its state database: what
// was decided and from which registry and policy, how the call ended, and whether its
// recording was later destroyed because the number turned out privileged (promise 5).
//
// The call machine writes a record when a call ends; the destroy-on-discovery sweep reads
// every record and scrubs the ones it destroys; the console's status summarises the last
// ones. This package is the one place that says what a record holds and reads it, and it
// sits below all of them, so that reading a record does not link the call machine.
//
// What a record may hold is the call machine's rule, and the fields below say it: the
// number only of recorded and blocked calls, never of privileged or free ones.
package callrecord

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Record is a call's entry in the phone's call log.
type Record struct {
	CallID   string    `json:"call_id"`
	DeviceID string    `json:"device_id"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	// CallerID is empty for free calls and for sessions that never got past the PIN.
	CallerID string `json:"caller_id,omitempty"`
	Language string `json:"lang"`
	// Decision is what the call machine decided for the number dialed ("recorded",
	// "privileged", ...: the call package's Kind); empty if the session never got that far.
	Decision        string    `json:"decision,omitempty"`
	Reason          string    `json:"reason,omitempty"`
	PrivilegedKind  string    `json:"privileged_kind,omitempty"`
	Number          string    `json:"number,omitempty"` // recorded and blocked calls only
	RegistryVersion uint64    `json:"registry_version"`
	RegistryStale   bool      `json:"registry_stale,omitempty"`
	PolicyVersion   int64     `json:"policy_version"`
	Connected       time.Time `json:"connected,omitzero"`
	Recorded        bool      `json:"recorded"`
	// Ended is zero and EndReason empty while the call goes on: a recorded call's record is
	// kept before its first segment. A record the phone finds so at start-up belongs to a call
	// it stopped in the middle of; it gets EndCutShort, and Ended is when it was found.
	EndReason string `json:"end_reason"`
	// RecordingError says that part of a recorded call's recording was lost (a segment that could
	// not be sealed or kept), and why: how the call ended does not say it.
	RecordingError string `json:"recording_error,omitempty"`
	// Destroyed says the recording was destroyed because the number turned out privileged
	// (under DestroyedRegistryVersion); Number is then empty.
	Destroyed                bool   `json:"destroyed,omitempty"`
	DestroyedRegistryVersion uint64 `json:"destroyed_registry_version,omitempty"`
	// Expired says the caller's ID and the number were dropped: the policy's retention ran out
	// after the call's recording had left the phone.
	Expired bool `json:"expired,omitempty"`
}

// EndCutShort is the EndReason of a call the phone stopped in the middle of.
const EndCutShort = "cut_short"

// ErrFormat is wrapped by Parse's errors: the bytes are not a call record.
var ErrFormat = errors.New("callrecord: not a call record")

// Parse reads a record as Encode wrote it. Fields it does not know are ignored, on purpose:
// a record written by a newer agent must still be read by the sweep, or a recording whose
// number turned out privileged would not be destroyed.
func Parse(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return r, nil
}

// Encode returns the stored form of r, JSON. It fails only for a time JSON cannot hold
// (a year outside 0 to 9999).
func (r Record) Encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("callrecord: %w", err)
	}
	return b, nil
}
