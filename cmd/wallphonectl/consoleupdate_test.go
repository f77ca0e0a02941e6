package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/provisioning"
)

// TestUpdateBar: the bar says how much of the image is in the slot, the rate over the cable
// and the time left at the pace so far; off a terminal, a plain line per stage and per tenth.
func TestUpdateBar(t *testing.T) {
	t0 := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	var plain bytes.Buffer
	b := newUpdateBar(&plain, false, clock)
	const total = 10 << 20
	b.show(provisioning.UpdateStatus{UpdateProgress: provisioning.UpdateProgress{Stage: "metadata"}, Sent: 3000})
	b.show(provisioning.UpdateStatus{UpdateProgress: provisioning.UpdateProgress{Stage: "installing", Done: 0, Total: total}, Sent: 5000})
	for i := int64(1); i <= 40; i++ {
		now = t0.Add(time.Duration(i) * time.Second)
		b.show(provisioning.UpdateStatus{UpdateProgress: provisioning.UpdateProgress{Stage: "installing", Done: i * total / 40, Total: total}, Sent: 5000 + i*11000})
	}
	b.end()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d plain lines:\n%s", len(lines), plain.String())
	}
	if !strings.HasPrefix(lines[0], "checking the repository's signed metadata") {
		t.Fatal(lines[0])
	}
	// A fifth of the way, 8 s in: 32 s left at that pace; 11 KiB/s crossed the cable.
	if want := "installing [####....................]  20%  2.0 MiB of 10 MiB  11 KiB/s over the cable  about 32s left"; lines[3] != want {
		t.Fatalf("got  %q\nwant %q", lines[3], want)
	}
	if !strings.Contains(lines[11], "100%") || !strings.Contains(lines[11], "about 0s left") {
		t.Fatal(lines[11])
	}

	var term bytes.Buffer
	b = newUpdateBar(&term, true, clock)
	b.show(provisioning.UpdateStatus{UpdateProgress: provisioning.UpdateProgress{Stage: "installing", Done: 1, Total: 2}})
	b.show(provisioning.UpdateStatus{UpdateProgress: provisioning.UpdateProgress{Stage: "installing", Done: 2, Total: 2}})
	b.end()
	if got := term.String(); strings.Count(got, "\r\033[K") != 2 || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
		t.Fatalf("%q", got)
	}
}
