package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/firmware/bootenv"
)

// TestSimBoot runs the real wallphoned with --slots, as make run does: its first start flashes
// it into slot a and boots from there; an update on trial in slot b is booted and counted;
// when it never commits, the bootloader's logic falls back to slot a after the limit (three
// trial boots), as dist/boot.cmd does on a board.
func TestSimBoot(t *testing.T) {
	bin := buildAgent(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	initDemo(t, data+"-keys")
	boot := func() []map[string]any {
		t.Helper()
		cmd := exec.Command(bin, "--board", "sim", "--slots", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.Stdin = strings.NewReader("quit\n")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("wallphoned: %v\n%s%s", err, out, stderr.String())
		}
		var evs []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) == nil && strings.HasPrefix(e["event"].(string), "firmware_") {
				evs = append(evs, e)
			}
		}
		return evs
	}
	want := func(evs []map[string]any, event string, fields map[string]any) {
		t.Helper()
		for _, e := range evs {
			if e["event"] != event {
				continue
			}
			for k, v := range fields {
				if e[k] != v {
					t.Fatalf("%s: %s = %v, want %v (events %v)", event, k, e[k], v, evs)
				}
			}
			return
		}
		t.Fatalf("no %s in %v", event, evs)
	}

	evs := boot()
	want(evs, "firmware_flashed", map[string]any{"slot": "a"})
	want(evs, "firmware_boot", map[string]any{"slot": "a", "trial": false})
	want(evs, "firmware_running", map[string]any{"slot": "a"})
	img, _ := os.ReadFile(slotImage(data, "a"))
	self, _ := os.ReadFile(bin)
	if !bytes.Equal(img, self) {
		t.Fatal("slot a does not hold the build that started")
	}
	if evs := boot(); count(evs, "firmware_flashed") != 0 || count(evs, "firmware_boot") != 1 {
		t.Fatalf("a second start flashed again or booted otherwise: %v", evs)
	}

	// An update lands in slot b, marked to be tried.
	if err := os.WriteFile(slotImage(data, "b"), self, 0o700); err != nil {
		t.Fatal(err)
	}
	env, err := bootenv.Open(simEnv(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := bootenv.MarkTrial(env, "b"); err != nil {
		t.Fatal(err)
	}
	for n := 1.0; n <= 3; n++ {
		evs := boot()
		want(evs, "firmware_boot", map[string]any{"slot": "b", "trial": true, "count": n})
		want(evs, "firmware_running", map[string]any{"slot": "b"})
	}
	// Never committed: the fourth boot falls back.
	evs = boot()
	want(evs, "firmware_boot", map[string]any{"slot": "a", "fell_back_from": "b"})
	want(evs, "firmware_running", map[string]any{"slot": "a"})
	if evs := boot(); count(evs, "firmware_boot") != 1 {
		t.Fatalf("after the fallback: %v", evs)
	} else {
		want(evs, "firmware_boot", map[string]any{"slot": "a", "trial": false})
	}
}

// TestFirmwareUpdate is an update of the simulated phone end to end, with the real binaries:
// version 2, a different build, is published in the demo repository; the phone finds it at
// its check, installs it into slot b (verified block by block), reboots into it once idle,
// boots it on trial, finds itself healthy and commits; slot b then holds version 2's build.
func TestFirmwareUpdate(t *testing.T) {
	bin1 := buildAgent(t)
	bin2 := filepath.Join(t.TempDir(), "wallphoned-2")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", bin2, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	initDemo(t, data+"-keys")
	start := func() (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
		t.Helper()
		cmd := exec.Command(bin1, "--board", "sim", "--slots", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, in, bufio.NewScanner(out)
	}
	// The factory image, enrolled, with its rules.
	cmd, in, sc := start()
	io.WriteString(in, "quit\n")
	for sc.Scan() {
	}
	cmd.Wait()

	if err := demo.PublishFirmware(data+"-keys", "sim", 2, bin2, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	cmd, in, sc = start()
	var seen []string
	await := func(event string) map[string]any {
		t.Helper()
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			ev, _ := e["event"].(string)
			if strings.HasPrefix(ev, "firmware_") {
				seen = append(seen, ev)
			}
			if ev == event {
				return e
			}
			if ev == "firmware_error" || ev == "firmware_failed" {
				t.Fatalf("%s: %v (events %v)", ev, e, seen)
			}
		}
		t.Fatalf("no %s; firmware events %v", event, seen)
		return nil
	}
	await("firmware_ready")
	io.WriteString(in, "wait 1s\n") // a frame of an idle phone: the reboot
	await("firmware_reboot")
	if e := await("firmware_boot"); e["slot"] != "b" || e["trial"] != true {
		t.Fatalf("boot %v", e)
	}
	await("firmware_trial")
	if e := await("firmware_committed"); e["version"] != 2.0 || e["slot"] != "b" {
		t.Fatalf("commit %v", e)
	}
	t.Logf("firmware events: %v", seen)
	io.WriteString(in, "quit\n")
	for sc.Scan() {
	}
	cmd.Wait()
	img, _ := os.ReadFile(slotImage(data, "b"))
	want, _ := os.ReadFile(bin2)
	if !bytes.HasPrefix(img, want) {
		t.Fatal("slot b does not hold version 2's build")
	}
	env, err := bootenv.Open(simEnv(data))
	if err != nil {
		t.Fatal(err)
	}
	if good, _ := env.Get("good_slot"); good != "b" {
		t.Fatalf("good slot %q after the commit", good)
	}
}

// TestFirmwareRollback: a version that never comes up (its image exits at once) is booted on
// trial three times, then the bootloader falls back to the good slot; the phone there records
// the version as failed and does not install it again.
func TestFirmwareRollback(t *testing.T) {
	bin := buildAgent(t)
	broken := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexit 3\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	initDemo(t, data+"-keys")
	run := func(input string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, "--board", "sim", "--slots", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		cmd.Stdin = strings.NewReader(input)
		out, err := cmd.Output()
		return string(out), err
	}
	if _, err := run("quit\n"); err != nil {
		t.Fatal(err)
	}
	if err := demo.PublishFirmware(data+"-keys", "sim", 2, broken, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	// Installed, then the reboot into it once a frame passes: the broken image runs and exits.
	cmd := exec.Command(bin, "--board", "sim", "--slots", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	in, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() }) // a phone that never reboots
	defer first.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.Contains(sc.Text(), `"event":"firmware_ready"`) {
	}
	io.WriteString(in, "wait 1s\n")
	for sc.Scan() {
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("first boot of the broken version: %v", err)
	}
	for n := 2; n <= 3; n++ {
		if _, err := run("quit\n"); !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Fatalf("trial boot %d: %v", n, err)
		}
	}
	cmd = exec.Command(bin, "--board", "sim", "--slots", "--clock", "virtual", "--log", "json", "--data", data, "--vault", "none")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	in, _ = cmd.StdinPipe()
	stdout, _ = cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A phone that never says it is current would wait for its input for ever.
	guard := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer guard.Stop()
	var lines strings.Builder
	sc = bufio.NewScanner(stdout)
	for sc.Scan() {
		lines.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `"event":"firmware_current"`) {
			io.WriteString(in, "quit\n")
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after the fallback: %v\n%s", err, lines.String())
	}
	out := lines.String()
	for _, want := range []string{`"event":"firmware_current","committed":0,"not_retried":"firmware/sim_2.img"`, `"event":"firmware_boot","slot":"a","trial":false,"count":4,"fell_back_from":"b"`,
		`"event":"firmware_failed","version":2,"slot":"b","running":"a"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"event":"firmware_installing"`) {
		t.Errorf("the failed version was installed again:\n%s", out)
	}
}

// count counts the events named event.
func count(evs []map[string]any, event string) int {
	n := 0
	for _, e := range evs {
		if e["event"] == event {
			n++
		}
	}
	return n
}
