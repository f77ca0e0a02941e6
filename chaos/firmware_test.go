package chaos

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/firmware/bootenv"
)

// The firmware update in the middle of the run: the phone runs with the simulated board's two
// slots (wallphoned --slots), booted from a build stamped as version 1; the repository then
// publishes the same source stamped as version 2, which the phone installs into its other
// slot, reboots into when idle and commits once healthy, while calls, kills and faults go on.

const (
	fwFrom = 1 // the build the phone is started from (the factory's)
	fwTo   = 2 // the release published in the middle of the run
	// stamp is where the build's version is set (-ldflags -X).
	stamp = "github.com/wallphone/wallphone/internal/version.stamp"
)

// fwState is what the harness knows and saw of the firmware.
type fwState struct {
	images    map[uint64][]byte // each build by its version
	next      string            // the build of version fwTo, published mid-run
	committed uint64            // the version the phone said it committed
	started   map[string]int    // agent starts by the firmware version they reported
	checks    int               // times the slot the bootloader boots next was checked whole
	// rebootsInCall counts reboots into new firmware while a call was under way (a failure).
	rebootsInCall int
	// Kills aimed at the update: as the install begins, as the new firmware starts on trial.
	installKill, trialKill bool
}

// buildFirmware builds wallphoned as versions fwFrom (the binary the harness starts) and fwTo.
func (h *harness) buildFirmware() {
	h.fw = fwState{images: map[uint64][]byte{}, started: map[string]int{}}
	h.fw.next = filepath.Join(h.dir, "bin", strconv.Itoa(fwTo), "wallphoned")
	for v, out := range map[uint64]string{fwFrom: h.bin, fwTo: h.fw.next} {
		build := exec.Command("go", "build", "-ldflags", fmt.Sprintf("-X %s=%d", stamp, v), "-o", out,
			"github.com/wallphone/wallphone/cmd/wallphoned")
		if b, err := build.CombinedOutput(); err != nil {
			h.t.Fatalf("build wallphoned %d: %v\n%s", v, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			h.t.Fatal(err)
		}
		h.fw.images[v] = b
	}
	// The factory's build is older than anything an update writes into a slot, as on a board
	// whose flash an update has since rewritten: a restart boots what the slots hold.
	old := h.began.Add(-24 * 3600e9)
	if err := os.Chtimes(h.bin, old, old); err != nil {
		h.t.Fatal(err)
	}
}

// publishFirmware publishes version fwTo for the simulated board, signed with the demo's
// release key.
func (h *harness) publishFirmware() {
	if err := demo.PublishFirmware(h.keys, "sim", fwTo, h.fw.next, demo.Firmware{}); err != nil {
		h.t.Fatal(err)
	}
}

// observeFirmware takes in the firmware's events: nothing but the committed version starts
// once committed, a release never fails, the phone never reboots during a call.
func (h *harness) observeFirmware(e event) {
	t := h.t
	switch e.name() {
	case "agent_started":
		h.fw.started[e.Firmware]++
		if h.fw.committed > 0 && e.Firmware != strconv.FormatUint(h.fw.committed, 10) {
			t.Errorf("firmware %q started after version %d was committed", e.Firmware, h.fw.committed)
		}
	case "firmware_installing":
		h.counts["firmware installs begun"]++
	case "firmware_ready":
		h.counts["firmware installed and verified"]++
	case "firmware_boot":
		if e.Trial != nil && *e.Trial {
			h.counts["boots of new firmware on trial"]++
		}
	case "firmware_reboot":
		h.counts["reboots into new firmware"]++
		if n := len(h.calls); n > 0 {
			if o := h.calls[n-1]; o.run == h.runs && o.id != "" && !o.onhook {
				t.Errorf("the phone rebooted into new firmware during call %s", o.id)
				h.fw.rebootsInCall++
			}
		}
	case "firmware_committed":
		h.fw.committed = e.Version
		h.counts["firmware commits"]++
		if e.Version != fwTo {
			t.Errorf("firmware version %d committed, want %d", e.Version, fwTo)
		}
	case "firmware_failed":
		t.Errorf("firmware version %d failed: %s", e.Version, e.line)
	case "firmware_error":
		h.counts["firmware errors"]++
	}
}

// checkSlots runs while the agent is down: the slot the bootloader boots next holds a whole
// build the harness made, byte for byte, and once version fwTo is committed it is that one.
func (h *harness) checkSlots() {
	dir := filepath.Join(h.data, "slots")
	env, err := bootenv.Open(bootenv.Config{Copies: []bootenv.Location{
		{Path: filepath.Join(dir, "uboot.env"), Offset: 0, Size: 16 << 10},
		{Path: filepath.Join(dir, "uboot.env"), Offset: 16 << 10, Size: 16 << 10},
	}})
	if err != nil {
		if h.deviceID != "" {
			h.t.Errorf("run %d: the bootloader environment: %v", h.runs, err)
		}
		return // killed before the first boot wrote it
	}
	d := bootenv.Decide(env.Get)
	v, ok := h.slotHolds(filepath.Join(dir, d.Slot+".img"))
	switch {
	case !ok:
		h.t.Errorf("run %d: the bootloader would boot slot %s, which holds no whole build", h.runs, d.Slot)
	case h.fw.committed > 0 && (v != h.fw.committed || d.Trial):
		h.t.Errorf("run %d: the bootloader would boot version %d (trial %v) of slot %s after version %d was committed", h.runs, v, d.Trial, d.Slot, h.fw.committed)
	}
	h.fw.checks++
}

// fwRow is the firmware's line of the table.
func (h *harness) fwRow() row {
	if h.stage < 5 {
		return row{"firmware release published mid-run", 0, "not reached"}
	}
	if h.fw.committed != fwTo {
		h.t.Errorf("firmware version %d was published and never committed (committed: %d)", fwTo, h.fw.committed)
	}
	return row{"firmware release published mid-run", 1, fmt.Sprintf("committed: version %d; agent starts by version %v; the slot to boot next held a whole build at each of %d checks; reboots during a call: %d",
		h.fw.committed, h.fw.started, h.fw.checks, h.fw.rebootsInCall)}
}

// slotHolds reports which build a slot's image holds. A slot is as large as its partition
// (64 MiB) with the build at its start, so only as many bytes as the longest build are read.
func (h *harness) slotHolds(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	longest := 0
	for _, img := range h.fw.images {
		longest = max(longest, len(img))
	}
	b := make([]byte, longest)
	n, _ := io.ReadFull(f, b)
	for v, img := range h.fw.images {
		if n >= len(img) && bytes.Equal(b[:len(img)], img) {
			return v, true
		}
	}
	return 0, false
}

// planFirmware shapes a calm run while the new firmware is not yet committed: long enough to
// install it, wait for a call to end, reboot and pass the first health check (up to a minute
// in all). The first such run is killed as the install begins (or just after: a kill in the
// middle of the download, the write, the switch or the reboot); a later one as the new
// firmware starts on trial, if no boot on trial was counted yet: the bootloader allows three
// uncommitted boots, and the runs after it are left to commit.
func (h *harness) planFirmware(p *runPlan) {
	r := h.rng
	p.killAfter = time.Duration(60000+r.IntN(15000)) * time.Millisecond
	switch {
	case !h.fw.installKill:
		h.fw.installKill = true
		p.killOn, p.killAfterEvent = "firmware_installing", time.Duration(r.IntN(1000))*time.Millisecond
	case !h.fw.trialKill && h.counts["boots of new firmware on trial"] == 0:
		h.fw.trialKill = true
		p.killOn, p.killAfterEvent = "firmware_trial", time.Duration(r.IntN(3000))*time.Millisecond
	}
}
