package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/device/board"
)

// A board's firmware comes from its board file, the kernel command line and fw_env.config;
// without any of them the phone runs on without updates and says why.
func TestBoardSlots(t *testing.T) {
	envConf := filepath.Join(t.TempDir(), "fw_env.config")
	if err := os.WriteFile(envConf, []byte("# the environment's two copies\n/dev/mtd1 0x0 0x10000 0x10000\n/dev/mtd2 0x0 0x10000 0x10000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fw := &board.Firmware{Hardware: "rpi", SlotA: "/dev/mmcblk0p2", SlotB: "/dev/mmcblk0p3", EnvConfig: envConf}
	for _, tc := range []struct {
		name    string
		fw      *board.Firmware
		cmdline string
		running string // "" for no slots
		err     string
	}{
		{"no firmware section", nil, "wallphone.slot=a", "", ""},
		{"slot a", fw, "console=ttyAMA0 quiet root=/dev/mmcblk0p2 ro wallphone.slot=a\n", "a", ""},
		{"slot b", fw, "wallphone.slot=b rootwait", "b", ""},
		{"not booted by the script", fw, "console=ttyAMA0 root=/dev/mmcblk0p2", "", "has no wallphone.slot="},
		{"a third slot", fw, "wallphone.slot=c", "", "wallphone.slot=c: want a or b"},
		{"no fw_env.config", &board.Firmware{Hardware: "rpi", SlotA: "/dev/x", SlotB: "/dev/y", EnvConfig: envConf + ".missing"}, "wallphone.slot=a", "", "bootloader's environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := boardSlots(tc.fw, tc.cmdline)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || s != nil {
					t.Fatalf("got %v, %v; want an error with %q", s, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.running == "" {
				if s != nil {
					t.Fatalf("slots %+v for a board without firmware", s)
				}
				return
			}
			if s.Running != tc.running || !s.BlockDevices || s.Hardware != "rpi" || s.Image("a") != "/dev/mmcblk0p2" || s.Image("b") != "/dev/mmcblk0p3" {
				t.Fatalf("slots %+v", s)
			}
			if !s.Env.Redundant() || s.Env.Copies[1].Path != "/dev/mtd2" {
				t.Fatalf("environment %+v", s.Env)
			}
		})
	}
}

// As init the agent reboots the board itself; under an init system it exits for the init to
// reboot, which dist/wallphoned.service does.
func TestRebootBoard(t *testing.T) {
	sys := 0
	if err := rebootBoard(1, func() error { sys++; return nil }); err != nil || sys != 1 {
		t.Errorf("as init: %v, reboot(2) %d times", err, sys)
	}
	if err := rebootBoard(712, func() error { sys++; return nil }); !errors.Is(err, errRebootExit) || sys != 1 {
		t.Errorf("under an init system: %v, reboot(2) %d times", err, sys)
	}
	unit, err := os.ReadFile("../../dist/wallphoned.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		fmt.Sprintf("SuccessExitStatus=%d", rebootExit),
		fmt.Sprintf("RestartPreventExitStatus=%d", rebootExit),
		"SuccessAction=reboot",
	} {
		if !strings.Contains(string(unit), "\n"+line+"\n") {
			t.Errorf("dist/wallphoned.service has no %s", line)
		}
	}
}

// --firmware gives the simulated phone a real board's slots: the same JSON as a board file's
// firmware section, checked as strictly, and only for the simulated phone.
func TestLoadFirmware(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, json, err string
	}{
		{"the boot test's", `{"hardware": "qemu", "slot_a": "/dev/vda2", "slot_b": "/dev/vda3", "env_config": "/etc/fw_env.config"}`, ""},
		{"no env_config", `{"hardware": "qemu", "slot_a": "/dev/vda2", "slot_b": "/dev/vda3"}`, ""},
		{"unknown field", `{"hardware": "qemu", "slot_a": "/dev/vda2", "slot_b": "/dev/vda3", "slot_c": "/dev/vda4"}`, "unknown field"},
		{"bad hardware", `{"hardware": "Qemu Virt", "slot_a": "/dev/vda2", "slot_b": "/dev/vda3"}`, "hardware"},
		{"relative slot", `{"hardware": "qemu", "slot_a": "vda2", "slot_b": "/dev/vda3"}`, "absolute"},
		{"one slot twice", `{"hardware": "qemu", "slot_a": "/dev/vda2", "slot_b": "/dev/vda2"}`, "two different"},
		{"no slot b", `{"hardware": "qemu", "slot_a": "/dev/vda2"}`, "absolute"},
		{"relative env_config", `{"hardware": "qemu", "slot_a": "/dev/vda2", "slot_b": "/dev/vda3", "env_config": "fw_env.config"}`, "env_config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tc.json), 0o600); err != nil {
				t.Fatal(err)
			}
			fw, err := loadFirmware(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error with %q", fw, err, tc.err)
				}
				return
			}
			if err != nil || fw.Hardware != "qemu" || fw.Slot("a") != "/dev/vda2" || fw.Slot("b") != "/dev/vda3" {
				t.Fatalf("got %+v, %v", fw, err)
			}
		})
	}
	if _, err := loadFirmware(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file was read")
	}
	for _, args := range [][]string{
		{"--board", "rpi", "--firmware", "fw.json"},
		{"--board-file", "b.json", "--firmware", "fw.json"},
		{"--slots", "--firmware", "fw.json"},
	} {
		var usage *usageError
		if _, err := parseFlags(args, io.Discard); !errors.As(err, &usage) || !strings.Contains(err.Error(), "--firmware") {
			t.Errorf("%q: %v, want a usage error about --firmware", args, err)
		}
	}
	if c, err := parseFlags([]string{"--firmware", "fw.json"}, io.Discard); err != nil || c.firmwareFile != "fw.json" {
		t.Errorf("--firmware on the simulated phone: %+v, %v", c, err)
	}
}
