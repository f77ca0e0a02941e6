package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/device"
	"github.com/wallphone/wallphone/device/board"
	"github.com/wallphone/wallphone/device/board/boardtest"
	"github.com/wallphone/wallphone/device/sim"
)

// fakeHandset is a sound card that is not there: the simulated board's handset, with a Close.
type fakeHandset struct{ *sim.Board }

func (fakeHandset) Close() error { return nil }

// TestRunBoard runs the agent as on a phone — the rpi board's real keypad scanner and hook
// driver on fake pins, the call loop on the wall clock — and works it like a caller: lift
// the handset, choose a language, and stop it with a cancel as SIGTERM would.
func TestRunBoard(t *testing.T) {
	if testing.Short() {
		t.Skip("runs in real time")
	}
	dir := t.TempDir()
	simData := filepath.Join(dir, "sim")
	runAgent(t, simData, "quit\n") // the demo policy and registry, as a facility would provide them

	def, err := board.Lookup("rpi")
	if err != nil {
		t.Fatal(err)
	}
	fake := boardtest.New(def)
	m, pins, hookPin := fake.Matrix, fake.Pins, fake.Hook
	devs, err := board.Open(def, fake.Lookup, nil)
	if err != nil {
		t.Fatal(err)
	}
	hookPin.Out(gpio.Low) // on-hook
	hs := fakeHandset{sim.New(sim.Options{Mic: audio.Tone(0.1, 440)})}
	hw := &hardware{def: def, devs: devs, handset: hs,
		board: device.Board{Name: def.Name, Keypad: devs.Keypad, Hook: devs.Hook, Handset: hs}}

	// Enrolled as a technician would: the facility, the repository and its root.
	phoneData := filepath.Join(dir, "phone")
	if err := os.CopyFS(filepath.Join(phoneData, "conf"), os.DirFS(filepath.Join(simData, "conf"))); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"--board", "rpi", "--log", "json", "--data", phoneData}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runBoard(ctx, cfg, hw, pw); pw.Close() }()
	events := bufio.NewScanner(pr)
	guard := time.AfterFunc(2*time.Minute, func() { cancel(); pr.Close() }) // against a hang, not a timing
	defer guard.Stop()
	await := func(want string) {
		t.Helper()
		for events.Scan() {
			if strings.Contains(events.Text(), want) {
				return
			}
		}
		t.Fatalf("no %s", want)
	}
	await(`"msg":"agent started"`)
	hookPin.Out(gpio.High) // lifted
	await(`"prompt":"greeting"`)
	m.Press('2')
	await(`"msg":"language","event":"language"`)
	m.Release('2')
	await(`"prompt":"enter_id","lang":"es"`)
	if pins[def.Outputs["in_call"]].Read() != gpio.High || pins[def.Outputs["recording"]].Read() != gpio.Low {
		t.Error("lights: want in call on, recording off")
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if hs.Heard().Frames == 0 {
		t.Error("nothing reached the handset")
	}
}
