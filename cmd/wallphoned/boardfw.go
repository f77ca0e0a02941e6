package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/wallphone/wallphone/agent"
	"github.com/wallphone/wallphone/device/board"
	"github.com/wallphone/wallphone/firmware/bootenv"
	"github.com/wallphone/wallphone/firmware/release"
)

// slotArg is the kernel command line argument by which dist/boot.cmd tells the agent which
// slot it booted.
const slotArg = "wallphone.slot="

// errNoSlotArg: the kernel command line does not say which slot runs.
var errNoSlotArg = errors.New("the kernel command line has no " + slotArg + " (is the bootloader running dist/boot.cmd?)")

// boardSlots is a real board's firmware, from its board file's firmware section, the kernel
// command line (/proc/cmdline) and fw_env.config. A board without the section does not update
// its firmware (nil, nil); one whose slot or environment cannot be known runs without updates,
// with the error saying why.
func boardSlots(fw *board.Firmware, cmdline string) (*agent.Slots, error) {
	if fw == nil {
		return nil, nil
	}
	running := ""
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, slotArg); ok {
			running = v
		}
	}
	switch running {
	case bootenv.SlotA, bootenv.SlotB:
	case "":
		return nil, errNoSlotArg
	default:
		return nil, fmt.Errorf("the kernel command line says %s%s: want a or b", slotArg, running)
	}
	path := fw.EnvConfig
	if path == "" {
		path = board.DefaultEnvConfig
	}
	env, err := bootenv.ReadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("the bootloader's environment: %w", err)
	}
	return &agent.Slots{Hardware: fw.Hardware, Running: running, Env: env, Image: fw.Slot, BlockDevices: true}, nil
}

// loadFirmware reads --firmware: a board file's firmware section on its own, which gives the
// simulated phone's devices a real board's slots and bootloader (the boot test's virtual
// machine, whose U-Boot and Linux are real and whose keypad and hook switch are not).
func loadFirmware(path string) (*board.Firmware, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--firmware: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var fw board.Firmware
	if err := dec.Decode(&fw); err != nil {
		return nil, fmt.Errorf("--firmware %s: %w", path, err)
	}
	if err := release.CheckHardware(fw.Hardware); err != nil {
		return nil, fmt.Errorf("--firmware %s: hardware: %w", path, err)
	}
	abs := func(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p }
	if !abs(fw.SlotA) || !abs(fw.SlotB) || fw.SlotA == fw.SlotB || fw.EnvConfig != "" && !abs(fw.EnvConfig) {
		return nil, fmt.Errorf("--firmware %s: want slot_a and slot_b two different absolute paths, and env_config absolute if given", path)
	}
	return &fw, nil
}

// rebootExit is wallphoned's exit status when new firmware waits for a reboot that the
// system's manager is to do: dist/wallphoned.service turns it into a clean reboot
// (SuccessExitStatus, RestartPreventExitStatus, SuccessAction=reboot).
const rebootExit = 75

// errRebootExit asks main to exit with rebootExit.
var errRebootExit = errors.New("new firmware installed: exiting for the system to reboot")

// rebootBoard reboots a real board into the firmware its bootloader now picks. As the
// system's init (the agent alone on a minimal board) it syncs and calls reboot(2) itself;
// under an init system it exits with rebootExit for the init to reboot cleanly, services
// stopped and file systems unmounted, without the agent holding the right to reboot.
func rebootBoard(pid int, sys func() error) error {
	if pid != 1 {
		return errRebootExit
	}
	return sys()
}

// sysReboot puts what is written on the medium and restarts the board.
func sysReboot() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot(2): %w", err)
	}
	return nil
}

// readCmdline is the kernel's command line; on a machine without /proc, none.
func readCmdline() string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return string(b)
}
