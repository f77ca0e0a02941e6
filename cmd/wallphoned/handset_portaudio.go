//go:build cgo && portaudio

package main

import (
	"log/slog"

	"github.com/wallphone/wallphone/audio/portaudio"
	"github.com/wallphone/wallphone/device/board"
)

func openHandset(def board.Definition, log *slog.Logger) (handsetDevice, error) {
	h, err := portaudio.Open(portaudio.Config{Rate: def.Audio.Rate, Input: def.Audio.Input, Output: def.Audio.Output, Logger: log})
	if err != nil {
		return nil, err // not h: a nil *Handset in the interface would not be a nil interface
	}
	return h, nil
}
