//go:build !(cgo && portaudio)

package main

import (
	"errors"
	"log/slog"

	"github.com/wallphone/wallphone/device/board"
)

func openHandset(board.Definition, *slog.Logger) (handsetDevice, error) {
	return nil, errors.New("this wallphoned was built without PortAudio, so it cannot use a real handset: build it with make build-cgo")
}
