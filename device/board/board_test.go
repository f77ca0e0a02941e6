package board_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/board"
	"github.com/wallphone/wallphone/device/board/boardtest"
	"github.com/wallphone/wallphone/device/keypad/keypadtest"
)

func TestBuiltins(t *testing.T) {
	names := board.Names()
	if strings.Join(names, ",") != "gpiochip,rpi" {
		t.Fatalf("built-in boards %v", names)
	}
	for _, n := range names {
		d, err := board.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		if d.Name != n || len(d.Pins()) < 9 {
			t.Errorf("%s: %+v", n, d)
		}
		if n == "rpi" && (d.Firmware == nil || d.Firmware.Slot("a") != "/dev/mmcblk0p2" || d.Firmware.Slot("b") != "/dev/mmcblk0p3") {
			t.Errorf("rpi firmware slots %+v", d.Firmware)
		}
	}
	for _, bad := range []string{"sim", "nosuch", "../boards/rpi", "rpi.json"} {
		if _, err := board.Lookup(bad); err == nil {
			t.Errorf("%q found", bad)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	good, err := os.ReadFile("boards/rpi.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, old, new, want string }{
		{"unknown field", `"outputs_active_high"`, `"outputs_active_hi"`, "unknown field"},
		{"layout", `"4x3"`, `"3x4"`, "keypad.layout"},
		{"a row short", `, "GPIO19"]`, `]`, "needs 4 rows"},
		{"pin twice", `"GPIO20"]`, `"GPIO5"]`, "GPIO5 is used twice"},
		{"hook level", `"off_hook": "high"`, `"off_hook": "up"`, "hook.off_hook"},
		{"pull", `"pull": "up"`, `"pull": "sideways"`, "hook.pull"},
		{"rate", `"rate": 16000`, `"rate": 44100`, "audio.rate"},
		{"named sim", `"name": "rpi"`, `"name": "sim"`, "other than sim"},
		{"empty pin", `"GPIO17"`, `""`, "without a name"},
		{"firmware hardware", `"hardware": "rpi"`, `"hardware": "RPi_4"`, "firmware.hardware"},
		{"slot relative", `"slot_a": "/dev/mmcblk0p2"`, `"slot_a": "mmcblk0p2"`, "firmware.slot_a"},
		{"slot unclean", `"slot_b": "/dev/mmcblk0p3"`, `"slot_b": "/dev/../dev/mmcblk0p3"`, "firmware.slot_b"},
		{"one slot twice", `"/dev/mmcblk0p3"`, `"/dev/mmcblk0p2"`, "both /dev/mmcblk0p2"},
		{"env config relative", `"slot_b": "/dev/mmcblk0p3"`, `"slot_b": "/dev/mmcblk0p3", "env_config": "fw_env.config"`, "firmware.env_config"},
		{"firmware unknown field", `"slot_b"`, `"slot_c"`, "unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := strings.Replace(string(good), tt.old, tt.new, 1)
			if b == string(good) {
				t.Fatalf("no %q in rpi.json", tt.old)
			}
			if _, err := board.Parse([]byte(b)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// fakeBoard gives the rpi board fake pins.
func fakeBoard(t *testing.T) (board.Definition, map[string]gpio.PinIO, *keypadtest.Matrix) {
	d, err := board.Lookup("rpi")
	if err != nil {
		t.Fatal(err)
	}
	f := boardtest.New(d)
	return d, f.Pins, f.Matrix
}

func TestOpenMissingPins(t *testing.T) {
	d, pins, _ := fakeBoard(t)
	delete(pins, "GPIO17")
	delete(pins, "GPIO5")
	_, err := board.Open(d, func(n string) gpio.PinIO { return pins[n] }, nil)
	if err == nil || !strings.Contains(err.Error(), "pins not found: GPIO17, GPIO5") {
		t.Fatalf("err %v", err)
	}
}

// TestOpenAndRun runs the board's real drivers on fake pins: a key pressed on the matrix and
// the handset lifted reach the agent's interfaces.
func TestOpenAndRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, pins, m := fakeBoard(t)
		devs, err := board.Open(d, func(n string) gpio.PinIO { return pins[n] }, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(devs.Keys) != "123456789*0#" || len(devs.Outputs) != 3 {
			t.Fatalf("keys %q outputs %v", string(devs.Keys), devs.Outputs)
		}
		// The switch is closed to ground while the handset rests on it.
		pins[d.Hook.Pin].Out(gpio.Low)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- devs.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()

		m.Press('5')
		time.Sleep(200 * time.Millisecond) // simulated time: the scanner debounces
		m.Release('5')
		time.Sleep(200 * time.Millisecond)
		if k, ok := devs.Keypad.PollKey(); !ok || k != device.Key('5') {
			t.Fatalf("key %q %v", k, ok)
		}
		if devs.Hook.OffHook() {
			t.Fatal("off-hook before lifting")
		}
		pins[d.Hook.Pin].Out(gpio.High) // lifted: this board's switch reads High off-hook
		time.Sleep(500 * time.Millisecond)
		if !devs.Hook.OffHook() {
			t.Fatal("lifting the handset was not seen")
		}
		if err := devs.Outputs["ringer"].Set(true); err != nil || pins["GPIO24"].Read() != gpio.High {
			t.Fatalf("ringer: %v", err)
		}
	})
}

// FuzzParse: a board file of any bytes is a definition that validates, or an error.
func FuzzParse(f *testing.F) {
	for _, n := range board.Names() {
		b, err := os.ReadFile("boards/" + n + ".json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"name": "x", "firmware": {"hardware": "x", "slot_a": "/dev/a", "slot_b": "/dev/a"}}`))
	f.Add([]byte(`{"name": "rpi", "name": "sim"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := board.Parse(b)
		if err != nil {
			return
		}
		if verr := d.Validate(); verr != nil {
			t.Fatalf("parsed a definition that does not validate: %v", verr)
		}
		if fw := d.Firmware; fw != nil && (fw.SlotA == fw.SlotB || fw.Hardware == "") {
			t.Fatalf("firmware layout %+v accepted", fw)
		}
	})
}
