//go:build cgo && portaudio

package portaudio

import "errors"

var (
	// ErrConfig is returned by Open for a Config it cannot use: a rate other than 8000 or
	// 16000, a gain outside 0 to 4, a buffer outside 1 to 500 frames.
	ErrConfig = errors.New("handset: invalid config")
	// ErrNoDevice is returned by Open when PortAudio lists no input or output device by the
	// configured name, or has no default device for a direction configured with "". The
	// error names the devices it does list.
	ErrNoDevice = errors.New("handset: no such device")
)
