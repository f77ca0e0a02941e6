package bootenv

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// norFlash is a NOR MTD device: written only after the blocks under the copy are erased, since
// programming flash can only clear bits. This path runs on boards and under qemu's pflash (the
// boot test), not in this package's tests, which have no MTD device.
type norFlash struct{}

// probeFlash returns nil for anything but an MTD character device, and refuses NAND flash and a
// copy that does not start and end on erase blocks (erasing would take its neighbours along).
func probeFlash(f *os.File, loc Location, offset int64) (*norFlash, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		return nil, nil
	}
	var info unix.MtdInfo
	if err := ioctl(f, unix.MEMGETINFO, unsafe.Pointer(&info)); err != nil {
		return nil, fmt.Errorf("%w: a character device that is not MTD flash (%w)", ErrUnsupported, err)
	}
	if info.Type != unix.MTD_NORFLASH {
		return nil, fmt.Errorf("%w: MTD type %d, only NOR flash", ErrUnsupported, info.Type)
	}
	es := loc.SectorSize
	if es == 0 {
		es = int64(info.Erasesize)
	}
	if es <= 0 || offset%es != 0 || int64(loc.Size)%es != 0 {
		return nil, fmt.Errorf("%w: copy at %#x, size %#x, not on erase blocks of %#x", ErrUnsupported, offset, loc.Size, es)
	}
	return &norFlash{}, nil
}

func (*norFlash) erase(f *os.File, offset, size int64) error {
	ei := unix.EraseInfo{Start: uint32(offset), Length: uint32(size)}
	// Unlocking fails on flash that has no locks; the erase says whether it mattered.
	_ = ioctl(f, unix.MEMUNLOCK, unsafe.Pointer(&ei))
	return ioctl(f, unix.MEMERASE, unsafe.Pointer(&ei))
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
