//go:build cgo && portaudio

package portaudio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	pa "github.com/gordonklaus/portaudio"

	"github.com/wallphone/wallphone/audio"
)

// paMu guards PortAudio's process-wide state, which the Go binding keeps without a lock of
// its own: initialising and terminating the library, its device list, opening, stopping and
// closing streams.
var paMu sync.Mutex

// deviceLatency is the least buffering asked of a device: two frames, enough to ride out a
// small board's scheduling hiccups, little enough for a conversation.
const deviceLatency = 2 * audio.FrameDuration

// Open initialises PortAudio, opens the input and output devices as two blocking mono 16-bit
// streams at cfg.Rate, starts them, and starts the two goroutines that feed them. Its errors
// name the device concerned; see also ErrConfig and ErrNoDevice. A Handset that Open returns
// must be closed.
func Open(cfg Config) (*Handset, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s, err := openStreams(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("handset opened", "event", "handset_open",
		"input", s.inName, "output", s.outName, "rate", cfg.Rate, "buffer_frames", cfg.Buffer)
	return start(cfg, s), nil
}

func openStreams(cfg Config) (_ streams, err error) {
	paMu.Lock()
	defer paMu.Unlock()
	if err := pa.Initialize(); err != nil {
		return streams{}, fmt.Errorf("handset: initialise PortAudio: %w", err)
	}
	var opened []*pa.Stream
	defer func() {
		if err != nil {
			for _, s := range opened {
				s.Close() // the error that matters is err
			}
			pa.Terminate()
		}
	}()

	inDev, err := findDevice(cfg.Input, false)
	if err != nil {
		return streams{}, err
	}
	outDev, err := findDevice(cfg.Output, true)
	if err != nil {
		return streams{}, err
	}
	n := audio.FrameSamples * cfg.Rate / audio.SampleRate // one frame at the device's rate
	inBuf, outBuf := make([]int16, n), make([]int16, n)
	in, err := pa.OpenStream(pa.StreamParameters{
		Input: pa.StreamDeviceParameters{
			Device: inDev, Channels: 1, Latency: max(inDev.DefaultLowInputLatency, deviceLatency),
		},
		SampleRate: float64(cfg.Rate), FramesPerBuffer: n,
	}, inBuf)
	if err != nil {
		return streams{}, fmt.Errorf("handset: open input device %q at %d Hz: %w", inDev.Name, cfg.Rate, err)
	}
	opened = append(opened, in)
	out, err := pa.OpenStream(pa.StreamParameters{
		Output: pa.StreamDeviceParameters{
			Device: outDev, Channels: 1, Latency: max(outDev.DefaultLowOutputLatency, deviceLatency),
		},
		SampleRate: float64(cfg.Rate), FramesPerBuffer: n,
	}, outBuf)
	if err != nil {
		return streams{}, fmt.Errorf("handset: open output device %q at %d Hz: %w", outDev.Name, cfg.Rate, err)
	}
	opened = append(opened, out)
	if err := in.Start(); err != nil {
		return streams{}, fmt.Errorf("handset: start input device %q: %w", inDev.Name, err)
	}
	if err := out.Start(); err != nil {
		in.Abort()
		return streams{}, fmt.Errorf("handset: start output device %q: %w", outDev.Name, err)
	}
	return streams{
		in: in, inBuf: inBuf, inName: inDev.Name,
		out: out, outBuf: outBuf, outName: outDev.Name,
		release: func() error { return release(in, out, inDev.Name, outDev.Name) },
	}, nil
}

// release stops and closes the streams, the output one after what it holds has been played,
// and lets PortAudio go.
func release(in, out *pa.Stream, inName, outName string) error {
	paMu.Lock()
	defer paMu.Unlock()
	var errs []error
	if err := out.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("handset: stop output device %q: %w", outName, err))
	}
	if err := in.Abort(); err != nil {
		errs = append(errs, fmt.Errorf("handset: stop input device %q: %w", inName, err))
	}
	if err := out.Close(); err != nil {
		errs = append(errs, fmt.Errorf("handset: close output device %q: %w", outName, err))
	}
	if err := in.Close(); err != nil {
		errs = append(errs, fmt.Errorf("handset: close input device %q: %w", inName, err))
	}
	if err := pa.Terminate(); err != nil {
		errs = append(errs, fmt.Errorf("handset: terminate PortAudio: %w", err))
	}
	return errors.Join(errs...)
}

// findDevice returns the device named name that can play (output) or record, or the default
// one for name "". If several host APIs list the name, the default host API's device wins.
func findDevice(name string, output bool) (*pa.DeviceInfo, error) {
	dir, channels := "input", func(d *pa.DeviceInfo) int { return d.MaxInputChannels }
	if output {
		dir, channels = "output", func(d *pa.DeviceInfo) int { return d.MaxOutputChannels }
	}
	devs, err := pa.Devices()
	if err != nil {
		return nil, fmt.Errorf("handset: list devices: %w", err)
	}
	if name == "" {
		var d *pa.DeviceInfo
		if output {
			d, err = pa.DefaultOutputDevice()
		} else {
			d, err = pa.DefaultInputDevice()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: no default %s device (%s): %w", ErrNoDevice, dir, listDevices(devs, channels), err)
		}
		return d, nil
	}
	var found *pa.DeviceInfo
	hostAPI, _ := pa.DefaultHostApi() // without one, any host API's device will do
	for _, d := range devs {
		if d.Name != name || channels(d) < 1 {
			continue
		}
		if found == nil || (hostAPI != nil && d.HostApi == hostAPI) {
			found = d
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s device %q (%s)", ErrNoDevice, dir, name, listDevices(devs, channels))
	}
	return found, nil
}

// listDevices says which devices have channels, for an error message.
func listDevices(devs []*pa.DeviceInfo, channels func(*pa.DeviceInfo) int) string {
	var names []string
	for _, d := range devs {
		if channels(d) > 0 {
			names = append(names, strconv.Quote(d.Name))
		}
	}
	if len(names) == 0 {
		return "PortAudio lists none"
	}
	return "PortAudio lists " + strings.Join(names, ", ")
}
