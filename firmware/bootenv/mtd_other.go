//go:build !linux

package bootenv

import "os"

// norFlash exists only on Linux; elsewhere every device is written as a plain file.
type norFlash struct{}

func probeFlash(*os.File, Location, int64) (*norFlash, error) { return nil, nil }

func (*norFlash) erase(*os.File, int64, int64) error { return nil }
