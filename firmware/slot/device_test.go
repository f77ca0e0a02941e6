package slot_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/wallphone/wallphone/firmware/slot"
	"github.com/wallphone/wallphone/internal/loopdev"
)

// loopDevice is a real block device over a file of size bytes.
func loopDevice(t *testing.T, size int64) (dev, backing string) { return loopdev.Attach(t, size) }

func TestDeviceSlotRoundTrip(t *testing.T) {
	dev, backing := loopDevice(t, 2<<20)
	s, err := slot.OpenDevice(dev, bs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size() != 2<<20 {
		t.Fatalf("size %d, want %d (BLKGETSIZE64)", s.Size(), 2<<20)
	}
	img := randomBytes(4, 1<<20+2*bs+512) // a partial last block, whole sectors
	writeImage(t, s, img)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(img)], img) {
		t.Fatal("the device does not hold the image")
	}
}

func TestDeviceTooSmall(t *testing.T) {
	dev, _ := loopDevice(t, 1<<20)
	s, err := slot.OpenDevice(dev, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Begin(1<<20 + 1); !errors.Is(err, slot.ErrTooSmall) {
		t.Fatalf("got %v, want ErrTooSmall", err)
	}
}

// A device in use (here: held by another slot; on a phone: the mounted running slot) is not
// opened for writing.
func TestDeviceBusy(t *testing.T) {
	dev, _ := loopDevice(t, 1<<20)
	s, err := slot.OpenDevice(dev, bs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = slot.OpenDevice(dev, bs)
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second open: got %v, want EBUSY", err)
	}
}

func TestOpenDeviceRefusesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.img")
	if err := os.WriteFile(path, make([]byte, bs), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := slot.OpenDevice(path, bs); !errors.Is(err, slot.ErrNotBlockDevice) {
		t.Fatalf("got %v, want ErrNotBlockDevice", err)
	}
	if _, err := slot.OpenDevice("/dev/null", bs); !errors.Is(err, slot.ErrNotBlockDevice) {
		t.Fatalf("character device: got %v, want ErrNotBlockDevice", err)
	}
}
