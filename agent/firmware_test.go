package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/firmware/bootenv"
	"github.com/wallphone/wallphone/firmware/install"
	"github.com/wallphone/wallphone/internal/loopdev"
	"github.com/wallphone/wallphone/internal/tmpfs"
	"github.com/wallphone/wallphone/policy"
)

// TestFirmwareStatus: the console's status says what firmware runs and where, and what
// happened to an update that failed.
func TestFirmwareStatus(t *testing.T) {
	data, _ := enrolled(t)
	s := factorySlots(t)
	var log syncBuffer
	a, _ := newAgent(t, data, &log, func(c *Config) { c.Slots = s })
	st, err := agentPhone{a}.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := "the factory's, committed, running in slot a"; st.Firmware != want {
		t.Errorf("status firmware %q, want %q", st.Firmware, want)
	}
	// Version 2 was installed in b and marked, and the bootloader fell back from it.
	a.fw.st.Pending = &pendingFirmware{Version: 2, Slot: "b", Length: 10}
	if err := a.saveFirmware(a.fw.st); err != nil {
		t.Fatal(err)
	}
	env, err := bootenv.Open(s.Env)
	if err == nil {
		err = env.Set("failed_slot", "b") // as the fallback leaves it
	}
	if err == nil {
		err = env.Save()
	}
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a, _ = newAgent(t, data, &log, func(c *Config) { c.Slots = s })
	t.Cleanup(func() { a.Close() })
	st, _ = agentPhone{a}.Status(context.Background())
	if want := "the factory's, committed, running in slot a; version 2 failed here and is not retried"; st.Firmware != want {
		t.Errorf("status firmware %q, want %q", st.Firmware, want)
	}
}

// The status object the uplink puts in the vault says what firmware runs, as the console does.
func TestFirmwareInStatusObject(t *testing.T) {
	data, _ := enrolled(t)
	s := factorySlots(t)
	vault := t.TempDir()
	var log syncBuffer
	a, _ := newAgent(t, data, &log, func(c *Config) {
		c.Slots = s
		c.Vault = vault
	})
	t.Cleanup(func() { a.Close() })
	u := a.newUplink()
	if u == nil {
		t.Fatalf("no uplink:\n%s", log.String())
	}
	st, err := u.u.Status()
	if err != nil {
		t.Fatal(err)
	}
	if want := "the factory's, committed, running in slot a"; st.Firmware != want {
		t.Errorf("status object firmware %q, want %q", st.Firmware, want)
	}
}

// factorySlots are two file slots and a redundant bootloader environment, as a phone leaves
// the factory: its build in slot a, good and booted.
func factorySlots(t testing.TB) *Slots {
	t.Helper()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "uboot.env")
	cfg := bootenv.Config{Copies: []bootenv.Location{{Path: envFile, Size: 0x4000}, {Path: envFile, Offset: 0x4000, Size: 0x4000}}}
	os.WriteFile(envFile, nil, 0o600)
	env, err := bootenv.OpenOrDefault(cfg, map[string]string{"good_slot": "a", "boot_slot": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Save(); err != nil {
		t.Fatal(err)
	}
	image := func(s string) string { return filepath.Join(dir, s+".img") }
	os.WriteFile(image("a"), []byte("factory build"), 0o700)
	return &Slots{Hardware: "sim", Running: "a", Env: cfg, Image: image, Capacity: 1 << 20}
}

// stoppedClock is a clock a test sets; nothing waits on it.
type stoppedClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *stoppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stoppedClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *stoppedClock) After(time.Duration) <-chan time.Time { return nil }

// Installed firmware reboots the idle phone only inside the policy's reboot window; firmware
// on trial that is not healthy does not wait for it.
func TestRebootWaitsForWindow(t *testing.T) {
	data, _ := enrolled(t)
	clock := &stoppedClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	var log syncBuffer
	a, _ := newAgent(t, data, &log, func(c *Config) { c.Slots = factorySlots(t); c.Clock = clock })
	t.Cleanup(func() { a.Close() })
	p := *a.policy
	p.RebootWindow = policy.RebootWindow{From: 2 * 60, To: 5 * 60, Zone: time.UTC}
	a.policy = &p
	var stopped int
	a.stopRun = func() { stopped++ }
	a.rebootWanted.Store(true)

	for _, tc := range []struct {
		at     string
		idle   bool
		urgent bool
		reboot bool
	}{
		{"12:00", true, false, false},
		{"01:59", true, false, false},
		{"02:00", false, false, false}, // in a call: never
		{"05:00", true, false, false},
		{"12:00", true, true, true}, // on trial and unhealthy: at once
		{"02:00", true, false, true},
	} {
		a.rebooting, stopped = false, 0
		a.rebootUrgent.Store(tc.urgent)
		at, _ := time.Parse("15:04", tc.at)
		now := time.Date(2026, 12, 3, at.Hour(), at.Minute(), 0, 0, time.UTC)
		a.between(idle(tc.idle), now)
		if got := stopped == 1 && a.rebooting; got != tc.reboot {
			t.Errorf("%s idle=%v urgent=%v: rebooted %v, want %v", tc.at, tc.idle, tc.urgent, got, tc.reboot)
		}
	}
}

// New firmware on trial commits only when the repository was reached and every unattended
// check passes; past its deadline it asks for a reboot at once, which the bootloader counts.
func TestTrialCommitsOnlyWhenHealthy(t *testing.T) {
	enrolledData, _ := enrolled(t)
	data := filepath.Join(tmpfs.Mount(t, 64<<20), "data")
	if err := os.CopyFS(data, os.DirFS(enrolledData)); err != nil {
		t.Fatal(err)
	}
	clock := &stoppedClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	var log syncBuffer
	a, s := onTrial(t, data, &log, clock)
	trialOn := func() bool {
		env, err := bootenv.Open(s.Env)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := env.Get("upgrade_available")
		return v == "1"
	}
	status := func() string { return *a.fwStatus.Load() }

	a.firmwareStep(context.Background(), false)
	if !trialOn() || !strings.Contains(status(), "not yet healthy: repository: not reached") {
		t.Fatalf("committed without the repository: %q", status())
	}
	tmpfs.Fill(t, data, 64<<10) // no room for a recorded call
	a.firmwareStep(context.Background(), true)
	if !trialOn() || !strings.Contains(status(), "not yet healthy: spool: ") {
		t.Fatalf("committed with a full spool: %q", status())
	}
	if a.rebootWanted.Load() {
		t.Fatal("reboot asked for before the deadline")
	}
	clock.set(clock.Now().Add(trialDeadline + time.Second))
	a.firmwareStep(context.Background(), true)
	if !trialOn() || !a.rebootWanted.Load() || !a.rebootUrgent.Load() {
		t.Fatalf("past the deadline: trial %v, reboot %v, urgent %v", trialOn(), a.rebootWanted.Load(), a.rebootUrgent.Load())
	}
	if !strings.Contains(log.String(), `"event":"firmware_unhealthy"`) {
		t.Errorf("no firmware_unhealthy event:\n%s", log.String())
	}
}

// The same firmware, healthy, commits: the test above fails for the health check alone.
func TestTrialCommitsWhenHealthy(t *testing.T) {
	data, _ := enrolled(t)
	var log syncBuffer
	a, s := onTrial(t, data, &log, RealClock{})
	a.firmwareStep(context.Background(), true)
	env, _ := bootenv.Open(s.Env)
	if v, _ := env.Get("upgrade_available"); v == "1" || a.fw.st.Committed != 2 {
		t.Fatalf("healthy firmware not committed: upgrade_available %q, committed %d\n%s", v, a.fw.st.Committed, log.String())
	}
}

// onTrial starts an agent on data running version 2 from slot b on trial, as the bootloader
// boots it after an install.
func onTrial(t *testing.T, data string, log *syncBuffer, clock Clock) (*Agent, *Slots) {
	t.Helper()
	s := factorySlots(t)
	os.WriteFile(s.Image("b"), []byte("version 2"), 0o700)
	env, err := bootenv.Open(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if err := bootenv.MarkTrial(env, "b"); err != nil {
		t.Fatal(err)
	}
	a, _ := newAgent(t, data, log, func(c *Config) { c.Slots = s; c.Clock = clock })
	a.fw.st.Pending = &pendingFirmware{Version: 2, Slot: "b", Length: 9}
	if err := a.saveFirmware(a.fw.st); err != nil {
		t.Fatal(err)
	}
	a.Close()
	s.Running = "b"
	a, _ = newAgent(t, data, log, func(c *Config) { c.Slots = s; c.Clock = clock })
	t.Cleanup(func() { a.Close() })
	if !a.fw.trial {
		t.Fatalf("not on trial:\n%s", log.String())
	}
	return a, s
}

// On a board the slots are partitions: the update is written into the inactive one as it is
// (never truncated or grown), blocks shared with the running partition are copied from it,
// and the factory image, whose length the phone was never told, is read as the whole
// partition.
func TestInstallIntoPartitions(t *testing.T) {
	const part = 4 << 20
	devA, backA := loopdev.Attach(t, part)
	devB, backB := loopdev.Attach(t, part)
	factory := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(factory)
	f, err := os.OpenFile(backA, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt(factory, 0)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 is the factory's image with one block changed and one more megabyte.
	more := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{2}).Read(more)
	v2 := append(slices.Clone(factory), more...)
	v2[5000] ^= 1
	img := filepath.Join(t.TempDir(), "v2.img")
	if err := os.WriteFile(img, v2, 0o600); err != nil {
		t.Fatal(err)
	}
	data, keys := enrolled(t)
	if err := demo.PublishFirmware(keys, "sim", 2, img, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	s := factorySlots(t)
	s.BlockDevices = true
	s.Image = func(slot string) string { return map[string]string{"a": devA, "b": devB}[slot] }
	var log syncBuffer
	a, _ := newAgent(t, data, &log, func(c *Config) { c.Slots = s })
	t.Cleanup(func() { a.Close() })
	if a.fw.st.CommittedLength != part {
		t.Errorf("factory image read as %d bytes, want the partition's %d", a.fw.st.CommittedLength, part)
	}
	if err := a.installFirmware(context.Background(), a.source); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if p := a.fw.st.Pending; p == nil || p.Version != 2 || p.Slot != "b" || p.Length != int64(len(v2)) {
		t.Fatalf("pending %+v", a.fw.st.Pending)
	}
	got, err := os.ReadFile(backB)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != part || !bytes.Equal(got[:len(v2)], v2) {
		t.Fatalf("slot b holds %d bytes, the image not at its start", len(got))
	}
	// One changed block and the new megabyte fetched; the rest copied.
	if !strings.Contains(log.String(), fmt.Sprintf(`"fetched":%d,"copied":%d`, 4096+1<<20, 3<<20-4096)) {
		t.Errorf("not a delta from the running partition:\n%s", log.String())
	}
	env, _ := bootenv.Open(s.Env)
	if v, _ := env.Get("boot_slot"); v != "b" {
		t.Errorf("boot_slot %q, want b", v)
	}
}

// A phone stopped after the bootloader's environment committed new firmware but before the
// agent recorded it completes the commit at start, and the audit log records it.
func TestCommitCompletedAtStart(t *testing.T) {
	data, _ := enrolled(t)
	var log syncBuffer
	a, s := onTrial(t, data, &log, RealClock{})
	env, err := bootenv.Open(s.Env)
	if err != nil {
		t.Fatal(err)
	}
	if err := bootenv.Commit(env, "b"); err != nil {
		t.Fatal(err)
	}
	a.Close() // the agent's record still says pending
	a, _ = newAgent(t, data, &log, func(c *Config) { c.Slots = s })
	t.Cleanup(func() { a.Close() })
	if a.fw.st.Committed != 2 || a.fw.st.CommittedSlot != "b" || a.fw.st.Pending != nil || a.fw.trial {
		t.Fatalf("state %+v, trial %v", a.fw.st, a.fw.trial)
	}
	b, err := os.ReadFile(filepath.Join(data, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"firmware_committed"`)) {
		t.Errorf("the audit log does not record the commit:\n%s", b)
	}
}

// An install's progress belongs to the slot it was written into: the same release's record
// for the other slot starts over, since the blocks it counts as done are not in this one.
func TestProgressIsPerSlot(t *testing.T) {
	data, _ := enrolled(t)
	var log syncBuffer
	a, _ := newAgent(t, data, &log, func(c *Config) { c.Slots = factorySlots(t) })
	t.Cleanup(func() { a.Close() })
	rec := install.Progress{Image: [32]byte{1}, Index: [32]byte{2}, Length: 1 << 20, Next: 100}
	if err := (firmwareProgress{a, "b"}).Save(rec); err != nil {
		t.Fatal(err)
	}
	if got, err := (firmwareProgress{a, "b"}).Load(); err != nil || got != rec {
		t.Errorf("slot b: %+v, %v; want %+v", got, err, rec)
	}
	if got, err := (firmwareProgress{a, "a"}).Load(); err != nil || got != (install.Progress{}) {
		t.Errorf("slot a: %+v, %v; want no record", got, err)
	}
	// A record from before records named their slot is damaged: the install starts over.
	b, _ := rec.MarshalBinary()
	if err := (lockedStore{a}).setFirmwareProgress(b); err != nil {
		t.Fatal(err)
	}
	if _, err := (firmwareProgress{a, "b"}).Load(); !errors.Is(err, install.ErrProgress) {
		t.Errorf("a record without its slot: %v, want ErrProgress", err)
	}
}

// Installed firmware that waits for the policy's reboot window says so in the status.
func TestStatusNamesRebootWindow(t *testing.T) {
	data, keys := enrolled(t)
	img := filepath.Join(t.TempDir(), "v2.img")
	if err := os.WriteFile(img, []byte("version 2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := demo.PublishFirmware(keys, "sim", 2, img, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	var pol map[string]any
	b, err := os.ReadFile(filepath.Join(keys, "policy.json"))
	if err == nil {
		err = json.Unmarshal(b, &pol)
	}
	if err != nil {
		t.Fatal(err)
	}
	pol["firmware"] = map[string]any{"reboot_window": "02:00-05:00", "time_zone": "America/Chicago"}
	b, _ = json.Marshal(pol)
	local := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(local, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	a, _ := newAgent(t, data, &log, func(c *Config) { c.Slots = factorySlots(t); c.LocalPolicy = local })
	t.Cleanup(func() { a.Close() })
	if err := a.installFirmware(context.Background(), a.source); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	want := "version 2 installed in slot b: reboots into it when idle inside the policy's reboot window, 02:00-05:00 America/Chicago"
	if st := *a.fwStatus.Load(); !strings.Contains(st, want) {
		t.Errorf("status %q, want %q", st, want)
	}
}
