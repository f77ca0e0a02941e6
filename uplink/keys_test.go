package uplink_test

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wallphone/wallphone/uplink"
)

func TestKeys(t *testing.T) {
	id := "20260314T101500Z-a1b2c3d4e5f6"
	for _, tc := range []struct{ got, want string }{
		{uplink.SegmentKey("fac1", "dev1", id, 42), "fac1/dev1/2026-03-14/" + id + "/000042.age"},
		{uplink.ManifestKey("fac1", "dev1", id), "fac1/dev1/2026-03-14/" + id + "/manifest.age"},
		{uplink.RecordKey("fac1", "dev1", id), "fac1/dev1/2026-03-14/" + id + "/record.age"},
		{uplink.PurgeKey("fac1", "dev1", id), "purge/fac1/dev1/" + id + ".json"},
		{uplink.ReceiptKey("fac1", "dev1", id), "receipts/fac1/dev1/" + id + ".json"},
		{uplink.StatusKey("fac1", "dev1"), "status/fac1/dev1.json"},
		{uplink.SegmentKey("f", "d", "call-without-date", 0), "f/d/undated/call-without-date/000000.age"},
		{uplink.CallDay("20261399T000000Z-x"), "undated"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	f, d, c, ok := uplink.ParsePurgeKey(uplink.PurgeKey("fac1", "dev1", id))
	if !ok || f != "fac1" || d != "dev1" || c != id {
		t.Errorf("ParsePurgeKey round trip: %q %q %q %v", f, d, c, ok)
	}
	for _, bad := range []string{"purge/a/b.json", "purge/a/b/c/d.json", "purge/a/../c.json", "purge/a/b/c.txt", "fac/a/b/c.json", "purge/a//c.json"} {
		if _, _, _, ok := uplink.ParsePurgeKey(bad); ok {
			t.Errorf("ParsePurgeKey(%q) accepted", bad)
		}
	}
}

func FuzzParsePurgeKey(f *testing.F) {
	for _, s := range []string{"purge/fac1/dev1/20260314T101500Z-a1b2.json", "purge/a/b.json", "purge/../../x.json", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		fac, dev, call, ok := uplink.ParsePurgeKey(key)
		if ok && uplink.PurgeKey(fac, dev, call) != key {
			t.Fatalf("%q parsed to %q %q %q, which makes %q", key, fac, dev, call, uplink.PurgeKey(fac, dev, call))
		}
	})
}

func TestBackoff(t *testing.T) {
	base, maxWait := time.Second, time.Minute
	for _, tc := range []struct {
		attempt  int
		rnd      float64
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, time.Second},
		{4, 0.5, 4 * time.Second, 8 * time.Second},
		{7, 0.999, 30 * time.Second, time.Minute},
		{1000, 0.999, 30 * time.Second, time.Minute},
	} {
		d := uplink.Backoff(tc.attempt, base, maxWait, func() float64 { return tc.rnd })
		if d < tc.min || d > tc.max {
			t.Errorf("attempt %d rnd %v: %v, want %v to %v", tc.attempt, tc.rnd, d, tc.min, tc.max)
		}
	}
	// Jitter: phones failing together do not retry together.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[uplink.Backoff(5, base, maxWait, rand.Float64)] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 backoffs gave %d distinct waits", len(seen))
	}
}

// TestBandwidthCap drains into a directory vault with a cap of 20 KiB/s under synctest's
// fake clock: 200 KiB take 10 s of it.
func TestBandwidthCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newKeys(t)
		sp := openSpool(t, t.TempDir())
		for i := range 4 {
			b := sealedBlob(t, k, 50<<10)
			if _, err := sp.CommitSegment(callID(1), i, b); err != nil {
				t.Fatal(err)
			}
		}
		total := sp.Usage().Bytes
		v := uplink.NewDir(t.TempDir(), 20<<10)
		u := must(uplink.New(uplink.Options{Vault: v, Spool: sp, Facility: facility, DeviceID: device}))
		start := time.Now()
		if err := u.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		want := time.Duration(float64(total) / (20 << 10) * float64(time.Second))
		if took < want*9/10 || took > want*11/10+time.Second {
			t.Errorf("%d bytes at 20 KiB/s took %v, want about %v", total, took, want)
		}
	})
}
