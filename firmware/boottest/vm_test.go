package boottest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wallphone/wallphone/firmware/bootenv"
)

// stateConfig is the boot state as read from outside the machine: the disk's file.
func stateConfig(disk string) bootenv.Config {
	return bootenv.Config{Copies: []bootenv.Location{{Path: disk, Offset: stateOffset, Size: stateSize}}}
}

// machine is one phone: its disk and flash files, its facility and the repository server,
// and what each of its boots showed.
type machine struct {
	t            *testing.T
	p            *parts
	dir          string
	disk         string
	keys         string // the demo facility (wallphonectl demo init)
	srv          *repoServer
	console      *os.File // every boot's serial output, for the failure report
	boots        []*boot
	bootDuration []time.Duration
}

// boot is what one power-on showed on the serial console.
type boot struct {
	n          int
	uboot      bool   // U-Boot ran the boot script
	slot       string // the slot the script booted ("" if it did not get that far)
	trial      string // upgrade_available, count and limit, as the script printed them
	count      uint64
	fellBack   bool // the script gave up on the slot on trial
	panicked   bool
	events     []map[string]any // the agent's JSON events
	killed     bool             // the test cut the power
	exited     bool             // the machine reset or powered off by itself
	tail       []string
	lastMarker string // what was seen last: for where a power cut landed
}

func (b *boot) event(name string) map[string]any {
	for _, e := range b.events {
		if e["event"] == name {
			return e
		}
	}
	return nil
}

func (b *boot) has(name string) bool { return b.event(name) != nil }

// newMachine makes a phone: the factory's version 1 in slot a, a flash bank that U-Boot wrote
// its environment into (the factory's step), enrolled in a demo facility whose repository is
// served on loopback and reached from the machine through qemu's user-mode network.
func newMachine(t *testing.T, p *parts) *machine {
	t.Helper()
	dir := t.TempDir()
	m := &machine{t: t, p: p, dir: dir, disk: filepath.Join(dir, "disk.img"),
		keys: filepath.Join(dir, "keys")}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { console.Close() })
	m.console = console
	if b, err := exec.Command(p.ctl, "demo", "init", m.keys).CombinedOutput(); err != nil {
		t.Fatalf("wallphonectl demo init: %v: %s", err, b)
	}
	m.srv = newRepoServer(t, filepath.Join(m.keys, "repo"))
	// The phone's data partition holds the demo's enrolment with the repository's address as
	// the machine sees it: qemu's user-mode network puts the host's loopback at 10.0.2.2.
	data := filepath.Join(dir, "data")
	enrol := filepath.Join(data, "demo", "enrol")
	if err := os.CopyFS(enrol, os.DirFS(filepath.Join(m.keys, "enrol"))); err != nil {
		t.Fatal(err)
	}
	repo, _ := json.Marshal(map[string]string{"url": "http://10.0.2.2:" + m.srv.port})
	if err := os.WriteFile(filepath.Join(enrol, "repository.json"), repo, 0o600); err != nil {
		t.Fatal(err)
	}
	factory, err := p.slot(1, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := newDisk(m.disk, factory, p.bootImage, data); err != nil {
		t.Fatal(err)
	}
	m.factoryState()
	return m
}

// factoryState writes the boot state a board leaves the factory with, made by U-Boot's own
// mkenvimage: slot a good and booted, three boots on trial before a fallback.
func (m *machine) factoryState() {
	t := m.t
	t.Helper()
	txt := filepath.Join(m.dir, "state.txt")
	if err := os.WriteFile(txt, []byte("good_slot=a\nboot_slot=a\nbootlimit=3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(m.dir, "state.bin")
	if b, err := exec.Command("mkenvimage", "-s", fmt.Sprint(stateSize), "-o", img, txt).CombinedOutput(); err != nil {
		t.Fatalf("mkenvimage: %v: %s", err, b)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, stateOffset); err != nil {
		t.Fatal(err)
	}
}

// qemu is the machine: qemu's virt board with two Cortex-A57 cores emulated in software, U-Boot
// in flash, the disk and the network on virtio PCI, the serial console on stdio. -no-reboot
// makes every reboot a power-off, after which the test powers it on again.
func (m *machine) qemu() *exec.Cmd {
	return exec.Command("qemu-system-aarch64",
		"-M", "virt", "-cpu", "cortex-a57", "-smp", "2", "-m", "512M", "-accel", "tcg",
		"-bios", ubootBin,
		"-drive", "if=none,id=disk,format=raw,file="+m.disk,
		"-device", "virtio-blk-pci,drive=disk",
		"-netdev", "user,id=net", "-device", "virtio-net-pci,netdev=net,romfile=",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot")
}

// ubootBin is Debian's U-Boot for qemu's 64-bit virt machine (u-boot-qemu).
const ubootBin = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

var (
	bootLine     = regexp.MustCompile(`wallphone: booting slot (\w+) \(trial (\w*), boot (\w+) of (\w+)\)`)
	fallbackLine = regexp.MustCompile(`wallphone: slot \w+ not committed after`)
)

// cut says when to cut the power during a boot: at an event (stop returns true for it), at a
// time (at, asked again after each line: stop may arm it), or when the repository server says
// the download stalled.
type cut struct {
	stop    func(b *boot, line string, ev map[string]any) bool
	at      func() <-chan time.Time
	stalled bool
}

// power runs one power-on until the machine powers itself off (a reboot: -no-reboot), or the
// cut comes (SIGKILL: the power is gone), and returns what it showed. bootGuard bounds a boot
// that hangs.
func (m *machine) power(c cut) *boot {
	t := m.t
	t.Helper()
	b := &boot{n: len(m.boots) + 1, lastMarker: "power-on"}
	m.boots = append(m.boots, b)
	fmt.Fprintf(m.console, "\n===== power on %d =====\n", b.n)
	cmd := m.qemu()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The serial console is the simulated phone's standard input too: on the virtual clock a
	// frame passes only when it is told to wait, and the phone reboots into new firmware in a
	// frame when it is idle.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	cmd.Stderr = m.console
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
	}()
	guard := time.NewTimer(bootGuard)
	defer guard.Stop()
	kill := func() {
		if !b.killed {
			cmd.Process.Kill()
			b.killed = true
		}
	}
	at := func() <-chan time.Time { return nil }
	if c.at != nil {
		at = c.at
	}
	var stalls <-chan struct{}
	if c.stalled {
		stalls = m.srv.stalls
	}
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			fmt.Fprintln(m.console, line)
			b.tail = append(b.tail, line)
			if len(b.tail) > 40 {
				b.tail = b.tail[1:]
			}
			var ev map[string]any
			switch {
			case strings.Contains(line, "U-Boot 20"):
				b.lastMarker = "u-boot"
			case strings.Contains(line, "wallphone: ") && fallbackLine.MatchString(line):
				b.fellBack = true
			case bootLine.MatchString(line):
				s := bootLine.FindStringSubmatch(line)
				b.uboot, b.slot, b.trial = true, s[1], s[2]
				b.count, _ = strconv.ParseUint(s[3], 16, 64)
				b.lastMarker = "boot script"
			case strings.Contains(line, "Starting kernel"):
				b.lastMarker = "kernel"
			case strings.Contains(line, "Kernel panic"):
				b.panicked = true
			case strings.Contains(line, "{"):
				if json.Unmarshal([]byte(line[strings.Index(line, "{"):]), &ev) == nil {
					b.events = append(b.events, ev)
					if name, _ := ev["event"].(string); name != "" {
						b.lastMarker = name
					} else if msg, _ := ev["msg"].(string); strings.HasPrefix(msg, "firmware install: ") {
						b.lastMarker = msg
					}
					if n := ev["event"]; n == "agent_started" || n == "firmware_ready" {
						io.WriteString(stdin, "wait 1s\n")
					}
				}
			}
			if c.stop != nil && !b.killed && c.stop(b, line, ev) {
				kill()
			}
		case <-at():
			kill()
		case <-stalls:
			b.lastMarker = "download stalled"
			kill()
		case <-guard.C:
			kill()
			t.Errorf("power on %d: no end after %s; the console's last lines:\n%s", b.n, bootGuard, strings.Join(b.tail, "\n"))
		}
	}
	wg.Wait()
	err = cmd.Wait()
	b.exited = !b.killed
	if b.exited && err != nil {
		t.Errorf("power on %d: qemu: %v", b.n, err)
	}
	m.bootDuration = append(m.bootDuration, time.Since(start))
	return b
}

// bootGuard bounds one power-on: a boot under emulation takes tens of seconds.
const bootGuard = 2 * time.Minute

// env reads the machine's boot state from its disk, as U-Boot will at the next boot.
func (m *machine) env() (*bootenv.Env, error) { return bootenv.Open(stateConfig(m.disk)) }

// envVars is the environment's state variables, for messages.
func envVars(e *bootenv.Env) string {
	var s []string
	for _, n := range []string{"boot_slot", "good_slot", "upgrade_available", "bootcount", "bootlimit", "failed_slot"} {
		v, _ := e.Get(n)
		s = append(s, n+"="+v)
	}
	return strings.Join(s, " ")
}

// slotHolds reports whether the slot's partition holds the image at path.
func (m *machine) slotHolds(slot, img string) bool {
	m.t.Helper()
	fi, err := os.Stat(img)
	if err != nil {
		m.t.Fatal(err)
	}
	want, err := fileSHA256(img, 0, -1)
	if err != nil {
		m.t.Fatal(err)
	}
	start := int64(slotAStart)
	if slot == bootenv.SlotB {
		start = slotBStart
	}
	have, err := fileSHA256(m.disk, start*sector, fi.Size())
	if err != nil {
		m.t.Fatal(err)
	}
	return have == want
}

// publish publishes version v's slot image with wallphonectl firmware publish, as a release
// engineer does.
func (m *machine) publish(v uint64, broken bool) string {
	m.t.Helper()
	img, err := m.p.slot(v, broken)
	if err != nil {
		m.t.Fatal(err)
	}
	tuf := filepath.Join(m.keys, "tuf")
	if b, err := exec.Command(m.p.ctl, "firmware", "publish", "--repo", filepath.Join(m.keys, "repo"), "--image", img,
		"--version", fmt.Sprint(v), "--hardware", hardware, "--key", filepath.Join(tuf, "firmware.pem"),
		"--snapshot-key", filepath.Join(tuf, "snapshot.pem"), "--timestamp-key", filepath.Join(tuf, "timestamp.pem")).CombinedOutput(); err != nil {
		m.t.Fatalf("wallphonectl firmware publish: %v: %s", err, b)
	}
	return img
}

// repoServer serves the demo repository over HTTP on loopback, counting the bytes of firmware
// images it sends; with a budget set, an image response stalls once the budget is spent (the
// power is then cut in the middle of the download).
type repoServer struct {
	srv    *httptest.Server
	port   string
	served atomic.Int64 // image bytes sent
	budget atomic.Int64 // image bytes left before a stall; < 0: no limit
	stalls chan struct{}
	stop   chan struct{}
}

func newRepoServer(t *testing.T, repo string) *repoServer {
	s := &repoServer{stalls: make(chan struct{}, 16), stop: make(chan struct{})}
	s.budget.Store(-1)
	files := http.FileServer(http.Dir(repo))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".img") {
			files.ServeHTTP(w, r)
			return
		}
		files.ServeHTTP(&countingWriter{ResponseWriter: w, s: s, done: r.Context().Done()}, r)
	}))
	t.Cleanup(func() { close(s.stop); s.srv.Close() })
	_, s.port, _ = strings.Cut(strings.TrimPrefix(s.srv.URL, "http://"), ":")
	return s
}

type countingWriter struct {
	http.ResponseWriter
	s    *repoServer
	done <-chan struct{}
}

func (w *countingWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := len(p)
		if left := w.s.budget.Load(); left >= 0 {
			if left == 0 {
				if f, ok := w.ResponseWriter.(http.Flusher); ok {
					f.Flush()
				}
				select {
				case w.s.stalls <- struct{}{}:
				default:
				}
				select {
				case <-w.done:
				case <-w.s.stop:
				}
				return written, fmt.Errorf("download stalled by the test")
			}
			n = int(min(int64(n), left))
			w.s.budget.Add(-int64(n))
		}
		k, err := w.ResponseWriter.Write(p[:n])
		written += k
		w.s.served.Add(int64(k))
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
