//go:build unix

package registry

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the file read-only, so that only the pages lookups touch become resident;
// if mapping fails the file is read into memory instead.
func mapFile(path string) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := fi.Size()
	if size <= 0 || size != int64(int(size)) {
		return readFile(path)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return readFile(path)
	}
	return b, func() error {
		if err := unix.Munmap(b); err != nil {
			return fmt.Errorf("registry: unmap %s: %w", path, err)
		}
		return nil
	}, nil
}
