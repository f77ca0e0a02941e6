package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wallphone/wallphone/firmware/bootenv"
	"github.com/wallphone/wallphone/internal/atomicfile"
)

// The simulated phone's two firmware slots and its bootloader environment, under
// <data>/slots: each slot image is a wallphoned binary, as a board's slot is a root file
// system holding one.
const (
	slotsDir = "slots"
	envFile  = "uboot.env"
	// envSize is each of the environment's two copies (redundant, as a real board's should be).
	envSize = 16 << 10
	// bootedSlotEnv tells a wallphoned started by the simulated bootloader which slot it runs
	// from, so that it does not boot again.
	bootedSlotEnv = "WALLPHONE_SLOT"
)

// simHardware is the simulated phone's name in firmware releases (firmware/sim_<version>.img),
// and simSlotCapacity the size of each of its slots.
const (
	simHardware     = "sim"
	simSlotCapacity = 64 << 20
)

// slotImage is the path of a slot's image.
func slotImage(data, slot string) string {
	return filepath.Join(data, slotsDir, slot+".img")
}

// simEnv is the simulated board's bootloader environment: two copies in one file.
func simEnv(data string) bootenv.Config {
	path := filepath.Join(data, slotsDir, envFile)
	return bootenv.Config{Copies: []bootenv.Location{
		{Path: path, Offset: 0, Size: envSize},
		{Path: path, Offset: envSize, Size: envSize},
	}}
}

// simBoot does for the simulated phone what U-Boot and dist/boot.cmd do on a board: it picks
// the slot to boot from the environment, counts a boot on trial, falls back to the good slot
// once the count passes the limit (bootenv.Boot: the same logic as the script), and starts
// that slot's wallphoned in place of this process (exec). It returns only when this process
// is the one to run: started by simBoot itself (bootedSlotEnv), with the slot it runs from.
//
// A wallphoned started by a person, not from a slot, is the factory's: when no update is on
// trial and it is newer than the good slot's image (a new build of the simulated phone), it is
// flashed into the good slot first, as a technician reflashes a board; an older one (the build
// an update has since replaced) boots what the slots hold.
func simBoot(data, self string, log *slog.Logger, exec func(path string, env []string) error) (string, error) {
	if slot := os.Getenv(bootedSlotEnv); slot != "" {
		return slot, nil
	}
	if err := os.MkdirAll(filepath.Join(data, slotsDir), 0o700); err != nil {
		return "", fmt.Errorf("firmware slots: %w", err)
	}
	// A new board's flash: an empty file, which OpenOrDefault reads as blank.
	f, err := os.OpenFile(simEnv(data).Copies[0].Path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("firmware slots: %w", err)
	}
	f.Close()
	env, err := bootenv.Open(simEnv(data))
	if errors.Is(err, bootenv.ErrNoValidCopy) {
		// A new board: the environment it leaves the factory with, written once. (Both copies
		// damaged reads the same, and U-Boot then boots its built-in environment too.)
		log.Warn("no valid bootloader environment: writing the factory one", "event", "firmware_env_new", "err", err.Error())
		env, err = bootenv.OpenOrDefault(simEnv(data), map[string]string{"good_slot": bootenv.SlotA, "boot_slot": bootenv.SlotA})
		if err == nil {
			err = env.Save()
		}
	}
	if err != nil {
		return "", fmt.Errorf("firmware slots: %w", err)
	}
	fromSlot := filepath.Dir(self) == filepath.Join(mustAbs(data), slotsDir)
	if trial, _ := env.Get("upgrade_available"); trial != "1" && !fromSlot {
		good, _ := env.Get("good_slot")
		if good != bootenv.SlotA && good != bootenv.SlotB {
			good = bootenv.SlotA
		}
		flashed, err := flash(self, slotImage(data, good))
		if err != nil {
			return "", fmt.Errorf("firmware slot %s: %w", good, err)
		}
		if flashed {
			log.Info("this build flashed into the good slot", "event", "firmware_flashed", "slot", good)
		}
	}
	d, err := bootenv.Boot(env)
	if err != nil {
		return "", fmt.Errorf("firmware boot: %w", err)
	}
	attrs := []any{"event", "firmware_boot", "slot", d.Slot, "trial", d.Trial}
	if d.Trial || d.FellBack {
		attrs = append(attrs, "count", d.Count)
	}
	if d.FellBack {
		attrs = append(attrs, "fell_back_from", d.Failed)
		log.Warn("the slot on trial did not commit in time: booting the good slot", attrs...)
	} else {
		log.Info("booting", attrs...)
	}
	image := slotImage(data, d.Slot)
	if err := os.Chmod(image, 0o700); err != nil {
		return "", fmt.Errorf("firmware slot %s: %w", d.Slot, err)
	}
	return "", exec(image, append(os.Environ(), bootedSlotEnv+"="+d.Slot))
}

// flash copies the image at src into dst when dst is missing, or differs and is older, and
// reports whether it copied.
func flash(src, dst string) (bool, error) {
	si, err := os.Stat(src)
	if err != nil {
		return false, err
	}
	if di, err := os.Stat(dst); err == nil && !si.ModTime().After(di.ModTime()) {
		return false, nil
	}
	want, err := os.ReadFile(src)
	if err != nil {
		return false, err
	}
	have, err := os.ReadFile(dst)
	switch {
	case err == nil && bytes.Equal(have, want):
		return false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	return true, atomicfile.WriteFunc(dst, 0o700, func(w io.Writer) error {
		_, err := w.Write(want)
		return err
	})
}

// execImage replaces this process with the slot's wallphoned, given the same arguments.
func execImage(path string, env []string) error {
	if err := syscall.Exec(path, append([]string{path}, os.Args[1:]...), env); err != nil {
		return fmt.Errorf("start the slot's wallphoned %s: %w", path, err)
	}
	return nil
}
