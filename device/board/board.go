// Package board holds the kinds of wall phone as data: which GPIO pin is which key row and
// column, the hook switch, the LEDs and the ringer, and which sound device is the handset.
// A board is chosen by name (--board) from the definitions built in, or read from a file for
// a board that is not; Open finds its pins by name and starts the drivers. A board that updates
// its firmware over the air names its two slots and its bootloader's environment too.
package board

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wallphone/wallphone/firmware/release"
	"github.com/wallphone/wallphone/internal/strictjson"
)

//go:embed boards/*.json
var builtin embed.FS

// Definition is one kind of wall phone.
type Definition struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Keypad      struct {
		Layout string   `json:"layout"` // "4x3" or "4x4"
		Rows   []string `json:"rows"`   // pin names, top row first
		Cols   []string `json:"cols"`   // pin names, left column first
	} `json:"keypad"`
	Hook struct {
		Pin     string `json:"pin"`
		OffHook string `json:"off_hook"` // the level that means lifted: "high" or "low"
		Pull    string `json:"pull"`     // "up", "down" or "none"
	} `json:"hook"`
	// Outputs are LEDs and the ringer, by role ("in_call", "recording", "ringer").
	Outputs           map[string]string `json:"outputs"`
	OutputsActiveHigh bool              `json:"outputs_active_high"`
	Audio             struct {
		Input  string `json:"input"`  // device name; "" is the default device
		Output string `json:"output"` // device name; "" is the default device
		Rate   int    `json:"rate"`   // 8000 or 16000
	} `json:"audio"`
	// Firmware, if set, is where the board keeps its two firmware slots and its bootloader's
	// environment: a board without it does not update its firmware over the air.
	Firmware *Firmware `json:"firmware,omitempty"`
}

// Firmware is a board's A/B firmware layout.
type Firmware struct {
	// Hardware names the board in firmware releases (firmware/<hardware>_<version>.img).
	Hardware string `json:"hardware"`
	// SlotA and SlotB are the slots' block devices (partitions: /dev/mmcblk0p2).
	SlotA string `json:"slot_a"`
	SlotB string `json:"slot_b"`
	// EnvConfig is the fw_env.config that says where U-Boot's environment is, as
	// fw_printenv reads it; "" is /etc/fw_env.config.
	EnvConfig string `json:"env_config,omitempty"`
}

// DefaultEnvConfig is where libubootenv's tools look for the environment's location.
const DefaultEnvConfig = "/etc/fw_env.config"

// Slot is the block device of slot "a" or "b".
func (f Firmware) Slot(name string) string {
	if name == "b" {
		return f.SlotB
	}
	return f.SlotA
}

func (f Firmware) validate(board string) error {
	if err := release.CheckHardware(f.Hardware); err != nil {
		return fmt.Errorf("board %s: firmware.hardware: %w", board, err)
	}
	for _, p := range []struct{ field, path string }{{"slot_a", f.SlotA}, {"slot_b", f.SlotB}} {
		if !filepath.IsAbs(p.path) || filepath.Clean(p.path) != p.path {
			return fmt.Errorf("board %s: firmware.%s %q: want the absolute path of a block device", board, p.field, p.path)
		}
	}
	if f.SlotA == f.SlotB {
		return fmt.Errorf("board %s: firmware.slot_a and slot_b are both %s", board, f.SlotA)
	}
	if f.EnvConfig != "" && !filepath.IsAbs(f.EnvConfig) {
		return fmt.Errorf("board %s: firmware.env_config %q: want an absolute path", board, f.EnvConfig)
	}
	return nil
}

// ErrUnknown is returned by Lookup for a name no built-in board has.
var ErrUnknown = errors.New("board: unknown board")

// Names lists the built-in boards.
func Names() []string {
	entries, _ := fs.ReadDir(builtin, "boards")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// Lookup returns a built-in board.
func Lookup(name string) (Definition, error) {
	b, err := builtin.ReadFile("boards/" + name + ".json")
	if err != nil || strings.ContainsAny(name, "/.") {
		return Definition{}, fmt.Errorf("%w %q (built in: %s, or sim)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	return Parse(b)
}

// Load reads a board definition from a file.
func Load(path string) (Definition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Definition{}, fmt.Errorf("board file: %w", err)
	}
	d, err := Parse(b)
	if err != nil {
		return Definition{}, fmt.Errorf("board file %s: %w", path, err)
	}
	return d, nil
}

// Parse reads and checks a definition.
func Parse(b []byte) (Definition, error) {
	var d Definition
	if err := strictjson.Decode(b, &d); err != nil {
		return Definition{}, fmt.Errorf("board: %w", err)
	}
	return d, d.Validate()
}

// Validate checks that the definition describes a phone the drivers can run.
func (d Definition) Validate() error {
	if d.Name == "" || d.Name == "sim" {
		return fmt.Errorf("board: name %q: want a name other than sim", d.Name)
	}
	rows, cols := 4, 3
	switch d.Keypad.Layout {
	case "4x3":
	case "4x4":
		cols = 4
	default:
		return fmt.Errorf("board %s: keypad.layout %q: want 4x3 or 4x4", d.Name, d.Keypad.Layout)
	}
	if len(d.Keypad.Rows) != rows || len(d.Keypad.Cols) != cols {
		return fmt.Errorf("board %s: keypad %s needs %d rows and %d columns, has %d and %d",
			d.Name, d.Keypad.Layout, rows, cols, len(d.Keypad.Rows), len(d.Keypad.Cols))
	}
	if d.Hook.OffHook != "high" && d.Hook.OffHook != "low" {
		return fmt.Errorf("board %s: hook.off_hook %q: want high or low", d.Name, d.Hook.OffHook)
	}
	if d.Hook.Pull != "up" && d.Hook.Pull != "down" && d.Hook.Pull != "none" {
		return fmt.Errorf("board %s: hook.pull %q: want up, down or none", d.Name, d.Hook.Pull)
	}
	if d.Audio.Rate != 8000 && d.Audio.Rate != 16000 {
		return fmt.Errorf("board %s: audio.rate %d: want 8000 or 16000", d.Name, d.Audio.Rate)
	}
	if d.Firmware != nil {
		if err := d.Firmware.validate(d.Name); err != nil {
			return err
		}
	}
	var pins []string
	pins = append(pins, d.Keypad.Rows...)
	pins = append(pins, d.Keypad.Cols...)
	pins = append(pins, d.Hook.Pin)
	for role, p := range d.Outputs {
		if role == "" {
			return fmt.Errorf("board %s: an output without a role", d.Name)
		}
		pins = append(pins, p)
	}
	seen := map[string]bool{}
	for _, p := range pins {
		if p == "" {
			return fmt.Errorf("board %s: a pin without a name", d.Name)
		}
		if seen[p] {
			return fmt.Errorf("board %s: pin %s is used twice", d.Name, p)
		}
		seen[p] = true
	}
	return nil
}

// Pins lists every pin the board uses, sorted.
func (d Definition) Pins() []string {
	var pins []string
	pins = append(pins, d.Keypad.Rows...)
	pins = append(pins, d.Keypad.Cols...)
	pins = append(pins, d.Hook.Pin)
	for _, p := range d.Outputs {
		pins = append(pins, p)
	}
	slices.Sort(pins)
	return pins
}
