package purge

import (
	"path/filepath"
	"testing"

	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/store"
)

// TestSweepScrubsUnrecordedCalls (found by the chaos test, issue 18): a call to a number
// registered as privileged later was not always recorded: declined, busy, unanswered, cut
// before the accept, refused for a full spool, or blocked. Its record still holds the number,
// and that the number was called at all is privileged: the sweep scrubs it too, and queues a
// purge request for the sealed copy of the record already in the vault. There is nothing of
// it in the spool to delete.
func TestSweepScrubsUnrecordedCalls(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, r := range []callrecord.Record{
		{CallID: "c-declined", Decision: "recorded", EndReason: "declined", Number: "+15125550188", CallerID: "1001"},
		{CallID: "c-blocked", Decision: "blocked", EndReason: "blocked", Number: "+15125550188", CallerID: "1002"},
		{CallID: "c-other", Decision: "recorded", EndReason: "busy", Number: "+15125550123"},
	} {
		b, _ := r.Encode()
		if err := db.PutCall(r.CallID, b); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := registry.New(registry.File{Version: 2, Entries: []registry.FileEntry{{Number: "+15125550188", Kind: "attorney"}}})
	if err != nil {
		t.Fatal(err)
	}
	sp := &fakeSpool{purges: map[string][]byte{}, files: map[string]int{}}
	n, err := Sweep(reg, db, sp, testKey(2), "wp-1", when, nil)
	if err != nil || n != 2 {
		t.Fatalf("sweep: %d records scrubbed, err %v; want 2", n, err)
	}
	db.Calls(func(id string, b []byte) error {
		r, err := callrecord.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case id == "c-other" && r.Number != "+15125550123":
			t.Errorf("record of a call to an unprivileged number lost its number: %+v", r)
		case id != "c-other" && (r.Number != "" || !r.Destroyed || r.DestroyedRegistryVersion != 2):
			t.Errorf("record %s still holds the privileged number: %+v", id, r)
		}
		return nil
	})
	for _, id := range []string{"c-declined", "c-blocked"} {
		if req, _, err := Verify(sp.purges[id]); err != nil || req.CallID != id {
			t.Errorf("purge request for %s: %+v %v", id, req, err)
		}
	}
	if len(sp.deleted) != 0 {
		t.Errorf("spool deletes for calls that were never recorded: %v", sp.deleted)
	}
	if n, err := Sweep(reg, db, sp, testKey(2), "wp-1", when, nil); err != nil || n != 0 {
		t.Fatalf("second sweep: %d %v", n, err)
	}
}
