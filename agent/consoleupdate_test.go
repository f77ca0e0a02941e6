package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/firmware/bootenv"
	"github.com/wallphone/wallphone/provisioning"
)

// dirRepo is the technician's repository folder as the phone reads it over the console,
// without the line: the console's own tests carry it over a pseudo-terminal. cutAfter, if
// positive, pulls the cable once that many image bytes have crossed.
type dirRepo struct {
	dir      string
	cutAfter int64
	sent     int64
	notes    []provisioning.UpdateProgress
}

func (r *dirRepo) ReadFile(_ context.Context, name string, max int64) ([]byte, error) {
	if !provisioning.ValidRepoName(name) {
		return nil, fmt.Errorf("bad name %q", name)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err == nil && int64(len(b)) > max {
		return nil, errors.New("too large")
	}
	return b, err
}

func (r *dirRepo) ReadRange(_ context.Context, name string, off, n, size int64, w io.Writer) error {
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return provisioning.ErrRepoSize
	}
	b = b[off : off+n]
	if r.cutAfter > 0 && r.sent+n > r.cutAfter {
		k := max(r.cutAfter-r.sent, 0)
		w.Write(b[:k])
		r.sent += k
		return provisioning.ErrLaptopGone
	}
	r.sent += n
	_, err = w.Write(b)
	return err
}

func (r *dirRepo) Progress(p provisioning.UpdateProgress) { r.notes = append(r.notes, p) }

// consolePhone is an enrolled simulated phone with firmware slots, its running slot holding
// base, and a facility whose repository (keys/repo) the technician copies; the phone's own
// repository is out of reach, as for a phone with no network.
type consolePhone struct {
	t     testing.TB
	a     *Agent
	slots *Slots
	keys  string
	base  []byte
	log   *syncBuffer
}

func newConsolePhone(t testing.TB, base []byte, mod func(*Config)) *consolePhone {
	t.Helper()
	data, keys := enrolled(t)
	if err := os.WriteFile(filepath.Join(data, "conf", provisioning.RepositoryFile), []byte(`{"url":"file:///nonexistent/repo"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := factorySlots(t)
	if err := os.WriteFile(s.Image("a"), base, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &consolePhone{t: t, slots: s, keys: keys, base: base, log: &syncBuffer{}}
	p.a, _ = newAgent(t, data, p.log, func(c *Config) {
		c.Slots = s
		if mod != nil {
			mod(c)
		}
	})
	t.Cleanup(func() { p.a.Close() })
	return p
}

// publish signs version v of img for hardware hw into the facility's repository.
func (p *consolePhone) publish(hw string, v uint64, img []byte) {
	p.t.Helper()
	f := filepath.Join(p.t.TempDir(), "image")
	if err := os.WriteFile(f, img, 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := demo.PublishFirmware(p.keys, hw, v, f, demo.Firmware{}); err != nil {
		p.t.Fatal(err)
	}
}

func (p *consolePhone) update(repo *dirRepo) (provisioning.Updated, error) {
	return consoleUpdater{p.a}.Update(context.Background(), repo)
}

func (p *consolePhone) repo() *dirRepo { return &dirRepo{dir: filepath.Join(p.keys, "repo")} }

// unchanged checks that the phone still boots what it ran: nothing marked, nothing pending,
// no reboot wanted, the running slot as it was.
func (p *consolePhone) unchanged() {
	p.t.Helper()
	env, err := bootenv.Open(p.slots.Env)
	if err != nil {
		p.t.Fatal(err)
	}
	boot, _ := env.Get("boot_slot")
	trial, _ := env.Get("upgrade_available")
	a, _ := os.ReadFile(p.slots.Image("a"))
	if boot != "a" || trial == "1" || p.a.fw.st.Pending != nil || p.a.rebootWanted.Load() || !bytes.Equal(a, p.base) {
		p.t.Fatalf("the running firmware did not stay: boot_slot %q, upgrade_available %q, pending %+v, reboot %v",
			boot, trial, p.a.fw.st.Pending, p.a.rebootWanted.Load())
	}
}

// images are a base image and a next version that differs from it in three blocks.
func images(size int) (base, next []byte) {
	base = make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(base)
	next = bytes.Clone(base)
	for _, blk := range []int{1, 17, size/4096 - 1} {
		next[blk*4096+5] ^= 0xff
	}
	return base, next
}

// TestConsoleUpdate: the phone installs the technician's release into the inactive slot,
// fetching over the line only the three blocks it lacks, marks it for a trial and wants to
// reboot, exactly as after a network install; the answer says so.
func TestConsoleUpdate(t *testing.T) {
	base, next := images(300 << 10)
	p := newConsolePhone(t, base, nil)
	p.publish("sim", 2, next)
	repo := p.repo()
	u, err := p.update(repo)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 || u.Slot != "b" || u.Fetched != 3*4096 || u.Copied != int64(len(next))-3*4096 || !strings.Contains(u.Next, "reboots into version 2") {
		t.Fatalf("answer %+v", u)
	}
	b, _ := os.ReadFile(p.slots.Image("b"))
	if !bytes.Equal(b[:len(next)], next) {
		t.Fatal("slot b does not hold the image")
	}
	env, _ := bootenv.Open(p.slots.Env)
	if boot, _ := env.Get("boot_slot"); boot != "b" {
		t.Fatalf("boot_slot %q", boot)
	}
	if !p.a.rebootWanted.Load() || p.a.fw.st.Pending == nil || p.a.fw.st.Pending.Version != 2 {
		t.Fatal("no reboot into the new firmware asked for")
	}
	if last := repo.notes[len(repo.notes)-1]; last.Done != last.Total || last.Total != int64(len(next)) {
		t.Fatalf("notes %+v", repo.notes)
	}
	// A second update waits for that reboot.
	if _, err := p.update(p.repo()); err == nil || !strings.Contains(err.Error(), "waits for the phone to reboot") {
		t.Fatal(err)
	}
	// The phone's own trusted metadata is not the console's to write.
	if _, err := os.Stat(filepath.Join(p.a.cfg.DataDir, "tuf", consoleTUFDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("console's metadata copy left behind: %v", err)
	}
}

// TestConsoleUpdateResumes: the cable is pulled mid-image; the running firmware stays, and
// the next run fetches only the rest.
func TestConsoleUpdateResumes(t *testing.T) {
	size := 3 << 20
	base := make([]byte, 4096)
	_, next := images(size)
	p := newConsolePhone(t, base, nil)
	p.publish("sim", 2, next)
	cut := p.repo()
	cut.cutAfter = 1<<20 + 100<<10
	_, err := p.update(cut)
	if err == nil || !strings.Contains(err.Error(), provisioning.ErrLaptopGone.Error()) {
		t.Fatalf("cut short: %v", err)
	}
	p.unchanged()
	u, err := p.update(p.repo())
	if err != nil {
		t.Fatal(err)
	}
	// At most the block the cable was pulled in crosses twice.
	if u.Resumed < cut.sent-4096 || u.Fetched > int64(size)-cut.sent+4096 {
		t.Fatalf("second run: resumed %d, fetched %d; the first fetched %d of %d", u.Resumed, u.Fetched, cut.sent, size)
	}
	b, _ := os.ReadFile(p.slots.Image("b"))
	if !bytes.Equal(b[:size], next) {
		t.Fatal("slot b does not hold the image")
	}
}

// TestConsoleUpdateRefused: bad input is refused with a clear reason and loses nothing: the
// running firmware keeps running.
func TestConsoleUpdateRefused(t *testing.T) {
	base, next := images(128 << 10)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		// prepare publishes and damages the technician's repository.
		prepare func(p *consolePhone) *dirRepo
		want    string
	}{
		{name: "image byte tampered", prepare: func(p *consolePhone) *dirRepo {
			p.publish("sim", 2, next)
			return tamper(p, ".sim_2.img", 17*4096+5)
		}, want: "fetched block does not match the signed index"},
		{name: "index tampered", prepare: func(p *consolePhone) *dirRepo {
			p.publish("sim", 2, next)
			return tamper(p, ".sim_2.bidx", 100)
		}, want: "does not match its signed length and hash"},
		{name: "metadata expired", mod: func(c *Config) { c.Clock = laterClock{20 * 365 * 24 * time.Hour} }, prepare: func(p *consolePhone) *dirRepo {
			p.publish("sim", 2, next)
			return p.repo()
		}, want: "expired"},
		{name: "wrong key", prepare: func(p *consolePhone) *dirRepo {
			// Another vendor's repository: its root is not the one this phone trusts.
			other := filepath.Join(p.t.TempDir(), "other")
			if err := demo.Init(other, nil); err != nil {
				p.t.Fatal(err)
			}
			f := filepath.Join(p.t.TempDir(), "image")
			os.WriteFile(f, next, 0o600)
			if err := demo.PublishFirmware(other, "sim", 2, f, demo.Firmware{}); err != nil {
				p.t.Fatal(err)
			}
			return &dirRepo{dir: filepath.Join(other, "repo")}
		}, want: "does not verify against this phone's trusted metadata"},
		{name: "older version", prepare: func(p *consolePhone) *dirRepo {
			p.a.fw.st.Committed = 3
			p.publish("sim", 2, next)
			return p.repo()
		}, want: "not newer than the committed version"},
		{name: "other hardware", prepare: func(p *consolePhone) *dirRepo {
			p.publish("rpi4", 2, next)
			return p.repo()
		}, want: "for other hardware"},
		{name: "network install under way", prepare: func(p *consolePhone) *dirRepo {
			p.publish("sim", 2, next)
			p.a.fw.mu.Lock()
			p.t.Cleanup(p.a.fw.mu.Unlock)
			return p.repo()
		}, want: "firmware install from the network is under way"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newConsolePhone(t, base, tc.mod)
			repo := tc.prepare(p)
			_, err := p.update(repo)
			var pe *provisioning.Error
			if !errors.As(err, &pe) || pe.Code != provisioning.CodeRefused || !strings.Contains(pe.Message, tc.want) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.want)
			}
			p.unchanged()
		})
	}
}

// TestConsoleUpdateNotEnrolled: a phone with no trusted root has nothing to verify against.
func TestConsoleUpdateNotEnrolled(t *testing.T) {
	s := factorySlots(t)
	var log syncBuffer
	a, _ := newAgent(t, t.TempDir(), &log, func(c *Config) { c.Slots = s })
	t.Cleanup(func() { a.Close() })
	_, err := consoleUpdater{a}.Update(context.Background(), &dirRepo{dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not enrolled with a repository") {
		t.Fatal(err)
	}
}

// tamper copies the facility's repository for the technician and flips a byte of the target
// whose file name ends in suffix.
func tamper(p *consolePhone, suffix string, at int) *dirRepo {
	p.t.Helper()
	dst := filepath.Join(p.t.TempDir(), "repo")
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(p.keys, "repo"))); err != nil {
		p.t.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(dst, "targets", "firmware", "*"+suffix))
	if len(ents) == 0 {
		p.t.Fatalf("no target *%s", suffix)
	}
	for _, f := range ents {
		b, err := os.ReadFile(f)
		if err != nil {
			p.t.Fatal(err)
		}
		b[at] ^= 1
		os.Chmod(f, 0o600)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			p.t.Fatal(err)
		}
	}
	return &dirRepo{dir: dst}
}

// laterClock is the wall clock moved on: metadata signed now has expired by then.
type laterClock struct{ by time.Duration }

func (c laterClock) Now() time.Time                         { return time.Now().Add(c.by) }
func (c laterClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
