package agent

import (
	"fmt"
	"io"
	"os"

	"github.com/wallphone/wallphone/firmware/slot"
)

// slotBlock is the block size of firmware slots and of the block index releases publish.
const slotBlock = 4096

// open opens the named slot to write an image of n bytes into: a board's partition as it is,
// or the simulated phone's file, made large enough.
func (s *Slots) open(name string, n int64) (*slot.Slot, error) {
	if s.BlockDevices {
		return slot.OpenDevice(s.Image(name), slotBlock)
	}
	return slot.CreateFile(s.Image(name), max(s.Capacity, n), slotBlock)
}

// size is the bytes in the named slot: a file's length, or a partition's size (for the
// factory's image, whose own length the phone was never told: blocks past it are read and
// hashed for nothing, never trusted, since every block is checked against the new index).
func (s *Slots) size(name string) (int64, error) {
	f, err := os.Open(s.Image(name))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of slot %s: %w", name, err)
	}
	return n, nil
}
