package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wallphone/wallphone/firmware/bootenv"
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
