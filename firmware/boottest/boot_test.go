package boottest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wallphone/wallphone/firmware/bootenv"
)

// depsEnv names scripts/boot-deps.sh's directory; make test-boot sets it, and without it the
// tests skip: each boots U-Boot and Linux under software emulation for minutes.
const depsEnv = "WALLPHONE_BOOT_DEPS"

var (
	shared     *parts
	sharedErr  error
	sharedOnce sync.Once
	sharedDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// need skips the test unless make test-boot runs it, and returns the parts every scenario
// shares, built by the first test that needs them.
func need(t *testing.T) *parts {
	t.Helper()
	deps := os.Getenv(depsEnv)
	if deps == "" {
		t.Skipf("boots U-Boot and Linux under qemu-system-aarch64 for minutes: run make test-boot (it sets %s)", depsEnv)
	}
	sharedOnce.Do(func() {
		start := time.Now()
		if sharedDir, sharedErr = os.MkdirTemp("", "wallphone-boot-"); sharedErr != nil {
			return
		}
		shared, sharedErr = buildParts(sharedDir, deps)
		if sharedErr == nil {
			t.Logf("the shared parts (agent builds, initramfs, boot partition) built in %s", time.Since(start).Round(time.Second))
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

// report logs what a scenario took, boot by boot.
func (m *machine) report(start time.Time) {
	var ds []string
	for _, d := range m.bootDuration {
		ds = append(ds, d.Round(time.Second).String())
	}
	m.t.Logf("%d power-ons (%s), %s in all", len(m.bootDuration), strings.Join(ds, ", "), time.Since(start).Round(time.Second))
}

// failBoot ends the test with what boot b showed.
func (m *machine) failBoot(b *boot, format string, args ...any) {
	m.t.Helper()
	var evs []string
	for _, e := range b.events {
		if n, _ := e["event"].(string); strings.HasPrefix(n, "firmware_") || n == "agent_started" {
			evs = append(evs, fmt.Sprint(e))
		}
	}
	m.t.Fatalf("power on %d: %s\nfirmware events:\n%s\nthe console's last lines:\n%s", b.n, fmt.Sprintf(format, args...),
		strings.Join(evs, "\n"), strings.Join(b.tail, "\n"))
}

// expectEnv checks the environment in the flash file: what U-Boot decides from it next.
func (m *machine) expectEnv(slot string, trial bool, more ...string) *bootenv.Env {
	m.t.Helper()
	env, err := m.env()
	if err != nil {
		m.t.Fatalf("the environment after power on %d: %v", len(m.boots), err)
	}
	d := bootenv.Decide(env.Get)
	if d.Slot != slot || d.Trial != trial {
		m.t.Fatalf("the environment after power on %d (%s) boots slot %s on trial %v next; want slot %s on trial %v",
			len(m.boots), envVars(env), d.Slot, d.Trial, slot, trial)
	}
	for i := 0; i+1 < len(more); i += 2 {
		if v, _ := env.Get(more[i]); v != more[i+1] {
			m.t.Fatalf("the environment after power on %d (%s): %s=%q, want %q", len(m.boots), envVars(env), more[i], v, more[i+1])
		}
	}
	return env
}

// untilIdle cuts the power once the agent has checked the repository and has nothing to do:
// the firmware it runs is committed and nothing newer is to be installed.
var untilIdle = cut{stop: func(b *boot, _ string, ev map[string]any) bool {
	return ev["event"] == "firmware_current"
}}

// Scenario 1, a good update: slot a runs version 1 and installs version 2 into slot b from the
// repository on the host, reboots; U-Boot boots b once on trial, the agent's health check
// passes and it commits; the next boot is b without trial.
func TestGoodUpdate(t *testing.T) {
	p := need(t)
	start := time.Now()
	m := newMachine(t, p)
	v2 := m.publish(2, false)
	base, _ := p.slot(1, false)
	delta, err := blocksNotIn(v2, base)
	if err != nil {
		t.Fatal(err)
	}

	b := m.power(cut{})
	if b.slot != bootenv.SlotA || b.trial == "1" {
		m.failBoot(b, "U-Boot booted slot %q trial %q; want slot a off trial", b.slot, b.trial)
	}
	st := b.event("agent_started")
	if st == nil || st["firmware"] != "1" {
		m.failBoot(b, "the agent did not start as version 1: %v", st)
	}
	ready := b.event("firmware_ready")
	if !b.exited || ready == nil || ready["version"] != 2.0 || ready["slot"] != bootenv.SlotB || !b.has("firmware_reboot") {
		m.failBoot(b, "version 2 was not installed into slot b before a reboot")
	}
	if !m.slotHolds(bootenv.SlotB, v2) || !m.slotHolds(bootenv.SlotA, base) {
		m.failBoot(b, "the slots do not hold versions 1 and 2")
	}
	m.expectEnv(bootenv.SlotB, true, "good_slot", bootenv.SlotA)
	t.Logf("version 2: %v bytes fetched of a %d-byte image (the server sent %d; %d bytes of blocks differ from version 1's)",
		ready["fetched"], slotSize*sector, m.srv.served.Load(), delta)

	// The trial boot: the agent commits; then the power is cut while it idles.
	b = m.power(cut{stop: func(b *boot, _ string, ev map[string]any) bool { return ev["event"] == "firmware_committed" }})
	if b.slot != bootenv.SlotB || b.trial != "1" || b.count != 1 {
		m.failBoot(b, "U-Boot booted slot %q trial %q count %d; want slot b on trial, boot 1", b.slot, b.trial, b.count)
	}
	if st := b.event("agent_started"); st == nil || st["firmware"] != "2" || !b.has("firmware_trial") {
		m.failBoot(b, "version 2 did not start on trial")
	}
	if c := b.event("firmware_committed"); c == nil || c["version"] != 2.0 || c["slot"] != bootenv.SlotB {
		m.failBoot(b, "version 2 did not commit")
	}
	m.expectEnv(bootenv.SlotB, false, "good_slot", bootenv.SlotB)

	// The next boot: slot b, off trial, nothing to install.
	b = m.power(untilIdle)
	if b.slot != bootenv.SlotB || b.trial == "1" {
		m.failBoot(b, "U-Boot booted slot %q trial %q; want slot b off trial", b.slot, b.trial)
	}
	if st := b.event("agent_started"); st == nil || st["firmware"] != "2" || b.has("firmware_installing") {
		m.failBoot(b, "version 2 did not run as committed")
	}
	m.expectEnv(bootenv.SlotB, false, "good_slot", bootenv.SlotB)
	if !m.slotHolds(bootenv.SlotB, v2) {
		t.Fatal("slot b no longer holds version 2")
	}
	m.report(start)
}

// Scenario 2, a bad update: version 3 never starts (its /init gives up, the kernel panics and
// reboots). U-Boot boots it on trial up to the limit, counting each boot, then falls back to
// the good slot; the agent there reports version 3 as failed and does not install it again,
// at that boot or the next.
func TestBadUpdate(t *testing.T) {
	p := need(t)
	start := time.Now()
	m := newMachine(t, p)
	m.publish(3, true)
	base, _ := p.slot(1, false)

	b := m.power(cut{})
	if ready := b.event("firmware_ready"); b.slot != bootenv.SlotA || !b.exited || ready == nil || ready["version"] != 3.0 || ready["slot"] != bootenv.SlotB {
		m.failBoot(b, "version 3 was not installed into slot b from slot a before a reboot")
	}
	m.expectEnv(bootenv.SlotB, true, "good_slot", bootenv.SlotA)
	for n := uint64(1); n <= 3; n++ {
		b = m.power(cut{})
		if b.slot != bootenv.SlotB || b.trial != "1" || b.count != n || !b.panicked || !b.exited || b.has("agent_started") {
			m.failBoot(b, "U-Boot booted slot %q trial %q count %d (panicked %v); want slot b on trial, boot %d of 3, its init failing", b.slot, b.trial, b.count, b.panicked, n)
		}
		// What the next boot decides: slot b again until the count reaches the limit.
		if n < 3 {
			m.expectEnv(bootenv.SlotB, true, "bootcount", fmt.Sprintf("%x", n))
		} else {
			m.expectEnv(bootenv.SlotA, false, "bootcount", "3", "upgrade_available", "1")
		}
	}
	for i := range 2 {
		b = m.power(untilIdle)
		if b.slot != bootenv.SlotA || b.trial == "1" || b.fellBack != (i == 0) {
			m.failBoot(b, "U-Boot booted slot %q trial %q, fell back %v; want slot a off trial, the fallback said at the first boot", b.slot, b.trial, b.fellBack)
		}
		if st := b.event("agent_started"); st == nil || st["firmware"] != "1" {
			m.failBoot(b, "version 1 did not start")
		}
		if f := b.event("firmware_failed"); (f != nil) != (i == 0) || f != nil && f["version"] != 3.0 {
			m.failBoot(b, "version 3's failure reported %v; want it reported once, at the first boot after the fallback", f)
		}
		cur := b.event("firmware_current")
		if cur == nil || cur["not_retried"] != "firmware/qemu_3.img" || b.has("firmware_installing") {
			m.failBoot(b, "version 3 is not left alone as failed: %v", cur)
		}
		m.expectEnv(bootenv.SlotA, false, "good_slot", bootenv.SlotA, "failed_slot", bootenv.SlotB)
	}
	if !m.slotHolds(bootenv.SlotA, base) {
		t.Fatal("slot a no longer holds version 1")
	}
	m.report(start)
}
