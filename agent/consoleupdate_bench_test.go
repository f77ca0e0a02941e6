package agent

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/provisioning/ptytest"
)

// lineRate is what a serial line at 115200 baud carries, 8N1: ten bits a byte.
const lineRate = 115200 / 10

// throttled is the technician's end of a pseudo-terminal slowed to a serial line's rate in
// each direction: a pty passes bytes as fast as the kernel copies them, so the harness paces
// them, a byte every 1/11520 s, each direction on its own. Real time is the point here.
type throttled struct {
	f     *os.File
	rmu   sync.Mutex // guards rnext
	rnext time.Time
	wmu   sync.Mutex // guards wnext
	wnext time.Time
}

// pace waits until n more bytes would have crossed the line after next. A sleep that
// overshot is made up by the next ones; only a line idle for a while starts afresh.
func pace(next *time.Time, n int) {
	if now := time.Now(); now.Sub(*next) > 50*time.Millisecond {
		*next = now
	}
	*next = next.Add(time.Duration(n) * time.Second / lineRate)
	time.Sleep(time.Until(*next))
}

func (t *throttled) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	done := 0
	for done < len(p) {
		chunk := p[done:min(done+64, len(p))]
		pace(&t.wnext, len(chunk))
		n, err := t.f.Write(chunk)
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (t *throttled) Read(p []byte) (int, error) {
	n, err := t.f.Read(p[:min(len(p), 64)])
	t.rmu.Lock()
	pace(&t.rnext, n)
	t.rmu.Unlock()
	return n, err
}

func (t *throttled) Close() error { return t.f.Close() }

// BenchmarkConsoleUpdate installs a 192 KiB image that shares nothing with the running slot
// over the agent's own console on a pseudo-terminal paced at 115200 baud, and reports the
// file bytes that crossed per second and their share of the line rate (ratio), beside the
// baseline: raw bytes through the same paced line, with no protocol at all. One install
// takes about 20 s, so each runs once at the default -benchtime.
func BenchmarkConsoleUpdate(b *testing.B) {
	b.Run("baseline", func(b *testing.B) {
		master, slave := ptytest.Open(b)
		port, err := serial.Open(slave.Name(), &serial.Mode{BaudRate: 115200})
		if err != nil {
			b.Fatal(err)
		}
		defer port.Close()
		line := &throttled{f: master}
		const n = 64 << 10
		for b.Loop() {
			var wg sync.WaitGroup
			start := time.Now()
			wg.Go(func() { line.Write(make([]byte, n)) })
			if _, err := io.ReadFull(port, make([]byte, n)); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
			rate := float64(n) / time.Since(start).Seconds()
			b.ReportMetric(rate, "line-B/s")
			b.ReportMetric(rate/lineRate, "ratio")
		}
	})
	b.Run("console", func(b *testing.B) {
		// The timer runs through the setup too: an install is slow enough that b.Loop
		// stops after one at the default -benchtime.
		for b.Loop() {
			sent, elapsed := consoleInstall(b)
			rate := float64(sent) / elapsed.Seconds()
			b.ReportMetric(rate, "payload-B/s")
			b.ReportMetric(rate/lineRate, "ratio")
		}
	})
}

// consoleInstall runs one console update over a paced pty and returns the file bytes sent
// and how long the update took, from the request to the answer.
func consoleInstall(b *testing.B) (int64, time.Duration) {
	_, img := images(192 << 10)
	master, slave := ptytest.Open(b)
	p := newConsolePhone(b, make([]byte, 4096), func(c *Config) {
		c.Console, c.ConsoleBaud = slave.Name(), 115200
	})
	p.a.cfg.ProvisioningPub = filepath.Join(p.keys, "provisioning.pub")
	p.publish("sim", 2, img)
	con, err := p.a.newConsole(func() {})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { con.run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	cert, err := os.ReadFile(filepath.Join(p.keys, "technician.cert"))
	if err != nil {
		b.Fatal(err)
	}
	kb, _ := os.ReadFile(filepath.Join(p.keys, "technician.key"))
	key, err := identity.ParsePrivateKey(kb)
	if err != nil {
		b.Fatal(err)
	}
	c := provisioning.NewClient(&throttled{f: master})
	defer c.Close()
	if _, _, err := c.Authenticate(ctx, cert, key); err != nil {
		b.Fatal(err)
	}
	root, err := os.OpenRoot(filepath.Join(p.keys, "repo"))
	if err != nil {
		b.Fatal(err)
	}
	defer root.Close()
	var sent int64
	start := time.Now()
	u, err := c.Update(ctx, root.FS(), func(s provisioning.UpdateStatus) { sent = s.Sent })
	elapsed := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if u.Fetched != int64(len(img)) {
		b.Fatalf("fetched %d of %d", u.Fetched, len(img))
	}
	return sent, elapsed
}
