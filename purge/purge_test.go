package purge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/store"
)

var when = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func TestSignVerify(t *testing.T) {
	key := testKey(1)
	b, err := Sign(Request{DeviceID: "wp-1", CallID: "c1", Reason: ReasonPrivileged, RegistryVersion: 9, Requested: when}, key)
	if err != nil {
		t.Fatal(err)
	}
	r, pub, err := Verify(b)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) || r.CallID != "c1" || r.DeviceID != "wp-1" || r.RegistryVersion != 9 || r.Format != Format || !r.Requested.Equal(when) {
		t.Fatalf("%+v", r)
	}
}

func TestVerifyRefuses(t *testing.T) {
	key := testKey(1)
	good, err := Sign(Request{DeviceID: "wp-1", CallID: "c1", Reason: ReasonPrivileged}, key)
	if err != nil {
		t.Fatal(err)
	}
	var s signed
	if err := json.Unmarshal(good, &s); err != nil {
		t.Fatal(err)
	}
	remarshal := func(f func(s *signed)) []byte {
		c := signed{Request: bytes.Clone(s.Request), Key: bytes.Clone(s.Key), Sig: bytes.Clone(s.Sig)}
		f(&c)
		b, _ := json.Marshal(c)
		return b
	}
	other := testKey(2)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"request altered", remarshal(func(s *signed) { s.Request = bytes.Replace(s.Request, []byte(`"c1"`), []byte(`"c2"`), 1) }), ErrSignature},
		{"signature altered", remarshal(func(s *signed) { s.Sig[0] ^= 1 }), ErrSignature},
		{"another key", remarshal(func(s *signed) { s.Key = other.Public().(ed25519.PublicKey) }), ErrSignature},
		{"short key", remarshal(func(s *signed) { s.Key = s.Key[:10] }), ErrFormat},
		{"no signature", remarshal(func(s *signed) { s.Sig = nil }), ErrFormat},
		{"not JSON", []byte("purge everything"), ErrFormat},
		{"trailing data", append(bytes.Clone(good), []byte(`{}`)...), ErrFormat},
		{"unknown field", bytes.Replace(good, []byte(`{"request"`), []byte(`{"x":1,"request"`), 1), ErrFormat},
		{"signed bytes of something else", func() []byte {
			p := []byte(`{"format":"other/1","device_id":"wp-1","call_id":"c1"}`)
			b, _ := json.Marshal(signed{Request: p, Key: key.Public().(ed25519.PublicKey), Sig: ed25519.Sign(key, p)})
			return b
		}(), ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Verify(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	good, _ := Sign(Request{DeviceID: "wp-1", CallID: "c1", Reason: ReasonPrivileged}, testKey(1))
	seeds := [][]byte{good, []byte(`{}`), []byte(`{"request":"","key":"","sig":""}`), good[:len(good)/2]}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, pub, err := Verify(b)
		if err != nil {
			return
		}
		// Whatever verifies must say which call and device, and re-sign to something that
		// verifies under the same key only.
		if r.CallID == "" || r.DeviceID == "" || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("verified %+v", r)
		}
	})
}

// fakeSpool records what the sweep does to the spool.
type fakeSpool struct {
	mu      sync.Mutex // guards everything below
	purges  map[string][]byte
	deleted []string
	files   map[string]int
	failDel bool
}

func (s *fakeSpool) CommitPurge(id string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purges[id] = b
	return nil
}

func (s *fakeSpool) DeleteCall(id string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failDel {
		return 0, errors.New("flash failed")
	}
	s.deleted = append(s.deleted, id)
	n := s.files[id]
	delete(s.files, id)
	return n, nil
}

type logRecords struct {
	mu   sync.Mutex // guards recs
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}

func TestSweep(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(r callrecord.Record) {
		b, _ := r.Encode()
		if err := db.PutCall(r.CallID, b); err != nil {
			t.Fatal(err)
		}
	}
	// Recorded to a number that the new registry makes privileged: destroyed.
	put(callrecord.Record{CallID: "c-hit", Recorded: true, Decision: "recorded", Number: "+15125550177", CallerID: "1001"})
	// Recorded to a number that stays unprivileged: kept.
	put(callrecord.Record{CallID: "c-keep", Recorded: true, Decision: "recorded", Number: "+15125550123"})
	// Blocked: nothing to destroy but the number in its record (TestSweepScrubsUnrecordedCalls).
	put(callrecord.Record{CallID: "c-blocked", Decision: "blocked", Number: "+15125550177"})
	db.PutCall("c-junk", []byte("not json"))

	reg, err := registry.New(registry.File{Version: 4, Entries: []registry.FileEntry{
		{Prefix: "+1512555017", Kind: "court", Label: "court"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sp := &fakeSpool{purges: map[string][]byte{}, files: map[string]int{"c-hit": 7, "c-keep": 3}}
	logs := &logRecords{}
	key := testKey(3)
	n, err := Sweep(reg, db, sp, key, "wp-9", when, slog.New(logs))
	if err != nil || n != 2 {
		t.Fatalf("destroyed %d, err %v", n, err)
	}
	if len(sp.deleted) != 1 || sp.deleted[0] != "c-hit" || sp.files["c-keep"] != 3 {
		t.Fatalf("deleted %v, files %v", sp.deleted, sp.files)
	}
	req, pub, err := Verify(sp.purges["c-hit"])
	if err != nil || !pub.Equal(key.Public()) || req.CallID != "c-hit" || req.DeviceID != "wp-9" || req.RegistryVersion != 4 || req.Reason != ReasonPrivileged {
		t.Fatalf("purge request %+v %v", req, err)
	}
	var r callrecord.Record
	db.Calls(func(id string, b []byte) error {
		var err error
		if id == "c-hit" {
			r, err = callrecord.Parse(b)
		}
		return err
	})
	if r.Number != "" || !r.Destroyed || r.DestroyedRegistryVersion != 4 || r.CallerID != "1001" {
		t.Fatalf("record after sweep %+v", r)
	}
	// Nothing logged holds the number.
	var destroyed, unreadable int
	for _, rec := range logs.recs {
		rec.Attrs(func(a slog.Attr) bool {
			if bytes.Contains([]byte(a.Value.String()), []byte("5550177")) {
				t.Errorf("log %q holds the number", rec.Message)
			}
			if a.Key == "event" && a.Value.String() == "recording_destroyed" {
				destroyed++
			}
			if a.Key == "event" && a.Value.String() == "purge_error" {
				unreadable++
			}
			return true
		})
	}
	if destroyed != 1 || unreadable != 1 {
		t.Errorf("%d destroyed and %d unreadable events", destroyed, unreadable)
	}
	// A second sweep finds nothing more to do.
	if n, err := Sweep(reg, db, sp, key, "wp-9", when, nil); err != nil || n != 0 {
		t.Fatalf("second sweep: %d %v", n, err)
	}
}

func TestSweepFailureKeepsRecord(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, _ := callrecord.Record{CallID: "c1", Recorded: true, Number: "+15125550100"}.Encode()
	db.PutCall("c1", b)
	reg, _ := registry.New(registry.Demo())
	sp := &fakeSpool{purges: map[string][]byte{}, failDel: true}
	if _, err := Sweep(reg, db, sp, testKey(1), "wp", when, nil); err == nil {
		t.Fatal("no error")
	}
	// The record still holds the number, so the next sweep tries again; the request is queued.
	var r callrecord.Record
	db.Calls(func(_ string, b []byte) error {
		var err error
		r, err = callrecord.Parse(b)
		return err
	})
	if r.Number == "" || r.Destroyed || sp.purges["c1"] == nil {
		t.Fatalf("%+v %v", r, sp.purges)
	}
}
