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

// checkMemory compares the agent's resident memory after calls early in the run with that
// late in it: the median of the last quarter of the samples may not pass the first
// quarter's by half and 16 MiB (whatever the phone keeps, its memory must not grow with it).
func (h *harness) checkMemory() row {
	n := len(h.rssSamples)
	if n < 8 {
		return row{"agent's resident memory after a call", n, "too few samples to compare"}
	}
	median := func(s []int64) int64 {
		s = slices.Clone(s)
		slices.Sort(s)
		return s[len(s)/2]
	}
	early, late := median(h.rssSamples[:n/4]), median(h.rssSamples[n-n/4:])
	if late > early*3/2+16<<20 {
		h.t.Errorf("the agent's memory grew: %d MiB after calls early in the run, %d MiB late", early>>20, late>>20)
	}
	return row{"agent's resident memory after a call", n, fmt.Sprintf("median of the first quarter of samples %.1f MiB, of the last %.1f MiB", float64(early)/(1<<20), float64(late)/(1<<20))}
}
