package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"github.com/wallphone/wallphone/provisioning/ptytest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
)

// ptyLine is a serial cable between two programs: two pseudo-terminals whose master ends
// the test joins, so that each program opens a slave end by name as it would a real port.
type ptyLine struct {
	a, b     *os.File // slave ends, kept open so that the masters do not read EIO
	ma, mb   *os.File
	copiesWG sync.WaitGroup
}

func newPtyLine(t *testing.T) *ptyLine {
	t.Helper()
	l := &ptyLine{}
	l.ma, l.a = ptytest.Open(t)
	l.mb, l.b = ptytest.Open(t)
	l.copiesWG.Add(2)
	go func() { defer l.copiesWG.Done(); io.Copy(l.ma, l.mb) }()
	go func() { defer l.copiesWG.Done(); io.Copy(l.mb, l.ma) }()
	t.Cleanup(func() {
		l.ma.Close()
		l.mb.Close()
		l.copiesWG.Wait()
		l.a.Close()
		l.b.Close()
	})
	return l
}

// ctl runs wallphonectl in this process and returns its output and exit status.
func ctl(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	err := run(args, strings.NewReader(stdin), &out)
	code := 0
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
		out.WriteString("error: " + err.Error() + "\n")
	case errors.Is(err, errUsage):
		code = 2
	default:
		code = 1
		out.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), code
}

// agentLog collects the agent's JSON log lines and tells when one arrives.
type agentLog struct {
	mu    sync.Mutex // guards lines
	lines []map[string]any
	added chan struct{}
}

func (l *agentLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		l.mu.Lock()
		l.lines = append(l.lines, m)
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
	}
}

func (l *agentLog) count(key, value string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.lines {
		if m[key] == value {
			n++
		}
	}
	return n
}

func (l *agentLog) await(t *testing.T, key, value string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for l.count(key, value) == 0 {
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("the agent never logged %s=%s", key, value)
		}
	}
}

// TestConsoleEnrolment is a technician's whole visit, with the real agent on one end of a
// serial line and wallphonectl on the other: keys and certificate from wallphonectl, hello,
// enrolment, status, logs, the refusals a script sees as exit statuses, and a factory reset.
func TestConsoleEnrolment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	if out, code := ctl(t, "", "keys", "provisioning", "--facility", "county-jail", "--out", p("prov")); code != 0 || !strings.HasPrefix(out, "county-jail ed25519:") {
		t.Fatalf("keys provisioning: %d %s", code, out)
	}
	if out, code := ctl(t, "", "keys", "technician", "--out", p("tech")); code != 0 || !strings.HasPrefix(out, "ed25519:") {
		t.Fatalf("keys technician: %d %s", code, out)
	}
	if out, code := ctl(t, "", "console", "cert", "--provisioning-key", p("prov.key"), "--facility", "county-jail",
		"--name", "Ana Tech", "--technician-pub", p("tech.pub"), "--valid", "30d", "--out", p("tech.cert")); code != 0 {
		t.Fatalf("console cert: %d %s", code, out)
	}
	// A technician of another facility, whose key the phone also trusts before enrolment.
	ctl(t, "", "keys", "provisioning", "--facility", "state-prison", "--out", p("other"))
	ctl(t, "", "console", "cert", "--provisioning-key", p("other.key"), "--facility", "state-prison",
		"--name", "Bo", "--technician-pub", p("tech.pub"), "--out", p("other.cert"))
	trust, _ := os.ReadFile(p("prov.pub"))
	other, _ := os.ReadFile(p("other.pub"))
	os.WriteFile(p("provisioning.pub"), append(trust, other...), 0o644)

	bin := filepath.Join(dir, "wallphoned")
	if out, err := exec.Command("go", "build", "-o", bin, "../wallphoned").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	line := newPtyLine(t)
	data := filepath.Join(dir, "data")
	agent, _, stderr := startAgent(t, bin, data, line.a.Name(), p("provisioning.pub"))

	port := []string{"console", "--port", line.b.Name(), "--timeout", "20s"}
	login := append(append([]string{}, port...), "--cert", p("tech.cert"), "--key", p("tech.key"))
	cmd := func(args ...string) []string { return append(append([]string{}, login...), args...) }

	out, code := ctl(t, "", append(port, "hello")...)
	if code != 0 || !strings.Contains(out, "device id:       wp-") || !strings.Contains(out, "(not enrolled)") || !regexp.MustCompile(`public key:      [0-9a-f]{64}\n`).MatchString(out) {
		t.Fatalf("hello: %d\n%s", code, out)
	}
	// Nothing without a certificate, and a script can tell why.
	if out, code := ctl(t, "", append(append([]string{}, port...), "status")...); code != 2 {
		t.Fatalf("status without a certificate: %d %s", code, out)
	}
	conf := filepath.Join(dir, "conf")
	os.Mkdir(conf, 0o700)
	id, _ := age.GenerateX25519Identity()
	os.WriteFile(filepath.Join(conf, "recipients.txt"), []byte(id.Recipient().String()+"\n"), 0o600)
	os.WriteFile(filepath.Join(conf, "sip.json"), []byte(`{"server":"sip.county.example:5060","user":"wp1","password":"`+strings.Repeat("x", 6000)+`"}`), 0o600)
	os.WriteFile(filepath.Join(conf, "audit.key"), []byte(strings.Repeat("5a", 32)+"\n"), 0o600)
	// A facility file (the demo's enrol/ has one) that names another facility than the
	// certificate's is refused before anything is sent; one that agrees is not sent at all.
	os.WriteFile(filepath.Join(conf, "facility"), []byte("state-prison\n"), 0o600)
	if out, code := ctl(t, "", cmd("enroll", "--conf", conf)...); code != 1 || !strings.Contains(out, `names facility "state-prison", but your certificate is for "county-jail"`) {
		t.Fatalf("enroll with another facility's file: %d\n%s", code, out)
	}
	os.WriteFile(filepath.Join(conf, "facility"), []byte("county-jail\n"), 0o600)
	out, code = ctl(t, "", cmd("enroll", "--conf", conf)...)
	if code != 0 || !strings.Contains(out, "enrolled in:     county-jail") || !strings.Contains(out, "installed:       audit.key, recipients.txt, sip.json") {
		t.Fatalf("enroll: %d\n%s\n%s", code, out, stderr.String())
	}
	for _, name := range []string{"recipients.txt", "sip.json", "audit.key", "facility"} {
		if _, err := os.Stat(filepath.Join(data, "conf", name)); err != nil {
			t.Fatalf("after enrolment: %v", err)
		}
	}
	out, code = ctl(t, "", append(port, "hello")...)
	if code != 0 || !strings.Contains(out, "county-jail") {
		t.Fatalf("hello after enrolment: %d\n%s", code, out)
	}
	// An item the phone does not take.
	bad := filepath.Join(dir, "bad")
	os.Mkdir(bad, 0o700)
	os.WriteFile(filepath.Join(bad, "policy.json"), []byte("{}"), 0o600)
	if out, code := ctl(t, "", cmd("enroll", "--conf", bad)...); code != 6 || !strings.Contains(out, "not an item") {
		t.Fatalf("enroll of an unknown item: %d %s", code, out)
	}
	out, code = ctl(t, "", cmd("status")...)
	if code != 0 || !strings.Contains(out, "facility:        county-jail") || !strings.Contains(out, "spool:") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	// What is running, said plainly: the simulated phone uploads to its directory vault, and
	// its registry line says only the registry's version and freshness.
	if !strings.Contains(out, "uplink:          uploading to directory ") || !strings.Contains(out, "registry:        version 0, no repository") ||
		!strings.Contains(out, "sip:             simulated called party") {
		t.Fatalf("status does not say what runs:\n%s", out)
	}
	// Enrolled here without a repository, the phone has no policy or registry yet: the self
	// test says so, and a script sees a fault.
	out, code = ctl(t, "", cmd("selftest")...)
	if code != 7 || !strings.Contains(out, "ok    state database") || !strings.Contains(out, "FAIL  policy") || !strings.Contains(out, "FAIL  registry") {
		t.Fatalf("selftest: %d\n%s", code, out)
	}
	out, code = ctl(t, "", cmd("logs", "--lines", "20")...)
	if code != 0 || !strings.Contains(out, "console listening") {
		t.Fatalf("logs: %d\n%s", code, out)
	}
	// Every console action is in the audit log.
	if b, err := os.ReadFile(filepath.Join(data, "audit.log")); err != nil || !bytes.Contains(b, []byte(`"kind":"console_command"`)) || !bytes.Contains(b, []byte(`"kind":"console_auth_ok"`)) {
		t.Fatalf("audit log: %v\n%s", err, b)
	}
	// The interactive mode: one session, a prompt, help, commands, an error that does not end it.
	out, code = ctl(t, "help\nstatus\nlogs --lines 0\nenroll\nquit\n", cmd("shell")...)
	if code != 0 || !strings.Contains(out, "> commands: hello, status") || !strings.Contains(out, "facility:        county-jail") ||
		!strings.Contains(out, "error: the phone refused: bad_request") || !strings.Contains(out, "error: usage: enroll --conf DIR") {
		t.Fatalf("shell: %d\n%s", code, out)
	}
	// A reset not confirmed does nothing.
	if out, code := ctl(t, "not-the-id\n", cmd("reset")...); code != 8 {
		t.Fatalf("unconfirmed reset: %d %s", code, out)
	}
	if ok, failed := auditCount(t, data, "console_auth_ok"), auditCount(t, data, "console_auth_failed"); ok < 6 || failed != 0 {
		t.Fatalf("audit: %d ok, %d failed", ok, failed)
	}
	out, code = ctl(t, "", cmd("reset", "--yes")...)
	if code != 0 || !strings.Contains(out, "wiping") {
		t.Fatalf("reset: %d\n%s", code, out)
	}
	done := make(chan error, 1)
	go func() { done <- agent.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent after reset: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop after the reset")
	}
	for _, name := range []string{"device.key", "conf", "state.db", "spool"} {
		if _, err := os.Stat(filepath.Join(data, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the reset: %v", name, err)
		}
	}

	// The wiped phone starts afresh, unenrolled, and still lets in only a right answer: a
	// wrong key is refused (4), and the next attempt, even a right one, waits (5).
	startAgent(t, bin, data, line.a.Name(), p("provisioning.pub"))
	if out, code := ctl(t, "", append(port, "hello")...); code != 0 || !strings.Contains(out, "(not enrolled)") {
		t.Fatalf("hello after reset: %d %s", code, out)
	}
	if out, code := ctl(t, "", append(append([]string{}, port...), "--cert", p("tech.cert"), "--key", p("prov.key"), "status")...); code != 4 || !strings.Contains(out, "does not verify") {
		t.Fatalf("status with the wrong key: %d %s", code, out)
	}
	if out, code := ctl(t, "", cmd("status")...); code != 5 || !strings.Contains(out, "try again") {
		t.Fatalf("status during backoff: %d %s", code, out)
	}
	if failed, ok := auditCount(t, data, "console_auth_failed"), auditCount(t, data, "console_auth_ok"); failed != 2 || ok != 0 {
		t.Fatalf("audit after reset: %d failed, %d ok", failed, ok)
	}
}

// auditCount counts the entries of a kind in the phone's audit log.
func auditCount(t *testing.T, data, kind string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(`"kind":"`+kind+`"`))
}

// startAgent runs the simulated phone with its console on port; it is killed at the end.
func startAgent(t *testing.T, bin, data, port, trust string) (*exec.Cmd, *agentLog, *bytes.Buffer) {
	t.Helper()
	return startAgentWith(t, bin, data, "--data", data, "--console", port, "--provisioning-pub", trust, "--demo=false")
}

// startAgentWith starts the simulated phone on the virtual clock with JSON logs, HOME set to
// home and the flags given, and waits for its console to open.
func startAgentWith(t *testing.T, bin, home string, flags ...string) (*exec.Cmd, *agentLog, *bytes.Buffer) {
	t.Helper()
	agent := exec.Command(bin, append([]string{"--board", "sim", "--clock", "virtual", "--log", "json"}, flags...)...)
	agent.Env = append(os.Environ(), "HOME="+home)
	// Standard input stays open (the simulated phone's keypad) until the test ends.
	if _, err := agent.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &bytes.Buffer{}
	agent.Stderr = stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	log := &agentLog{added: make(chan struct{}, 1)}
	go log.read(stdout)
	log.await(t, "event", "console_open")
	return agent, log, stderr
}
