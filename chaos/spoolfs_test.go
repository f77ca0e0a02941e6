package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/wallphone/wallphone/internal/tmpfs"
)

// spoolFSSize is the small file system under the spool: room for the longest call the
// phone reserves before it records one, and a little more.
const spoolFSSize = 24 << 20

// spoolOnTmpfs puts the phone's spool on a small tmpfs of its own (through a symbolic link
// from the data directory), which the schedule fills up in the middle of the run. Mounting
// needs root, as CI runs; elsewhere the spool stays on the ordinary disk and the table
// says so.
func (h *harness) spoolOnTmpfs() {
	if os.Geteuid() != 0 {
		h.counts["spool on the ordinary disk (a tmpfs needs root)"]++
		return
	}
	h.spoolFS = tmpfs.Mount(h.t, spoolFSSize)
	if err := os.Mkdir(filepath.Join(h.spoolFS, "spool"), 0o700); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(h.spoolFS, "spool"), filepath.Join(h.data, "spool")); err != nil {
		h.t.Fatal(err)
	}
}

// stepSpool fills the spool's file system in the middle of the run, leaving less room than
// a recorded call needs, give or take a few segments, and empties it again later: recorded
// calls must then be refused before anyone is told of a recording, or end when the room runs
// out, never go on unrecorded.
func (h *harness) stepSpool(pr float64) {
	switch {
	case h.spoolFS == "":
	case !h.filled && pr >= 0.4 && pr < 0.55:
		tmpfs.Fill(h.t, h.spoolFS, callReserve+int64(h.rng.IntN(150<<10))-int64(40<<10))
		h.filled = true
		h.counts["spool's file system filled"]++
	case h.filled && pr >= 0.55:
		h.emptySpoolFS()
	}
}

// emptySpoolFS removes the ballast that filled the spool's file system.
func (h *harness) emptySpoolFS() {
	if !h.filled {
		return
	}
	ballast, _ := filepath.Glob(filepath.Join(h.spoolFS, "ballast-*"))
	for _, b := range ballast {
		if err := os.Remove(b); err != nil {
			h.t.Fatal(err)
		}
	}
	h.filled = false
}

// checkMemory compares the agent's memory after calls early in the run with that late in it.
// Anonymous memory after a call is anywhere from about 25 to 50 MiB, as the collector has or
// has not yet run since the PIN check (argon2id takes 19 MiB, and the heap's goal doubles
// it), so it is judged by its floor: the least in the last quarter of the samples may not
// pass the least in the first by half and 16 MiB. Memory the phone kept would raise the
// floor. The medians and the pages of mapped files are reported beside it, not judged.
func (h *harness) checkMemory() row {
	n := len(h.memSamples)
	if n < 8 {
		return row{"agent's resident memory after a call", n, "too few samples to compare"}
	}
	type stats struct{ least, median, medianAll int64 }
	of := func(s []memory) stats {
		anon, all := make([]int64, len(s)), make([]int64, len(s))
		for i, m := range s {
			anon[i], all[i] = m.anon, m.rss
		}
		slices.Sort(anon)
		slices.Sort(all)
		return stats{anon[0], anon[len(anon)/2], all[len(all)/2]}
	}
	early, late := of(h.memSamples[:n/4]), of(h.memSamples[n-n/4:])
	if late.least > early.least*3/2+16<<20 {
		h.t.Errorf("the agent's memory grew: at least %d MiB anonymous after calls late in the run, against %d MiB early", late.least>>20, early.least>>20)
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	return row{"agent's resident memory after a call", n, fmt.Sprintf("anonymous, first quarter of the samples: least %.1f MiB, median %.1f MiB; last quarter: least %.1f MiB, median %.1f MiB (medians with mapped files: %.1f, %.1f MiB)",
		mib(early.least), mib(early.median), mib(late.least), mib(late.median), mib(early.medianAll), mib(late.medianAll))}
}
