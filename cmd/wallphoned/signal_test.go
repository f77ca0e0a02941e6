package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wallphone/wallphone/call"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/store"
)

// buildAgent builds the real wallphoned binary for tests that need a process of their own.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wallphoned")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSignalEndsCallCleanly runs the agent on the real clock, puts a call through, and stops
// the agent with SIGTERM and with SIGINT in the middle of the conversation: the call must end
// properly, the record be stored and the database closed.
func TestSignalEndsCallCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a call in real time")
	}
	bin := buildAgent(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			initDemo(t, data+"-keys")
			cmd := exec.Command(bin, "--board", "sim", "--clock", "real", "--callee", "auto",
				"--log", "json", "--data", data)
			cmd.Env = append(os.Environ(), "HOME="+data)
			stdin, stdout, stderr := startPiped(t, cmd)
			t.Cleanup(func() { cmd.Process.Kill() })
			// The free hotline: no notice to sit through, and the auto called party answers.
			io.WriteString(stdin, "offhook\npress 1\npress 1001#\npress 1234#\npress 8006564673#\n")

			events := make(chan map[string]any)
			go func() {
				defer close(events)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					var e map[string]any
					if json.Unmarshal(sc.Bytes(), &e) == nil {
						events <- e
					}
				}
			}()
			// A generous guard against a hung agent; nothing is timed.
			guard := time.After(2 * time.Minute)
			next := func() map[string]any {
				select {
				case e, ok := <-events:
					if !ok {
						return nil
					}
					return e
				case <-guard:
					t.Fatalf("agent hung; stderr:\n%s", stderr.String())
				}
				return nil
			}
			for e := next(); ; e = next() {
				if e == nil {
					t.Fatalf("agent stopped before connecting; stderr:\n%s", stderr.String())
				}
				if e["msg"] == "connected" {
					break
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var ended, stopped map[string]any
			for e := next(); e != nil; e = next() {
				switch e["msg"] {
				case "call_ended":
					ended = e
				case "agent stopped":
					stopped = e
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
			}
			if ended == nil || ended["reason"] != "shutdown" || stopped == nil {
				t.Fatalf("call_ended %v, agent stopped %v", ended, stopped)
			}
			// The database was closed: it opens at once and holds the call's record.
			db, err := store.Open(filepath.Join(data, "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var recs []callrecord.Record
			db.Calls(func(_ string, b []byte) error {
				var r callrecord.Record
				if err := json.Unmarshal(b, &r); err != nil {
					return err
				}
				recs = append(recs, r)
				return nil
			})
			if len(recs) != 1 || recs[0].EndReason != "shutdown" || recs[0].Decision != string(call.Free) || recs[0].CallerID != "" {
				t.Fatalf("records %+v", recs)
			}
		})
	}
}

// TestMakeRunCtrlC is Ctrl-C in make run: the terminal sends SIGINT to the whole foreground
// process group (make, whatever the recipe runs, the phone). The phone stops cleanly and
// exits 0, so make must not report the recipe as failed ("make: *** [Makefile:..: run]
// Error 1", which go run caused: the go command exits 1 after an interrupt whatever its
// child returned).
func TestMakeRunCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo through make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-C", "../..", "run",
		"DATA="+filepath.Join(dir, "data"), "RUNBIN="+filepath.Join(dir, "bin"))
	// Its own process group, as a shell gives a foreground job, so that the signal can go
	// to the group as the terminal's does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var text strings.Builder
	// A generous guard for a cold build; nothing is timed.
	guard := time.After(5 * time.Minute)
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			text.WriteString(l + "\n")
			return l, ok
		case <-guard:
			t.Fatalf("make run hung; output:\n%s", text.String())
		}
		return "", false
	}
	for {
		l, ok := next()
		if !ok {
			t.Fatalf("make run ended before the phone was ready:\n%s", text.String())
		}
		if strings.HasPrefix(l, "Simulated wall phone ready") {
			break
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for _, ok := next(); ok; _, ok = next() {
	}
	err = cmd.Wait()
	// make itself dies of the SIGINT it was sent, as any program that does not catch it;
	// what it must not do is report the phone's clean stop as a failure.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT) {
		t.Errorf("make run: %v", err)
	}
	if strings.Contains(text.String(), "make: ***") || !strings.Contains(text.String(), "agent stopped") {
		t.Errorf("Ctrl-C did not stop the phone cleanly:\n%s", text.String())
	}
}
