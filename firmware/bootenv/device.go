package bootenv

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// device is one opened copy's medium; mtd is set for a NOR flash character device.
type device struct {
	loc    Location
	offset int64 // resolved: never negative
	mtd    *norFlash
}

func openDevice(loc Location, redundant bool) (*device, error) {
	f, err := os.Open(loc.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &device{loc: loc, offset: loc.Offset}
	if d.offset < 0 {
		end, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("size of %s: %w", loc.Path, err)
		}
		if d.offset += end; d.offset < 0 {
			return nil, fmt.Errorf("%w: offset %d before the start of %s (%d bytes)", ErrConfig, loc.Offset, loc.Path, end)
		}
	}
	if d.mtd, err = probeFlash(f, loc, d.offset); err != nil {
		return nil, fmt.Errorf("%s: %w", loc.Path, err)
	}
	if d.mtd != nil && redundant {
		return nil, fmt.Errorf("%w: %s: a redundant environment on NOR flash", ErrUnsupported, loc.Path)
	}
	return d, nil
}

// errShort marks a copy that the file does not hold in full; OpenOrDefault treats it as blank
// so that a new file-backed environment can start as an empty file.
var errShort = errors.New("shorter than the configured size")

func (d *device) read(buf []byte) error {
	f, err := os.Open(d.loc.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := f.ReadAt(buf, d.offset)
	if n == len(buf) {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s at %#x: %w", d.loc.Path, d.offset, errShort)
	}
	return fmt.Errorf("read %s: %w", d.loc.Path, err)
}

// write puts img at the copy's place and syncs it before returning, so that a later write to
// the other copy never lands before this one.
func (d *device) write(img []byte) error {
	f, err := os.OpenFile(d.loc.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if d.mtd != nil {
		if err := d.mtd.erase(f, d.offset, int64(len(img))); err != nil {
			f.Close()
			return fmt.Errorf("erase %s: %w", d.loc.Path, err)
		}
	}
	if _, err := f.WriteAt(img, d.offset); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", d.loc.Path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", d.loc.Path, err)
	}
	return f.Close()
}
