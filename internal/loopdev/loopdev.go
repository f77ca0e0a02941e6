// Package loopdev gives tests a real block device: a loop device over a file, which is what
// a firmware slot is on a board (a partition), with the same ioctls, O_EXCL and page cache.
// It needs root and losetup; elsewhere the test is skipped with the reason.
package loopdev

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Attach attaches a new loop device to a new file of size bytes and detaches it when the test
// ends; it returns the device and the file behind it.
func Attach(t testing.TB, size int64) (dev, backing string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a loop device needs root; CI runs as root")
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skipf("a loop device needs losetup (Debian util-linux/mount): %v", err)
	}
	backing = filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", backing).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here (losetup --find: %v: %s)", err, bytes.TrimSpace(out))
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		// Detach only the device this test attached.
		if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev, backing
}
