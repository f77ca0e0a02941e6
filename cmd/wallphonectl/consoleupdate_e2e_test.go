package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/provisioning/ptytest"
)

// pullableLine is a serial cable between two programs, as ptyLine, that the test can pull:
// while pulled, whatever either end sends is lost (both ends keep sending into the void, as
// a UART does), and after budget bytes from the technician's end it pulls itself.
type pullableLine struct {
	a, b   *os.File // slave ends: a for the phone, b for the technician
	pulled atomic.Bool
	budget atomic.Int64 // bytes the technician's end may send before the cable comes out; 0: no limit
}

func newPullableLine(t *testing.T) *pullableLine {
	t.Helper()
	l := &pullableLine{}
	ma, a := ptytest.Open(t)
	mb, b := ptytest.Open(t)
	l.a, l.b = a, b
	var wg sync.WaitGroup
	relay := func(dst, src *os.File, limited bool) {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if limited && l.budget.Load() > 0 && l.budget.Add(-int64(n)) <= 0 {
				l.budget.Store(0)
				l.pulled.Store(true)
			}
			if !l.pulled.Load() {
				dst.Write(buf[:n])
			}
		}
	}
	wg.Add(2)
	go relay(ma, mb, true)
	go relay(mb, ma, false)
	t.Cleanup(func() {
		ma.Close()
		mb.Close()
		wg.Wait()
	})
	return l
}

// TestConsoleUpdateAgent is a technician's firmware update at a phone out of the network's
// reach: the real agent on the simulated phone with its two slots, wallphonectl on the other
// end of a serial line, the cable pulled mid-image and the update run again, which fetches
// only the rest; then the phone is ready to reboot into it, and the audit log says who
// installed what.
func TestConsoleUpdateAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "wallphoned")
	if out, err := exec.Command("go", "build", "-o", bin, "../wallphoned").CombinedOutput(); err != nil {
		t.Fatalf("go build wallphoned: %v\n%s", err, out)
	}
	data, keys := filepath.Join(dir, "data"), filepath.Join(dir, "data-keys")
	if err := demo.Init(keys, nil); err != nil {
		t.Fatal(err)
	}
	line := newPullableLine(t)
	_, log, stderr := startAgentWith(t, bin, dir, "--slots", "--data", data, "--vault", "none",
		"--console", line.a.Name(), "--provisioning-pub", filepath.Join(keys, "provisioning.pub"))

	// Version 2: this build with its last 3 MiB replaced, published into the technician's
	// copy of the facility's repository; the phone's own repository does not have it.
	running, err := os.ReadFile(filepath.Join(data, "slots", "a.img"))
	if err != nil {
		t.Fatal(err)
	}
	img := bytes.Clone(running)
	rand.Read(img[len(img)-3<<20:])
	laptop := filepath.Join(dir, "laptop-keys")
	if err := os.CopyFS(laptop, os.DirFS(keys)); err != nil {
		t.Fatal(err)
	}
	imgFile := filepath.Join(dir, "v2.img")
	os.WriteFile(imgFile, img, 0o600)
	if err := demo.PublishFirmware(laptop, "sim", 2, imgFile, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	args := []string{"console", "--port", line.b.Name(), "--timeout", "3s",
		"--cert", filepath.Join(keys, "technician.cert"), "--key", filepath.Join(keys, "technician.key"),
		"update", filepath.Join(laptop, "repo")}

	// The cable comes out after 1 MiB.
	line.budget.Store(1 << 20)
	out, code := ctl(t, "", args...)
	if code != exitNoPhone || !strings.Contains(out, "run the same console update: it goes on from there") {
		t.Fatalf("cut short: exit %d\n%s", code, out)
	}
	line.pulled.Store(false)
	out, code = ctl(t, "", args...)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s\nagent:\n%s", code, out, stderr.String())
	}
	m := regexp.MustCompile(`over the cable:  ([0-9.]+ \w+) \(copied from the running slot: [^;]+; already there from an earlier run: ([0-9.]+ \w+)\)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "installed:       firmware/sim_2.img (version 2) in slot b") ||
		!strings.Contains(out, "the phone reboots into version 2 in slot b when idle, on trial") {
		t.Fatalf("second run:\n%s", out)
	}
	// The second run fetched less than the 3 MiB that differ: the rest it found in the slot.
	if fetched, resumed := mib(t, m[1]), mib(t, m[2]); fetched >= 3 || resumed < 0.5 {
		t.Fatalf("second run fetched %s, found %s from the first:\n%s", m[1], m[2], out)
	}
	log.await(t, "event", "firmware_ready")
	b, _ := os.ReadFile(filepath.Join(data, "slots", "b.img"))
	if !bytes.HasPrefix(b, img) {
		t.Fatal("slot b does not hold version 2")
	}
	audit, _ := os.ReadFile(filepath.Join(data, "audit.log"))
	if !regexp.MustCompile(`"kind":"console_command".*"image":"firmware/sim_2.img".*"request":"update".*"result":"ok".*"technician":"`).Match(audit) {
		t.Fatalf("no audit entry of the update:\n%s", audit)
	}
}

// mib reads "1.2 MiB", "300 KiB" or "12 bytes" in MiB.
func mib(t *testing.T, s string) float64 {
	t.Helper()
	f := strings.Fields(s)
	n, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(s)
	}
	switch f[1] {
	case "KiB":
		n /= 1 << 10
	case "bytes":
		n /= 1 << 20
	}
	return n
}
