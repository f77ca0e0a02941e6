package board

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/hook"
	"github.com/wallphone/wallphone/device/keypad"
	"github.com/wallphone/wallphone/device/output"
)

// Devices are a board's GPIO drivers, running once Run is called.
type Devices struct {
	Keypad  *keypad.Scanner
	Hook    *hook.Switch
	Outputs map[string]*output.Output
	// Keys are the keypad's keys, top row first.
	Keys []device.Key
}

// Open finds the board's pins with lookup (gpioreg.ByName on a phone, after host.Init) and
// builds its drivers. An error names every pin that could not be found, so that a wrong
// --board or a missing driver shows at once.
func Open(d Definition, lookup func(name string) gpio.PinIO, log *slog.Logger) (*Devices, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	pins := map[string]gpio.PinIO{}
	var missing []string
	for _, name := range d.Pins() {
		p := lookup(name)
		if p == nil {
			missing = append(missing, name)
			continue
		}
		pins[name] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("board %s: pins not found: %s (is this the right board, and may the agent use the GPIO device?)",
			d.Name, strings.Join(missing, ", "))
	}
	layout := keypad.Layout4x3()
	if d.Keypad.Layout == "4x4" {
		layout = keypad.Layout4x4()
	}
	var rows []gpio.PinOut
	var cols []gpio.PinIn
	for _, r := range d.Keypad.Rows {
		rows = append(rows, pins[r])
	}
	for _, c := range d.Keypad.Cols {
		cols = append(cols, pins[c])
	}
	kp, err := keypad.New(keypad.Config{Rows: rows, Cols: cols, Layout: layout, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("board %s: %w", d.Name, err)
	}
	level, pull := gpio.High, gpio.PullUp
	if d.Hook.OffHook == "low" {
		level = gpio.Low
	}
	switch d.Hook.Pull {
	case "down":
		pull = gpio.PullDown
	case "none":
		pull = gpio.Float
	}
	hk, err := hook.New(hook.Config{Pin: pins[d.Hook.Pin], OffHookLevel: level, Pull: pull, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("board %s: %w", d.Name, err)
	}
	devs := &Devices{Keypad: kp, Hook: hk, Outputs: map[string]*output.Output{}}
	for role, name := range d.Outputs {
		o, err := output.New(pins[name], d.OutputsActiveHigh)
		if err != nil {
			return nil, fmt.Errorf("board %s: %s: %w", d.Name, role, err)
		}
		devs.Outputs[role] = o
	}
	for _, row := range layout {
		devs.Keys = append(devs.Keys, row...)
	}
	return devs, nil
}

// Run runs the keypad scanner and the hook switch until ctx is done, and returns nil then;
// if a driver fails, the other is stopped and the error returned.
func (d *Devices) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, run := range []func(context.Context) error{d.Keypad.Run, d.Hook.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = run(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
