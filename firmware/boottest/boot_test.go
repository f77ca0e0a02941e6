package boottest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
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

// Scenario 3, power cuts: qemu killed with SIGKILL at random moments of updates, one after
// another on one phone, each at a stage drawn from the seed: the download (the repository
// stalls the image's response after a random number of bytes, and the power goes then), the
// write (a random part of how long an install takes, after it starts) or the switch (a random
// part of how long it takes from the install's end through the reboot to the commit). After
// every power-on the slot U-Boot booted must hold a whole image of a version (the factory's or
// a published one: the slot's bytes hashed against it), and the state must read. Each cut
// version is carried on by the next power-ons; one that ends idle gets the next version
// published.
func TestPowerCuts(t *testing.T) {
	p := need(t)
	start := time.Now()
	cuts := 10
	if s := os.Getenv("WALLPHONE_BOOT_CUTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("WALLPHONE_BOOT_CUTS=%q", s)
		}
		cuts = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WALLPHONE_BOOT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WALLPHONE_BOOT_SEED=%q", s)
		}
		seed = n
	}
	t.Logf("seed %d: make test-boot SEED=%d replays this run's schedule", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 17))
	m := newMachine(t, p)

	factory, _ := p.slot(1, false)
	images := map[uint64]string{1: factory}
	committed, published := uint64(1), uint64(1)
	fetched := int64(20480) // what an update fetched last: the download's length
	est := map[string]time.Duration{"write": 8 * time.Second, "switch": 10 * time.Second}
	var (
		readyAt, installAt time.Time
		landed             = map[string]int{}
		landedAt           = map[string]int{}
		idle               = true
		stages             []string // the stages of this round's cuts still to land
	)
	for done, boots := 0, 0; done < cuts || !idle; boots++ {
		if boots > 8*cuts+20 {
			t.Fatalf("%d power-ons for %d cuts: the updates do not go on", boots, done)
		}
		if idle && done < cuts {
			published++
			images[published] = m.publish(published, false)
		}
		// Plan this cut, or none once all are done (the last update then runs to its end).
		stage, u := "", rng.Float64()
		if len(stages) == 0 {
			// Each round of three cuts takes every stage once, in an order of its own.
			for _, i := range rng.Perm(3) {
				stages = append(stages, []string{"download", "write", "switch"}[i])
			}
		}
		if done < cuts {
			stage = stages[0]
		}
		var timer *time.Timer
		c := cut{at: func() <-chan time.Time {
			if timer == nil {
				return nil
			}
			return timer.C
		}}
		if stage == "download" {
			drain(m.srv.stalls)
			m.srv.budget.Store(int64(u * float64(fetched)))
			c.stalled = true
		}
		c.stop = func(b *boot, _ string, ev map[string]any) bool {
			now := time.Now()
			switch ev["event"] {
			case "firmware_installing":
				installAt = now
				if stage == "write" && timer == nil {
					timer = time.NewTimer(time.Duration(u * float64(est["write"])))
				}
			case "firmware_ready":
				readyAt = now
				est["write"] = (est["write"] + now.Sub(installAt)) / 2
				if f, ok := ev["fetched"].(float64); ok && f > 0 {
					fetched = int64(f)
				}
				if stage == "switch" && timer == nil {
					timer = time.NewTimer(time.Duration(u * float64(est["switch"])))
				}
			case "firmware_committed":
				if !readyAt.IsZero() {
					est["switch"] = (est["switch"] + now.Sub(readyAt)) / 2
				}
				return timer == nil // the cut planned did not come: the update is over
			case "firmware_current":
				return true // idle: nothing more happens
			}
			return false
		}
		if stage == "switch" && !readyAt.IsZero() && boots > 0 {
			// A switch under way: the time runs on from the install's end, across power-ons; past
			// it, the cut comes at a random moment of this power-on instead.
			left := time.Duration(u*float64(est["switch"])) - time.Since(readyAt)
			if left <= 0 {
				left = time.Duration(u * float64(est["switch"]))
			}
			timer = time.NewTimer(left)
		}
		b := m.power(c)
		if timer != nil {
			timer.Stop()
		}
		m.srv.budget.Store(-1)
		idle = b.has("firmware_current")
		for _, e := range b.events {
			switch e["event"] {
			case "firmware_committed":
				committed = uint64(e["version"].(float64))
				readyAt = time.Time{}
			case "firmware_state":
				committed = max(committed, uint64(e["committed"].(float64)))
			}
		}
		cutHere := b.killed && !idle && !b.has("firmware_committed")
		if cutHere {
			done++
			stages = stages[1:]
			landed[stage]++
			landedAt[b.lastMarker]++
			t.Logf("cut %d (%s, u=%.2f) landed after %q; power on %d booted slot %q trial %q", done, stage, u, b.lastMarker, b.n, b.slot, b.trial)
		}
		// The boot landed in a slot holding a whole image, and the state reads.
		if b.slot != "" {
			held := uint64(0)
			for v, img := range images {
				if m.slotHolds(b.slot, img) {
					held = v
				}
			}
			if held == 0 {
				m.failBoot(b, "U-Boot booted slot %s (trial %q), which holds no whole image of any version", b.slot, b.trial)
			}
			if st := b.event("agent_started"); st != nil && st["firmware"] != fmt.Sprint(held) {
				m.failBoot(b, "slot %s holds version %d, and the agent says it is %v", b.slot, held, st["firmware"])
			}
		}
		if _, err := m.env(); err != nil {
			m.failBoot(b, "the boot state does not read after this power-on: %v", err)
		}
	}
	// Every cut carried on to the end: the last version is committed and runs off trial.
	b := m.boots[len(m.boots)-1]
	if committed != published || !b.has("firmware_current") {
		m.failBoot(b, "version %d committed at the end, %d published", committed, published)
	}
	env := m.expectEnv(b.slot, false)
	good, _ := env.Get("good_slot")
	if good != b.slot || !m.slotHolds(b.slot, images[published]) {
		t.Fatalf("the last version %d is not in the good slot %s (%s)", published, b.slot, envVars(env))
	}
	t.Logf("%d power cuts: by stage %v; by what the console said last %v; %d versions published, %d bytes of images served",
		cuts, landed, landedAt, published-1, m.srv.served.Load())
	m.report(start)
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
