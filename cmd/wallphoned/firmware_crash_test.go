package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/bootenv"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/tufclient"
)

// Where in an update a kill lands: each stage runs from the log line or download event that
// starts it to the one that starts the next.
type stage int

const (
	stageDownload  stage = iota // firmware_installing: blocks fetched, copied, written
	stageVerify                 // the last range served: the last batch and the whole image read back
	stageSwitch                 // "image in the slot verified": the slot marked to be tried, the state saved
	stageReboot                 // firmware_ready: idle, the reboot, the bootloader counting a trial boot
	stageTrial                  // firmware_boot on trial: the new slot starts, checks, commits
	stageCommitted              // firmware_committed
	numStages
)

var stageNames = [numStages]string{"download", "verify", "switch", "reboot", "trial", "after commit"}

// Firmware crash test knobs: the seed that reproduces a schedule, and how many kills.
const (
	seedEnv  = "WALLPHONE_FIRMWARE_SEED"
	killsEnv = "WALLPHONE_FIRMWARE_KILLS"
)

// TestKill9DuringFirmwareUpdate kills the real agent, booted from the simulated phone's slots,
// with SIGKILL at random moments of firmware updates, and starts it again through the
// simulated bootloader each time, as a board powers up again. Versions are published one
// after another into the demo repository, served over HTTP: a new image (fetched whole), then
// that image with one block changed (a delta: the rest copied from the running slot), then a
// version that never comes up (rolled back by the bootloader), and again. Kills land while
// the image downloads (after a random number of its bytes), while it is read back and
// verified, around the switch (the slot marked to be tried), across the reboot, during the
// boot on trial before the commit, and after the commit.
//
// After every run it checks from outside the phone, from the bootloader's environment (each
// redundant copy, then through bootenv): the slot that boots next holds an image that
// verifies against the signed metadata of its version, the committed one or the one on trial;
// the good slot still holds the image it was committed with; and the agent's own record of
// what is committed agrees with the environment. Once the kills stop the phone runs the last
// version, committed, and the other slot still holds the version before it.
//
// WALLPHONE_FIRMWARE_SEED reproduces a schedule (the choices: which stage, where in it, the
// images), WALLPHONE_FIRMWARE_KILLS sets how many kills (make soak-firmware).
func TestKill9DuringFirmwareUpdate(t *testing.T) {
	kills := 100
	if testing.Short() {
		kills = 50
	}
	if s := os.Getenv(killsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("%s=%q: want a number of kills", killsEnv, s)
		}
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a number", seedEnv, s)
		}
		seed = n
	}
	t.Logf("seed %d, %d kills (%s=%d reproduces the schedule)", seed, kills, seedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))

	p := newPhone(t, rng)

	killsLeft, runs := kills, 0
	kinds := []string{"full", "delta", "broken"}
	var cycles []string
	for v := uint64(1); ; v++ {
		kind := kinds[(v-1)%3]
		if killsLeft <= 0 && kind == "broken" {
			break
		}
		var img []byte
		switch kind {
		case "full":
			img = scriptImage(p.bin, imageSize(rng), rng)
		case "delta":
			img, _ = changeBlock(p.goodBytes, blockindex.DefaultBlockSize, rng)
		case "broken":
			img = brokenImage(imageSize(rng), rng)
		}
		c := p.publish(v, img, kind)
		start := killsLeft
		for n := 0; !c.done; n++ {
			if n == 40 {
				t.Fatalf("version %d (%s): not done after %d runs; events of the last: %v", v, kind, n, p.last)
			}
			st, _ := readBootEnv(t, p.data)
			plan := p.plan(rng, c, st, killsLeft)
			r := p.run(plan, c)
			runs++
			if r.killed {
				killsLeft--
				p.landed[r.landed]++
			}
			p.check(c, r)
		}
		cycles = append(cycles, fmt.Sprintf("%d %s: %d kills", v, kind, start-killsLeft))
		if !c.broken {
			p.goodBytes = img
		}
		if killsLeft <= 0 && kind != "broken" {
			break
		}
	}

	// The kills are over: the phone runs the last version, committed, and has nothing to do.
	r := p.run(runPlan{limit: -1}, &cycle{img: p.held[p.good], slot: otherSlot(p.good)})
	if !r.current || r.committed == nil || *r.committed != p.committed {
		t.Fatalf("after the kills: committed %v, current %v; events %v", r.committed, r.current, r.events)
	}
	st, err := readBootEnv(t, p.data)
	if err != nil {
		t.Fatal(err)
	}
	if st.trial || st.good != p.good || st.next.Slot != p.good {
		t.Fatalf("after the kills: the environment %+v, the good slot %s", st, p.good)
	}
	for _, s := range []string{bootenv.SlotA, bootenv.SlotB} {
		if !holds(t, slotImage(p.data, s), p.held[s]) {
			t.Fatalf("after the kills: slot %s does not hold version %d", s, p.held[s].version)
		}
	}
	total := 0
	var by []string
	for s, n := range p.landed {
		total += n
		by = append(by, fmt.Sprintf("%s %d", stageNames[s], n))
	}
	if total != kills {
		t.Errorf("%d kills landed, %d scheduled", total, kills)
	}
	t.Logf("%d kills in %d runs (%s); switch kills after the slot was marked: %d; versions: %s; environment copies found torn: %d; version %d committed in slot %s",
		total, runs, strings.Join(by, ", "), p.switchMarked, strings.Join(cycles, "; "), p.tornEnv, p.committed, p.good)
}

// TestFirmwareUpdateOverHTTP: an update from a repository served over HTTP, as a phone's is,
// with no kill: the firmware role's metadata, fetched after the check at start has ended,
// must not be fetched with that check's context.
func TestFirmwareUpdateOverHTTP(t *testing.T) {
	p := newPhone(t, rand.New(rand.NewPCG(1, 2)))
	c := p.publish(1, scriptImage(p.bin, 1<<20+100, rand.New(rand.NewPCG(3, 4))), "full")
	r := p.run(runPlan{limit: -1}, c)
	p.check(c, r)
	if !c.done {
		t.Fatalf("version 1 not committed; firmware events:\n%s", strings.Join(r.events, "\n"))
	}
}

// newPhone makes a simulated phone with the factory's image in slot a (written after the
// build, so that the build is not flashed over it), enrolled in a demo facility whose
// repository is served over HTTP on loopback.
func newPhone(t *testing.T, rng *rand.Rand) *phone {
	bin := buildAgent(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	keys := data + "-keys"
	initDemo(t, keys)
	srv := newRepoServer(t, filepath.Join(keys, "repo"))
	if err := os.WriteFile(filepath.Join(keys, "enrol", provisioning.RepositoryFile),
		tufclient.Repository{URL: srv.srv.URL}.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, slotsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	factory := scriptImage(bin, imageSize(rng), rng)
	if err := os.WriteFile(slotImage(data, bootenv.SlotA), factory, 0o700); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(factory)
	p := &phone{t: t, bin: bin, home: dir, data: data, keys: keys, srv: srv, signed: newSignedImages(t, keys, srv.srv.URL),
		good: bootenv.SlotA, goodBytes: factory,
		held: map[string]image{bootenv.SlotA: {length: int64(len(factory)), sha256: sum[:]}}}
	p.est = [numStages]time.Duration{50 * time.Millisecond, 30 * time.Millisecond, 20 * time.Millisecond,
		150 * time.Millisecond, 300 * time.Millisecond, 30 * time.Millisecond}
	return p
}

// imageSize is a slot image's size: 1 to 4 MiB, seldom a whole number of blocks.
func imageSize(rng *rand.Rand) int { return 1<<20 + rng.IntN(3<<20) }

// publish publishes img as version v and returns its update, into the slot not good now.
func (p *phone) publish(v uint64, img []byte, kind string) *cycle {
	t := p.t
	t.Helper()
	file := filepath.Join(p.home, fmt.Sprintf("image-%d", v))
	if err := os.WriteFile(file, img, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := demo.PublishFirmware(p.keys, simHardware, v, file, demo.Firmware{}); err != nil {
		t.Fatal(err)
	}
	c := &cycle{img: p.signed.target(t, v), slot: otherSlot(p.good), delta: kind == "delta", broken: kind == "broken"}
	if sum := sha256.Sum256(img); !bytes.Equal(sum[:], c.img.sha256) {
		t.Fatalf("version %d: the signed hash is not the image's", v)
	}
	return c
}

// cycle is one version's update.
type cycle struct {
	img           image  // its signed image
	slot          string // the slot it is installed into
	delta, broken bool
	marked        bool // the environment put it on trial
	fellBack      bool // broken: the bootloader gave up on it
	done          bool
}

// phone is the simulated phone under test, and what the test knows it must hold.
type phone struct {
	t               *testing.T
	bin, home, data string
	keys            string // the demo facility
	srv             *repoServer
	signed          *signedImages
	// good is the good slot as last seen in the environment, held what each slot held when
	// it was last committed (the factory's image for slot a at first), committed the version
	// committed last (0: the factory's), goodBytes its image.
	good      string
	held      map[string]image
	committed uint64
	goodBytes []byte
	envSeen   bool
	// est is how long each stage took when it ran to its end: a kill in it waits a random
	// part of that.
	est          [numStages]time.Duration
	landed       [numStages]int
	switchMarked int
	tornEnv      int
	last         []string // the last run's firmware events
	history      []string // a line for each run: its plan, where it was killed, the environment after
}

// runPlan is one run's kill, if any: in stage (or the first stage after it that the run
// reaches), after u times the stage's usual length; a download of a whole image stalls and
// is killed after limit bytes instead.
type runPlan struct {
	kill  bool
	stage stage
	u     float64
	limit int64
}

// plan picks the next run's kill among the stages the phone can still reach. A trial is
// killed only while the bootloader has a trial boot left after it, so that a good version is
// not rolled back: the rollback is the broken version's.
func (p *phone) plan(rng *rand.Rand, c *cycle, st bootState, killsLeft int) runPlan {
	if killsLeft <= 0 {
		return runPlan{limit: -1}
	}
	var stages []stage
	switch {
	case st.trial && c.broken:
		// Its trial boots end by themselves.
	case st.trial && st.count+1 < st.limit:
		stages = []stage{stageTrial, stageCommitted}
	case st.trial:
		stages = []stage{stageCommitted}
	case c.broken:
		stages = []stage{stageDownload, stageVerify, stageSwitch, stageReboot}
	default:
		stages = []stage{stageDownload, stageVerify, stageSwitch, stageReboot, stageTrial, stageCommitted}
	}
	if len(stages) == 0 {
		return runPlan{limit: -1}
	}
	// The early stages are the longer ones and, each kill there making progress, can take
	// more kills in one update: they weigh more.
	weight := [numStages]int{3, 2, 2, 1, 2, 1}
	total := 0
	for _, s := range stages {
		total += weight[s]
	}
	pick := rng.IntN(total)
	for pick >= weight[stages[0]] {
		pick -= weight[stages[0]]
		stages = stages[1:]
	}
	r := runPlan{kill: true, stage: stages[0], u: rng.Float64(), limit: -1}
	if r.stage == stageDownload && !c.delta {
		r.limit = rng.Int64N(c.img.length)
	}
	return r
}

// runResult is what one run of the phone did.
type runResult struct {
	killed    bool
	landed    stage
	quit      bool
	current   bool    // firmware_current: nothing to install
	committed *uint64 // what firmware_state said is committed, at the run's last start
	events    []string
	plan      runPlan
}

type logLine struct {
	e   map[string]any
	at  time.Time
	raw string
}

// run starts the phone through its bootloader and runs it until the plan's kill, or until it
// has nothing more to do (it committed, or found nothing to install) and is told to quit, or
// until it exits by itself (a broken version).
func (p *phone) run(plan runPlan, c *cycle) runResult {
	t := p.t
	t.Helper()
	p.srv.startRun(plan.limit)
	run := p.srv.run.Load()
	cmd := exec.Command(p.bin, "--board", "sim", "--slots", "--clock", "virtual", "--log", "json", "--data", p.data, "--vault", "none")
	cmd.Env = append(os.Environ(), "HOME="+p.home)
	stdin, stdout, stderr := startPiped(t, cmd)
	lines := make(chan logLine)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- logLine{e: e, at: time.Now(), raw: sc.Text()}
			}
		}
	}()
	var (
		res       = runResult{landed: -1, plan: plan}
		at        = stage(-1)
		since     time.Time
		armed     bool
		killTimer <-chan time.Time
		failures  []string
	)
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	reach := func(s stage, now time.Time) {
		if s <= at {
			return
		}
		if at >= 0 && s == at+1 {
			// The stage ran to its end: how long such a stage takes.
			p.est[at] = (3*p.est[at] + now.Sub(since)) / 4
		}
		at, since = s, now
		if plan.kill && !armed && s >= plan.stage && (s != stageDownload || plan.limit < 0) {
			armed = true
			killTimer = time.After(time.Duration(plan.u * float64(p.est[s])))
		}
	}
	kill := func() {
		if res.killed {
			return
		}
		cmd.Process.Kill()
		res.killed, res.landed, killTimer = true, at, nil
	}
	quit := func() {
		if !res.quit && !res.killed {
			io.WriteString(stdin, "quit\n")
			res.quit = true
		}
	}
	guard := time.NewTimer(2 * time.Minute) // a phone that never finishes
	defer guard.Stop()
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			ev, _ := l.e["event"].(string)
			msg, _ := l.e["msg"].(string)
			if strings.HasPrefix(ev, "firmware_") || strings.HasPrefix(msg, "firmware install:") {
				res.events = append(res.events, l.raw)
			}
			switch {
			case ev == "firmware_state":
				v := uint64(l.e["committed"].(float64))
				res.committed = &v
				if v != p.committed {
					fail("the agent says version %d is committed, the bootloader's environment version %d", v, p.committed)
				}
			case ev == "firmware_installing":
				if uint64(l.e["version"].(float64)) != c.img.version || l.e["slot"] != c.slot {
					fail("installing %v into slot %v, want version %d into slot %s", l.e["version"], l.e["slot"], c.img.version, c.slot)
				}
				reach(stageDownload, l.at)
			case msg == "firmware install: image in the slot verified":
				reach(stageSwitch, l.at)
			case ev == "firmware_ready":
				io.WriteString(stdin, "wait 1s\n") // a frame of an idle phone: it reboots
				reach(stageReboot, l.at)
			case ev == "firmware_boot" && l.e["trial"] == true:
				reach(stageTrial, l.at)
			case ev == "firmware_committed" && uint64(l.e["version"].(float64)) == p.committed:
				// At start: the commit the environment holds, its record cut short by a kill.
			case ev == "firmware_committed":
				if uint64(l.e["version"].(float64)) != c.img.version || c.broken {
					fail("committed %v, want version %d (broken: %v)", l.e["version"], c.img.version, c.broken)
				}
				reach(stageCommitted, l.at)
				if !armed {
					quit()
				}
			case ev == "firmware_current":
				res.current = true
				if !armed {
					quit()
				}
			case ev == "firmware_failed":
				if !c.broken {
					fail("a good version failed: %s", l.raw)
				}
			case ev == "firmware_error" || ev == "firmware_unhealthy":
				fail("%s", l.raw)
				quit()
			}
		case e := <-p.srv.events:
			if e.run != run {
				continue
			}
			now := time.Now()
			if e.stalled {
				reach(stageDownload, now)
				kill()
				continue
			}
			if c.delta || e.end == e.size {
				reach(stageVerify, now)
			}
		case <-killTimer:
			kill()
		case <-guard.C:
			kill()
			fail("the phone did not finish in time")
		}
	}
	err := cmd.Wait()
	stdin.Close()
	p.last = res.events
	var exit *exec.ExitError
	switch {
	case res.killed:
	case res.quit && err == nil:
	case c.broken && errors.As(err, &exit) && exit.ExitCode() == 3:
		// The broken version's trial boot.
	default:
		fail("the phone stopped by itself: %v", err)
	}
	if len(failures) > 0 {
		t.Fatalf("%s\nfirmware events:\n%s\nstderr:\n%s\nruns before:\n%s", strings.Join(failures, "\n"), strings.Join(res.events, "\n"), stderr.String(), p.recent())
	}
	return res
}

// recent is the history of the last runs.
func (p *phone) recent() string {
	return strings.Join(p.history[max(0, len(p.history)-12):], "\n")
}

// check looks at the phone from outside after a run: the bootloader's environment and the
// slots.
func (p *phone) check(c *cycle, r runResult) {
	t := p.t
	t.Helper()
	valid := envCopies(t, p.data)
	st, err := readBootEnv(t, p.data)
	if err != nil {
		if errors.Is(err, bootenv.ErrNoValidCopy) && !p.envSeen && holds(t, slotImage(p.data, bootenv.SlotA), p.held[bootenv.SlotA]) {
			return // killed before the factory environment was written: U-Boot's defaults boot slot a
		}
		t.Fatalf("bootloader environment: %v; firmware events:\n%s", err, strings.Join(p.last, "\n"))
	}
	p.envSeen = true
	killed := "-"
	if r.killed {
		killed = stageNames[r.landed]
	}
	p.history = append(p.history, fmt.Sprintf("version %d into %s: plan %+v, killed %s; good %s boot %s trial %v count %d failed %q",
		c.img.version, c.slot, r.plan, killed, st.good, st.boot, st.trial, st.count, st.failed))
	if valid < 2 {
		p.tornEnv++
	}
	fatal := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nenvironment %+v\nfirmware events of the last run:\n%s\nruns before:\n%s", fmt.Sprintf(format, args...), st, strings.Join(p.last, "\n"), p.recent())
	}
	if r.killed && r.landed == stageSwitch && st.trial {
		p.switchMarked++
	}
	if st.good != p.good {
		// A commit: only of the version on trial, in its slot, verified.
		if c.broken || st.good != c.slot || !holds(t, slotImage(p.data, st.good), c.img) {
			fatal("slot %s became the good slot, holding something other than version %d", st.good, c.img.version)
		}
		p.good, p.held[st.good], p.committed = st.good, c.img, c.img.version
		if !c.broken {
			c.done = true
		}
	}
	// The good slot, the fallback, still holds what it was committed with.
	if !holds(t, slotImage(p.data, st.good), p.held[st.good]) {
		fatal("the good slot %s no longer holds version %d", st.good, p.held[st.good].version)
	}
	// The slot that boots next verifies: the good one, or the version on trial.
	switch next := st.next; {
	case next.Trial:
		if next.Slot != c.slot || !holds(t, slotImage(p.data, next.Slot), c.img) {
			fatal("slot %s boots on trial without holding version %d, verified", next.Slot, c.img.version)
		}
	case next.Slot != st.good:
		fatal("slot %s boots, not on trial and not the good slot %s", next.Slot, st.good)
	}
	if st.trial {
		c.marked = true
	}
	if fellBack := c.marked && !st.trial && st.good != c.slot; fellBack || st.next.FellBack {
		if !c.broken {
			fatal("the bootloader gave up on good version %d", c.img.version)
		}
		c.fellBack = fellBack
	}
	if c.broken && c.fellBack && r.current && !r.killed {
		c.done = true
	}
	if c.done && !c.broken && !holds(t, slotImage(p.data, otherSlot(p.good)), p.held[otherSlot(p.good)]) {
		fatal("after version %d's commit, slot %s no longer holds version %d", c.img.version, otherSlot(p.good), p.held[otherSlot(p.good)].version)
	}
}
