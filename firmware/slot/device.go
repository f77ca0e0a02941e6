package slot

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// deviceGeometry is a block device's size in bytes and its logical sector size.
func deviceGeometry(f *os.File) (size int64, sector int, err error) {
	// The kernel writes a u64 whatever the platform; x/sys has no getter for one, and the
	// request number (which encodes sizeof(size_t)) comes per GOARCH from x/sys.
	var n uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); errno != 0 {
		return 0, 0, fmt.Errorf("BLKGETSIZE64: %w", errno)
	}
	if n == 0 || n > 1<<62 {
		return 0, 0, fmt.Errorf("BLKGETSIZE64: implausible size %d", n)
	}
	sector, err = unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return 0, 0, fmt.Errorf("BLKSSZGET: %w", err)
	}
	return int64(n), sector, nil
}
