package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wallphone/wallphone/callrecord"
)

// TestRetention: who called whom is kept only while the phone needs it. A record keeps its
// caller ID and number while the call's recording is on the phone and for the policy's
// retention after the call; then both go, from the record and from the database file.
func TestRetention(t *testing.T) {
	data, _ := enrolled(t)
	var log syncBuffer
	a, _ := newAgent(t, data, &log, nil)
	t.Cleanup(func() { a.Close() })
	now := a.clock.Now()
	keep := a.policy.Retention.CallRecords
	put := func(id, number string, ended time.Time) {
		t.Helper()
		r := callrecord.Record{CallID: id, DeviceID: a.deviceID, Started: ended.Add(-time.Minute), Ended: ended,
			CallerID: "1001", Decision: "recorded", Number: number, Recorded: true, EndReason: "caller_hangup"}
		if ended.IsZero() {
			r.Started, r.EndReason = now, ""
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.db.PutCall(id, b); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-keep - time.Hour)
	put("20260101T000000Z-00000000000a", "+15125550771", old)                 // uploaded long ago
	put("20260101T000000Z-00000000000b", "+15125550772", old)                 // still in the spool
	put("20260101T000000Z-00000000000c", "+15125550773", now.Add(-time.Hour)) // recent
	put("20260101T000000Z-00000000000d", "+15125550774", time.Time{})         // in progress
	if _, err := a.spool.CommitSegment("20260101T000000Z-00000000000b", 0, []byte("age-encryption.org/v1\nsealed")); err != nil {
		t.Fatal(err)
	}
	if err := a.retain(); err != nil {
		t.Fatal(err)
	}
	got := map[string]callrecord.Record{}
	a.db.Calls(func(id string, b []byte) error {
		r, err := callrecord.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		got[id] = r
		return nil
	})
	if r := got["20260101T000000Z-00000000000a"]; r.Number != "" || r.CallerID != "" || !r.Expired {
		t.Errorf("past retention, recording gone: %+v", r)
	}
	for _, id := range []string{"20260101T000000Z-00000000000b", "20260101T000000Z-00000000000c", "20260101T000000Z-00000000000d"} {
		if r := got[id]; r.Number == "" || r.CallerID != "1001" || r.Expired {
			t.Errorf("%s lost what the phone still needs: %+v", id, r)
		}
	}
	db, err := os.ReadFile(filepath.Join(data, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte("5125550771")) {
		t.Error("the expired number lingers in the database file")
	}
}
