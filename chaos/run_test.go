package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/backoffice/vault"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/uplink/s3test"
)

// runPlan is what happens in one run of the agent; event numbers count its log lines.
type runPlan struct {
	// The agent is killed at the first event this long after its start (0: never), or at its
	// killAtSegment-th sealed segment if that comes first.
	killAfter     time.Duration
	killAtSegment int
	// Or killAfterEvent this long after the first event named killOn (a moment of the
	// firmware update).
	killOn         string
	killAfterEvent time.Duration
	recordFirst    bool // the run's first call is a recorded one that is accepted
	calm           bool
	pause          time.Duration // how long it stays down after the kill before the next run
	// The servers: killed at the first event number, started again at the second (or once
	// the agent is down, if the run ends first). 0: left alone.
	s3Kill, s3Back     int
	repoKill, repoBack int
	// The proxy in front of S3: fault from faultAt, for faultN requests (a stall until
	// faultEnd or the run's end).
	fault           s3test.Fault
	faultAt, faultN int
	faultEnd        int
	consoleAt       int // a technician signs in and reads the status (0: not this run)
	final           bool
	calls           []callSpec // the final run's calls; otherwise drawn from the schedule
	drainAfterCalls bool
}

var faultNames = map[s3test.Fault]string{s3test.Fail500: "S3 500 errors", s3test.Full507: "S3 507 insufficient storage",
	s3test.Stall: "S3 stalls", s3test.Corrupt: "S3 corrupted bodies"}

// callReserve is the room the phone wants for a recorded call under the demo policy: its
// longest call (15 minutes) of both directions of µ-law, with the segments' overhead (as
// the agent reckons it).
const callReserve = 900*16000 + 901*1024 + 64<<10

// plan draws the next run. Most runs are cut short within their first call; some run calm
// for several calls (long enough for the phone to ask the repository, 10 to 20 s after start).
func (h *harness) plan() runPlan {
	r := h.rng
	var p runPlan
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+r.IntN(hi-lo)) * time.Millisecond }
	switch x := r.IntN(100); {
	case h.runs == 0 || !h.goalMet():
		// Calm: long enough for the phone to ask the repository (10 to 20 s after its start)
		// and take up its news, with the repository's server left alone.
		p.killAfter = ms(22000, 32000)
		p.calm = true
		if h.stage == 5 {
			h.planFirmware(&p)
		}
	case x < 25:
		p.killAfter = ms(1, 1000) // while it starts (0 would be never)
	case x < 82:
		p.killAfter = ms(1000, 5000) // prompts, the decision, dialing
	case x < 92:
		p.killAfter = ms(5000, 15000) // notices, the accept, talk
	default:
		// While it records: its first call is a recorded one, killed after a segment.
		p.killAtSegment = 1 + r.IntN(2)
		p.killAfter = 25 * time.Second
		p.recordFirst = true
	}
	if r.IntN(4) == 0 {
		p.pause = ms(200, 1500)
	}
	horizon := 10 + int(p.killAfter/(200*time.Millisecond)) // the events the faults are placed among: about 5 a second
	if r.IntN(100) < 40 {
		p.s3Kill = 1 + r.IntN(horizon)
		p.s3Back = p.s3Kill + 1 + r.IntN(60)
	}
	if r.IntN(100) < 40 && !p.calm {
		p.repoKill = 1 + r.IntN(horizon)
		p.repoBack = p.repoKill + 1 + r.IntN(80)
	}
	if r.IntN(100) < 40 {
		p.fault = []s3test.Fault{s3test.Fail500, s3test.Full507, s3test.Stall, s3test.Corrupt}[r.IntN(4)]
		p.faultAt = 1 + r.IntN(horizon)
		p.faultN = 1 + r.IntN(8)
		p.faultEnd = p.faultAt + 1 + r.IntN(60)
	}
	if r.IntN(100) < 12 {
		p.consoleAt = 8 + r.IntN(40)
	}
	return p
}

// run is one run of the agent, from its start to its kill (or, for the final run, to quit).
func (h *harness) run(p runPlan) {
	t := h.t
	h.runs++
	ag := startAgent(t, h.bin, h.agentA, h.env, h.logs)
	var killC <-chan time.Time
	var killTm *time.Timer
	killTimer := func(d time.Duration) {
		if killTm != nil {
			killTm.Stop()
		}
		killTm = time.NewTimer(d)
		killC = killTm.C
	}
	defer func() {
		if killTm != nil {
			killTm.Stop()
		}
	}()
	switch {
	case p.killAfter > 0:
		killTimer(p.killAfter)
	case !p.final:
		t.Fatalf("run %d planned without a kill: %+v", h.runs, p)
	}
	servers := []*serverFault{
		{name: "versitygw", at: p.s3Kill, back: p.s3Back, kill: h.s3.Kill, start: func() { h.s3.Restart(t) }},
		{name: "repository server", at: p.repoKill, back: p.repoBack, kill: h.repo.kill, start: func() { h.repo.start(t) }},
	}
	var (
		cur       *callOutcome
		n         int
		killed    bool
		quitting  bool
		started   bool
		faultOn   bool
		conDone   chan consoleResult
		calls     = p.calls
		segments  int
		drainTick <-chan time.Time
		// The phone has new firmware ready and reboots into it once idle: the next call
		// waits for the rebooted phone, lest its keys go to the one on its way out.
		rebootDue bool
		// Keys sent just before a reboot: the rebooted phone may yet read them (they were
		// still in the pipe) or they were lost with the phone on its way out (read, not
		// acted on). The call is made again only if no off-hook comes by then.
		keysLost <-chan time.Time
	)
	guard := time.NewTimer(2 * time.Minute)
	defer guard.Stop()
	drainTicker := time.NewTicker(200 * time.Millisecond)
	defer drainTicker.Stop()
	kill := func() {
		if !killed {
			ag.kill()
			killed = true
			h.kills["agent"]++
		}
	}
	next := func() {
		var s callSpec
		switch {
		case p.final && len(calls) == 0:
			cur = nil
			if p.drainAfterCalls {
				drainTick = drainTicker.C
			}
			return
		case p.final:
			s, calls = calls[0], calls[1:]
		case p.recordFirst && cur == nil:
			s = callSpec{"recorded", callerEN, recordedNumbers[h.rng.IntN(len(recordedNumbers))], "accept"}
		default:
			s = h.nextSpec()
		}
		cur = &callOutcome{spec: s, run: h.runs, sealed: map[int]bool{}}
		h.calls = append(h.calls, cur)
		if s.mode != "none" {
			h.peers.start(t, s.mode)
		}
		ag.send("offhook", "press "+s.caller.lang, "press "+s.caller.id+"#", "press "+s.caller.pin+"#", "press "+s.number+"#")
	}
	for {
		var e event
		var ok bool
		select {
		case e, ok = <-ag.events:
		case r := <-conDone:
			conDone = nil
			h.consoleResult(r, killed)
			continue
		case <-killC:
			kill()
			continue
		case <-keysLost:
			keysLost = nil
			if cur != nil && cur.id == "" && !killed {
				h.counts["calls not made: keys lost in a reboot"]++
				next()
			}
			continue
		case <-drainTick:
			if h.drained() {
				drainTick = nil
				quitting = true
				ag.send("quit")
			}
			continue
		case <-guard.C:
			ag.kill()
			for range ag.events {
			}
			ag.wait()
			t.Fatalf("run %d: no word from the agent for 2 minutes (event %d); its log is %s", h.runs, n, h.logs.Name())
		}
		if !ok {
			break
		}
		guard.Reset(2 * time.Minute)
		n++
		h.observe(e)
		// A call the phone opened is the harness's even when the kill was already decided:
		// its record is made, and shipped after the restart.
		if cur != nil && cur.id == "" && e.name() == "offhook" && e.CallID != "" {
			cur.id = e.CallID
			h.byID[cur.id] = cur
		}
		if killed {
			continue
		}
		if p.killOn != "" && e.name() == p.killOn {
			p.killOn = ""
			killTimer(p.killAfterEvent)
			h.counts["kills aimed at "+e.name()]++
		}
		// The phone.
		switch {
		case e.name() == "firmware_ready":
			rebootDue = true
		case e.name() == "agent_started" && started:
			// Rebooted into new firmware.
			rebootDue = false
			if cur != nil && cur.id == "" {
				keysLost = time.After(5 * time.Second)
			} else {
				next()
			}
		}
		if e.name() == "agent_started" && !started {
			started = true
			h.advanceRepo()
			next()
		} else if cur != nil {
			if e.CallID != "" && e.CallID == cur.id {
				switch e.name() {
				case "decision":
					if e.Decision == "invalid" {
						ag.send("onhook")
					}
				case "ringing":
					if cur.spec.mode == "ring" {
						ag.send("onhook")
					}
				case "call_ended":
					ag.send("onhook")
				case "onhook":
					if m := ag.memory(); m.anon > 0 {
						h.memSamples = append(h.memSamples, m)
					}
					ag.send("wait 1s")
					if rebootDue {
						cur = nil
						break
					}
					next()
				}
			}
		}
		// The faults.
		for _, f := range servers {
			f.step(n, h.kills)
		}
		if n == p.faultAt && p.fault != s3test.Pass {
			count := p.faultN
			if p.fault == s3test.Stall {
				count = -1
			}
			h.proxy.Set(p.fault, count)
			h.faults[faultNames[p.fault]]++
			faultOn = true
		}
		if faultOn && n == p.faultEnd {
			h.proxy.Set(s3test.Pass, 0)
			faultOn = false
		}
		if n == p.consoleAt && conDone == nil {
			conDone = h.con.session(h.deviceID)
			h.consoleRuns++
		}
		if e.name() == "segment_sealed" {
			segments++
		}
		if p.killAtSegment > 0 && segments >= p.killAtSegment {
			kill()
		}
	}
	err := ag.wait()
	if cur != nil && !cur.onhook {
		cur.killed = true
	}
	var exit *exec.ExitError
	switch {
	case quitting && err != nil:
		t.Errorf("run %d: the agent asked to quit exited with %v", h.runs, err)
	case !killed && !quitting:
		t.Fatalf("run %d: the agent stopped by itself (%v); its log is %s", h.runs, err, h.logs.Name())
	case killed && errors.As(err, &exit) && exit.Exited():
		h.counts["kills after the agent had exited"]++
	}
	h.peers.stop()
	if conDone != nil {
		h.consoleResult(<-conDone, true)
	}
	if faultOn {
		h.proxy.Set(s3test.Pass, 0)
	}
	for _, f := range servers {
		f.up()
	}
	h.counts["events"] += n
	if p.pause > 0 {
		h.counts["restarts after a while"]++
		<-time.After(p.pause)
	}
}

// serverFault is a server's kill -9 in a run: at event at, started again at event back, or
// once the agent is down if the run ends first.
type serverFault struct {
	name        string
	at, back    int
	kill, start func()
	down        bool
}

func (f *serverFault) step(n int, kills map[string]int) {
	switch {
	case n == f.at && f.at > 0:
		f.kill()
		kills[f.name]++
		f.down = true
	case n == f.back && f.down:
		f.up()
	}
}

func (f *serverFault) up() {
	if f.down {
		f.start()
		f.down = false
	}
}

// afterRun looks at the spool as a crash left it (every sealed file that is there is
// remembered, to be found byte for byte in the vault) and, now and then, plays the back
// office carrying out purge requests.
func (h *harness) afterRun() {
	h.snapshotSpool()
	h.checkSlots()
	if h.runs%8 == 0 {
		h.purge()
	}
}

// snapshotSpool remembers the SHA-256 of every segment in the spool; a segment that changes
// once sealed is a failure.
func (h *harness) snapshotSpool() {
	root := filepath.Join(h.data, "spool", "segments")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") || !strings.HasSuffix(d.Name(), ".age") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil // uploaded and removed meanwhile: nothing is running now, so it cannot be
		}
		sum := sha256.Sum256(b)
		key := filepath.Base(filepath.Dir(p)) + "/" + strings.TrimSuffix(d.Name(), ".age")
		if old, ok := h.spooled[key]; ok && old != hex.EncodeToString(sum[:]) {
			h.t.Errorf("sealed segment %s changed in the spool", key)
		}
		h.spooled[key] = hex.EncodeToString(sum[:])
		return nil
	})
}

// purge carries out the phones' purge requests with the vault's admin credentials, as the
// back office's wallphonectl vault purge does.
func (h *harness) purge() {
	if h.deviceID == "" {
		return
	}
	v, err := vault.New(h.s3.AdminConfig(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.purgeRuns++
	err = v.Purge(context.Background(), vault.Enrolled{h.deviceID: h.deviceKey}, time.Now, func(o vault.Outcome) {
		if o.Err != nil {
			h.t.Errorf("purge %s: %v", o.Key, o.Err)
			return
		}
		h.receipts++
	})
	if err != nil {
		h.t.Errorf("vault purge: %v", err)
	}
}

// The repository's story, one stage at a time, each taken at the start of a run once the run
// is far enough along: 1 a registry that makes the late number privileged (once a call to it
// is in the vault), 2 a registry whose files are tampered with after signing, 3 a stale
// timestamp (an older one put back), 4 a valid registry and policy again, 5 new firmware.
func (h *harness) advanceRepo() {
	h.stepRepo(h.progress(), false)
	h.stepSpool(h.progress())
}

// stepRepo takes the next stage of the repository's story if it is due; forced, whatever
// the progress.
func (h *harness) stepRepo(pr float64, force bool) {
	if force {
		pr = 1
	}
	switch {
	case h.stage == 0 && pr >= 0.3 && (h.lateInVault() || pr >= 0.6):
		if !h.lateInVault() {
			h.counts["late registry published before a late call was in the vault"]++
		}
		h.publishRegistry(false)
		h.lateVer = h.lastReg
	case h.stage == 1 && ((h.goalMet() && pr >= 0.4) || pr >= 0.7):
		h.publishRegistry(true)
	case h.stage == 2 && ((h.goalMet() && pr >= 0.5) || pr >= 0.8):
		h.staleTimestamp()
	case h.stage == 3 && ((h.goalMet() && pr >= 0.6) || pr >= 0.85):
		h.serve(filepath.Join(h.keys, "repo"))
		h.publishRegistry(false)
		if err := demo.PublishPolicy(h.keys, 3, `"segment": "5s"`, `"segment": "1s"`); err != nil {
			h.t.Fatal(err)
		}
	case h.stage == 4 && ((h.goalMet() && pr >= 0.7) || pr >= 0.9):
		h.publishFirmware()
	default:
		return
	}
	h.stage++
	h.stageAt = h.counts["update errors"]
	h.counts[stageNames[h.stage]]++
}

var stageNames = []string{"", "registry making a recorded number privileged published", "registry tampered with after signing published",
	"stale timestamp served", "valid registry and policy published after them", "firmware release published"}

// goalMet reports whether the phone has done what the repository's stage asks of it: taken
// up the late registry, refused the tampered one, refused the stale timestamp, taken up the
// last registry, committed the new firmware.
func (h *harness) goalMet() bool {
	switch h.stage {
	case 1:
		return h.regInstall >= h.lateVer
	case 2, 3:
		return h.counts["update errors"] > h.stageAt
	case 4:
		return h.regInstall >= h.lastReg
	case 5:
		return h.fw.committed == fwTo
	}
	return true
}

// publishRegistry publishes the next registry version, with the late number an attorney's;
// tampered, its files in the repository are changed after they were signed (while the
// repository's server is down, so that no phone sees them whole).
func (h *harness) publishRegistry(tamper bool) {
	t := h.t
	v := h.lastReg + 1
	if tamper {
		h.repo.kill()
		h.kills["repository server"]++
	}
	late := []registry.Item{{Number: "+1" + lateNumber, Kind: registry.Attorney, Label: "registered during the run"}}
	if err := demo.PublishRegistry(h.keys, v, late, nil); err != nil {
		t.Fatal(err)
	}
	if !tamper {
		h.lastReg = v
		return
	}
	h.tampered[v] = true
	h.lastReg = v // the next valid one builds on it (its own files are intact beside the repository)
	for _, f := range []string{fmt.Sprintf("registry-%d.reg", v), fmt.Sprintf("registry-%d.reg.delta", v)} {
		b, err := os.ReadFile(filepath.Join(h.keys, f))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		matches, _ := filepath.Glob(filepath.Join(h.keys, "repo", "targets", "*", hex.EncodeToString(sum[:])+".*"))
		top, _ := filepath.Glob(filepath.Join(h.keys, "repo", "targets", hex.EncodeToString(sum[:])+".*"))
		matches = append(matches, top...)
		if len(matches) == 0 {
			t.Fatalf("tamper: no target file of %s in the repository", f)
		}
		for _, m := range matches {
			tb, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			tb[len(tb)/2] ^= 0x01
			if err := os.WriteFile(m, tb, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.repo.start(t)
}
