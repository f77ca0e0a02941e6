package call

import (
	"testing"
	"time"

	"github.com/wallphone/wallphone/registry"
)

func TestApplyStale(t *testing.T) {
	h := newHarness(t)
	pol := *h.pol
	pol.Stale.RefuseRecordedAfter = 72 * time.Hour
	now := epoch
	fresh := registry.Freshness{}
	staleDay := registry.Freshness{Stale: true, Since: now.Add(-24 * time.Hour)}
	staleWeek := registry.Freshness{Stale: true, Since: now.Add(-7 * 24 * time.Hour)}
	for _, tc := range []struct {
		name       string
		kind       Kind
		f          registry.Freshness
		rule       time.Duration
		wantKind   Kind
		wantStale  bool
		wantReason string
	}{
		{"fresh recorded", Recorded, fresh, 72 * time.Hour, Recorded, false, ReasonDefaultRecords},
		{"stale a day, recorded", Recorded, staleDay, 72 * time.Hour, Recorded, true, ReasonDefaultRecords},
		{"stale a week, recorded, refused", Recorded, staleWeek, 72 * time.Hour, Unavailable, true, ReasonStale},
		{"stale a week, no rule", Recorded, staleWeek, 0, Recorded, true, ReasonDefaultRecords},
		{"stale a week, privileged still connects", Privileged, staleWeek, 72 * time.Hour, Privileged, true, ReasonRegistry},
		{"stale a week, free still connects", Free, staleWeek, 72 * time.Hour, Free, true, ReasonFacilityFree},
		{"stale, invalid unmarked", Invalid, staleWeek, 72 * time.Hour, Invalid, false, ReasonNotANumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pol
			p.Stale.RefuseRecordedAfter = tc.rule
			reasons := map[Kind]string{Recorded: ReasonDefaultRecords, Privileged: ReasonRegistry, Free: ReasonFacilityFree, Invalid: ReasonNotANumber}
			got := ApplyStale(Decision{Kind: tc.kind, Reason: reasons[tc.kind]}, &p, tc.f, now)
			if got.Kind != tc.wantKind || got.Stale != tc.wantStale || got.Reason != tc.wantReason {
				t.Fatalf("got %s/%s stale=%v, want %s/%s stale=%v", got.Kind, got.Reason, got.Stale, tc.wantKind, tc.wantReason, tc.wantStale)
			}
		})
	}
}

// A call decided while the registry is stale says so in its record and its audit entry, and
// past the policy's limit a call that would be recorded is refused before anything is dialed.
func TestStaleCalls(t *testing.T) {
	h := newHarness(t)
	h.fresh = registry.Freshness{Stale: true, Since: epoch.Add(-time.Hour)}
	h.login("1001", "1234")
	h.dial(dialRecorded)
	h.onhook()
	r := h.onlyRecord()
	if !r.RegistryStale || r.Decision != string(Recorded) {
		t.Fatalf("record %+v: want a recorded call marked stale", r)
	}
	if len(h.audit.decided) != 1 || !h.audit.decided[0].Stale || h.audit.decided[0].E164 != "+15125550123" {
		t.Fatalf("audited %+v", h.audit.decided)
	}

	h = newHarness(t)
	pol := *h.pol
	pol.Stale.RefuseRecordedAfter = 30 * time.Minute
	h.pol = &pol
	h.fresh = registry.Freshness{Stale: true, Since: epoch.Add(-time.Hour)}
	h.login("1001", "1234")
	h.press(dialRecorded + "#")
	h.wait(10 * time.Second)
	if ev, ok := h.last("decision"); !ok || ev.attrs["decision"] != string(Unavailable) || ev.attrs["reason"] != ReasonStale {
		t.Fatalf("decision %+v", ev)
	}
	if h.count("dialing") != 0 {
		t.Fatal("dialed a call that the stale rule refuses")
	}
}
