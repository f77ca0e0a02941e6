package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/device/sim"
	"github.com/wallphone/wallphone/registry"
)

// event is one line of the agent's JSON log.
type event struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Version uint64    `json:"version"`
	Failed  bool      `json:"failed"`
}

func events(t *testing.T, log *syncBuffer, name string) []event {
	t.Helper()
	var out []event
	sc := bufio.NewScanner(strings.NewReader(log.String()))
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}

// TestUpdateSchedule runs the agent for hours of fake time against a real repository on
// disk: the first check comes within 20 s of start, then one every interval with jitter
// ([interval/2, interval)); while the repository is unreachable the wait backs off from a
// minute, doubling, up to the interval; a registry published meanwhile is installed at the
// next check and taken up by the call loop at the next frame, after which the sweep runs.
// Run returns only once every goroutine it started is over (synctest fails otherwise).
func TestUpdateSchedule(t *testing.T) {
	data, keys := enrolled(t)
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Hour
		var log syncBuffer
		start := time.Now()
		a, _ := newAgent(t, data, &log, func(c *Config) {
			c.UpdateInterval = interval
			// A frame a second is enough for an idle phone.
			c.Drive = func(ctx context.Context, tick func(time.Time)) error {
				for {
					select {
					case <-ctx.Done():
						return nil
					case now := <-time.After(time.Second):
						tick(now)
					}
				}
			}
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()

		// checks waits until there are n checks, at most limit of fake time from now.
		checks := func(n int, limit time.Duration) []event {
			t.Helper()
			for end := time.Now().Add(limit); ; time.Sleep(time.Second) {
				synctest.Wait()
				if c := events(t, &log, "update_checked"); len(c) >= n || time.Now().After(end) {
					if len(c) < n {
						t.Fatalf("%d checks after %s, want %d:\n%s", len(c), time.Since(start), n, log.String())
					}
					return c
				}
			}
		}
		gap := func(c []event, i int, want time.Duration) {
			t.Helper()
			if g := c[i].Time.Sub(c[i-1].Time); g < want/2 || g >= want {
				t.Errorf("check %d came %s after the one before, want [%s, %s)", i, g, want/2, want)
			}
		}

		// New checked once, as nothing was installed yet; then the schedule.
		c := checks(4, 3*interval)
		if !c[0].Time.Equal(start) || c[0].Failed {
			t.Fatalf("the check at start: %+v", c[0])
		}
		gap(c, 1, firstCheck)
		gap(c, 2, interval)
		gap(c, 3, interval)

		// The repository goes away: the next check fails, and the ones after it back off.
		repo := filepath.Join(keys, "repo")
		if err := os.Rename(repo, repo+".away"); err != nil {
			t.Fatal(err)
		}
		c = checks(len(c)+5, 3*interval)
		first := len(c) - 5
		for i := first; i < len(c); i++ {
			if !c[i].Failed {
				t.Fatalf("check %d did not fail with the repository gone", i)
			}
			if i > first {
				gap(c, i, retryWait(i-first, interval))
			}
		}

		// It comes back with a registry that makes another number privileged.
		if err := os.Rename(repo+".away", repo); err != nil {
			t.Fatal(err)
		}
		if err := demo.PublishRegistry(keys, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil); err != nil {
			t.Fatal(err)
		}
		c = checks(len(c)+2, 3*interval)
		last := c[len(c)-2]
		if last.Failed {
			t.Fatalf("the repository is back and the check still failed:\n%s", log.String())
		}
		gap(c, len(c)-2, retryWait(5, interval)) // after the fifth failure in a row
		gap(c, len(c)-1, interval)
		inForce := events(t, &log, "registry_in_force")
		if len(inForce) != 2 || inForce[1].Version != 2 {
			t.Fatalf("registry_in_force events %+v", inForce)
		}
		if d := inForce[1].Time.Sub(last.Time); d < 0 || d > time.Second {
			t.Errorf("registry 2 in force %s after it was installed, want by the next frame", d)
		}

		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := len(events(t, &log, "agent_stopped")); n != 1 {
			t.Fatalf("agent_stopped %d times", n)
		}
	})
}

// TestSweepAfterInstall records a call on the simulated board, with frames every 20 ms of
// fake time, then publishes a registry in which the number called is an attorney's: at the
// next check the registry is installed, taken up once the phone is idle, and the sweep
// destroys the recording on the phone and queues a signed purge request for the vault.
func TestSweepAfterInstall(t *testing.T) {
	data, keys := enrolled(t)
	synctest.Test(t, func(t *testing.T) {
		var log syncBuffer
		in, script := io.Pipe()
		a, p := newAgent(t, data, &log, func(c *Config) { c.UpdateInterval = 2 * time.Minute })
		driver := sim.NewDriver(sim.DriverOptions{Board: p.board})
		a.cfg.Drive = func(ctx context.Context, tick func(time.Time)) error { return driver.Run(ctx, in, tick) }
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()

		// The auto called party answers after 2 s and accepts after the notice.
		io.WriteString(script, "offhook\npress 1\npress 1001#\npress 1234#\npress 5125550123#\nwait 40s\nonhook\n")
		time.Sleep(41 * time.Second)
		synctest.Wait()
		if len(events(t, &log, "recording_started")) != 1 || a.spool.Usage().Segments == 0 {
			t.Fatalf("the call was not recorded:\n%s", log.String())
		}
		if err := demo.PublishRegistry(keys, 2, []registry.Item{{Number: "+15125550123", Kind: registry.Attorney, Label: "new attorney"}}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		destroyed := events(t, &log, "recording_destroyed")
		if len(destroyed) != 1 {
			t.Fatalf("recording_destroyed %d times:\n%s", len(destroyed), log.String())
		}
		if u := a.spool.Usage(); u.Segments != 0 || u.Manifests != 0 || u.Purges != 1 {
			t.Fatalf("spool after the sweep: %+v", u)
		}
		cancel()
		script.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// blockingLog holds the goroutine that logs an armed event until released: a way to catch the
// update goroutine in the middle of an install.
type blockingLog struct {
	slog.Handler
	armed   *atomic.Bool
	event   string
	reached chan struct{}
	release chan struct{}
}

func (h blockingLog) Handle(ctx context.Context, r slog.Record) error {
	if h.armed.Load() {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "event" && a.Value.String() == h.event && h.armed.CompareAndSwap(true, false) {
				close(h.reached)
				<-h.release
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

// TestRunWaitsForTheInstall is issue 13, item 9: the update goroutine has an owner who waits
// for it. Asked to stop while an install is under way, Run does not close the database, the
// audit log and the registry mapping under it: it returns only once the install is done.
func TestRunWaitsForTheInstall(t *testing.T) {
	data, keys := enrolled(t)
	synctest.Test(t, func(t *testing.T) {
		var out syncBuffer
		h := blockingLog{Handler: slog.NewJSONHandler(&out, nil), armed: new(atomic.Bool), event: "registry_installed",
			reached: make(chan struct{}), release: make(chan struct{})}
		a, _ := newAgent(t, data, io.Discard, func(c *Config) {
			c.UpdateInterval = time.Hour
			c.Logger = slog.New(h)
			c.Drive = func(ctx context.Context, _ func(time.Time)) error { <-ctx.Done(); return nil }
		})
		if err := demo.PublishRegistry(keys, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil); err != nil {
			t.Fatal(err)
		}
		h.armed.Store(true)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		<-h.reached // the update goroutine is inside the install
		cancel()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Run returned while an install was still under way")
		default:
		}
		close(h.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `"event":"agent_stopped"`) {
			t.Fatalf("no agent_stopped:\n%s", out.String())
		}
	})
}
