package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/internal/testports"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/uplink/s3test"
)

// What a run is asked for: the seed reproduces the schedule of a failing run.
const (
	seedEnv     = "WALLPHONE_CHAOS_SEED"
	killsEnv    = "WALLPHONE_CHAOS_KILLS"
	durationEnv = "WALLPHONE_CHAOS_DURATION"
)

// The numbers the harness dials, as keyed on the phone (the demo's dial plan: area code 512).
var (
	recordedNumbers   = []string{"5125550123", "5125550131", "5125550132", "5125550133"}
	privilegedNumbers = []string{"5125550100", "15125550100", "5125550142", "5125550171", "5125550177"}
	invalidNumbers    = []string{"12", "123"}
)

const (
	// lateNumber is called, recorded and uploaded, then made an attorney's by a registry
	// published in the middle of the run: its recordings must then be destroyed everywhere.
	lateNumber    = "5125550188"
	freeNumber    = "8006564673"
	blockedNumber = "5125550166"
	// finalNumber is the recorded call that shows the phone serving calls at the end.
	finalNumber = "5125550134"
)

// caller is a demo caller: the greeting's language key, ID and PIN.
type caller struct{ lang, id, pin string }

var (
	callerEN         = caller{"1", "1001", "1234"}
	callerES         = caller{"2", "1002", "5678"}
	callerRestricted = caller{"1", "1003", "2468"} // may call only 512-555-0123
)

// callSpec is one call of the schedule.
type callSpec struct {
	kind   string // recorded, late, privileged, free, blocked, invalid
	caller caller
	number string
	// mode is what the called party does: accept, decline, leave (hangs up during the
	// notice), busy, ring (never answers: the caller gives up), talk (an unrecorded call),
	// none (nobody is dialed).
	mode string
}

// e164 is the number as the phone normalises it.
func (s callSpec) e164() string {
	switch {
	case len(s.number) == 10:
		return "+1" + s.number
	case len(s.number) == 11 && s.number[0] == '1':
		return "+" + s.number
	}
	return ""
}

// callOutcome is what became of one call, as the agent's log told it.
type callOutcome struct {
	spec             callSpec
	run              int
	id               string
	decision         string
	regVersion       uint64
	recordingStarted bool
	connected        bool
	accepted         bool
	ended            bool
	endReason        string
	onhook           bool
	killed           bool         // the agent was killed before the call's on-hook
	sealed           map[int]bool // segments the phone said it sealed
}

type config struct {
	seed     uint64
	kills    int
	duration time.Duration
}

func readConfig(t *testing.T) config {
	c := config{seed: uint64(time.Now().UnixNano()), kills: 50}
	if s := os.Getenv(seedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a number", seedEnv, s)
		}
		c.seed = n
	}
	if s := os.Getenv(killsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of kills", killsEnv, s)
		}
		c.kills = n
	}
	if s := os.Getenv(durationEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a duration", durationEnv, s)
		}
		c.duration = d
	}
	return c
}

// TestChaos runs the whole system under faults (issue 18): the real agent on the simulated
// phone with its SIP trunk to SIPp, its vault on versitygw behind a fault-injecting proxy
// with write-only credentials, its repository served over HTTP by a process of its own, a
// technician on its console over a pseudo-terminal. A seeded schedule of calls of every kind
// runs while the agent is killed with SIGKILL (restarted at once or after a while), the S3
// server and the repository's server are killed and restarted, the proxy stalls and fails
// requests, and the repository publishes a registry that makes an already recorded and
// uploaded number privileged, a tampered registry, a stale timestamp and new firmware, which
// the phone installs, reboots into when idle and commits once healthy. Then, with
// everything up again and drained, the promises are checked from outside (see check).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the agent, SIPp, versitygw and a server of its own as processes of this machine's architecture")
	}
	cfg := readConfig(t)
	t.Logf("seed %d (%s=%d reproduces the schedule), %d agent kills%s", cfg.seed, seedEnv, cfg.seed, cfg.kills,
		map[bool]string{true: fmt.Sprintf(", or %v", cfg.duration)}[cfg.duration > 0])
	h := newHarness(t, cfg)
	for !h.finished() {
		h.run(h.plan())
		h.afterRun()
	}
	h.final()
	h.check()
	t.Logf("seed %d, %v\n%s", cfg.seed, time.Since(h.began).Round(time.Second), h.table())
}

// harness is one chaos run: the parts, the schedule and what was seen.
type harness struct {
	t      *testing.T
	cfg    config
	rng    *rand.Rand
	began  time.Time
	dir    string
	data   string
	keys   string
	bin    string
	env    []string
	logs   *os.File // every line the agent wrote, in every run
	s3     *s3test.Server
	proxy  *s3test.Proxy
	repo   *repoServer
	peers  *peers
	con    *console
	agentA []string

	// The schedule.
	specs    int // calls scheduled so far
	runs     int
	stage    int    // of the repository's story: see advanceRepo
	stageAt  int    // update errors counted when the stage began
	oldStamp []byte // the repository's first timestamp.json, put back to make it stale
	lastReg  uint64 // the newest valid registry published
	lateVer  uint64 // the registry version that made lateNumber privileged
	tampered map[uint64]bool

	// What was seen.
	calls       []*callOutcome
	byID        map[string]*callOutcome
	deviceID    string
	deviceKey   string
	regInstall  uint64 // the newest registry installed
	regInForce  uint64
	polInstall  uint64
	kills       map[string]int
	faults      map[string]int
	counts      map[string]int // events and other things worth a line in the table
	spooled     map[string]string
	destroyed   map[string]bool
	memSamples  []memory // after each call
	purgeRuns   int
	receipts    int
	consoleRuns int
	rows        []row
	spoolFS     string // the small file system under the spool ("" when it cannot be mounted)
	filled      bool
	fw          fwState
	overAt      int // the run at which the progress first reached its end
}

func newHarness(t *testing.T, cfg config) *harness {
	h := &harness{t: t, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.seed, cfg.seed>>7)), began: time.Now(),
		dir: t.TempDir(), tampered: map[uint64]bool{}, byID: map[string]*callOutcome{},
		kills: map[string]int{}, faults: map[string]int{}, counts: map[string]int{},
		spooled: map[string]string{}, destroyed: map[string]bool{}, lastReg: 1}
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Skip("sipp (Debian package sip-tester) is not installed; make deps installs it")
	}
	h.data = filepath.Join(h.dir, "data")
	h.keys = h.data + "-keys"
	h.bin = filepath.Join(h.dir, "bin", "wallphoned")
	h.buildFirmware()
	h.env = append(os.Environ(), "HOME="+h.dir)
	if h.logs, err = os.OpenFile(filepath.Join(h.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.logs.Close() })

	// The vendor's and the facility's side, with one-second segments (many per call).
	if err := demo.Init(h.keys, nil); err != nil {
		t.Fatal(err)
	}
	if err := demo.PublishPolicy(h.keys, 2, `"segment": "5s"`, `"segment": "1s"`); err != nil {
		t.Fatal(err)
	}
	if h.oldStamp, err = os.ReadFile(filepath.Join(h.keys, "repo", "metadata", "timestamp.json")); err != nil {
		t.Fatal(err)
	}
	ports := testports.New(h.rng)
	h.repo = &repoServer{dir: filepath.Join(h.dir, "served"), addr: fmt.Sprintf("127.0.0.1:%d", ports.Take(t, 1)), log: h.logFileFor("repository.log")}
	h.serve(filepath.Join(h.keys, "repo"))
	h.repo.start(t)
	t.Cleanup(h.repo.kill)
	if err := os.WriteFile(filepath.Join(h.keys, demo.EnrolDir, provisioning.RepositoryFile),
		tufclient.Repository{URL: h.repo.url()}.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}

	// The vault: versitygw, and the proxy the phone reaches it through.
	h.s3 = s3test.Start(t)
	h.proxy = s3test.NewProxy(t, h.s3.Endpoint())
	conf := filepath.Join(h.data, "conf")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	vj, _ := json.Marshal(s3test.PhoneConfig(h.proxy.URL))
	if err := os.WriteFile(filepath.Join(conf, "vault.json"), vj, 0o600); err != nil {
		t.Fatal(err)
	}

	h.spoolOnTmpfs()

	// The called parties: SIPp on ports of the harness's choosing, one run per call.
	h.peers = &peers{bin: sipp, dir: filepath.Join(h.dir, "sipp"), sipPort: ports.Take(t, 1), rtp: ports.Take(t, 4)}
	if err := os.MkdirAll(h.peers.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.peers.stop)
	h.peers.scenarios = h.scenarios(t)
	rtpLow := ports.Take(t, 200)
	sip := fmt.Sprintf(`{"server": "127.0.0.1:%d", "user": "wall-0042", "listen": "127.0.0.1:0", "rtp_ports": "%d-%d"}`,
		h.peers.sipPort, rtpLow, rtpLow+199)
	sipFile := filepath.Join(h.dir, "sip.json")
	if err := os.WriteFile(sipFile, []byte(sip), 0o600); err != nil {
		t.Fatal(err)
	}

	// The console: a pseudo-terminal whose far end the technician's client holds.
	h.con = newConsole(t, h.keys)
	h.agentA = []string{"--board", "sim", "--slots", "--log", "json", "--data", h.data, "--trunk", "sip", "--sip", sipFile,
		"--update-interval", "1m", "--console", h.con.port}
	return h
}

func (h *harness) logFileFor(name string) *os.File {
	f, err := os.OpenFile(filepath.Join(h.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { f.Close() })
	return f
}

// scenarios writes the SIPp scenarios with the harness's values: the called party's voice
// (a µ-law WAV of a tone the plaintext search looks for), how long the notice takes, how
// long each talks.
func (h *harness) scenarios(t *testing.T) map[string]string {
	prompts, err := audio.LoadPrompts()
	if err != nil {
		t.Fatal(err)
	}
	notice := max(prompts.Clip(audio.PromptNoticeCallee, audio.English).Duration(),
		prompts.Clip(audio.PromptNoticeCallee, audio.Spanish).Duration()) + 700*time.Millisecond
	voice := filepath.Join(h.peers.dir, "voice.wav")
	if err := os.WriteFile(voice, calleeVoiceWAV(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for mode, src := range map[string]struct {
		file string
		talk time.Duration
	}{
		"accept": {"accept.xml", 2500 * time.Millisecond}, "decline": {"decline.xml", 0},
		"leave": {"talk.xml", 3 * time.Second}, "talk": {"talk.xml", 2 * time.Second},
		"busy": {"busy.xml", 0}, "ring": {"ring.xml", 0},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", src.file))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.NewReplacer("[voice]", voice, "[notice]", strconv.FormatInt(notice.Milliseconds(), 10),
			"[talk]", strconv.FormatInt(src.talk.Milliseconds(), 10)).Replace(string(b))
		f := filepath.Join(h.peers.dir, mode+".xml")
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		out[mode] = f
	}
	return out
}

// progress is how far the run is, from 0 to 1: by kills, or by time for a soak.
func (h *harness) progress() float64 {
	if h.cfg.duration > 0 {
		return float64(time.Since(h.began)) / float64(h.cfg.duration)
	}
	return float64(h.kills["agent"]) / float64(h.cfg.kills)
}

// finished reports whether the run is over: far enough along, with the repository's story
// told to its end (the firmware release committed), or 20 runs past that point, when the
// end's checks say what never came. (A share of the run would not do: a short run's share is
// fewer runs than the firmware's update takes.)
func (h *harness) finished() bool {
	if h.progress() < 1 {
		return false
	}
	if h.overAt == 0 {
		h.overAt = h.runs
	}
	return h.stage == len(stageNames)-1 && h.goalMet() || h.runs-h.overAt >= 20
}

// nextSpec draws the next call of the schedule. The first calls are fixed so that the late
// number is recorded and uploaded early.
func (h *harness) nextSpec() callSpec {
	h.specs++
	r := h.rng
	switch h.specs {
	case 1:
		return callSpec{"late", callerEN, lateNumber, "accept"}
	case 2:
		return callSpec{"privileged", callerEN, privilegedNumbers[0], "talk"}
	case 3:
		return callSpec{"recorded", callerES, recordedNumbers[0], "accept"}
	}
	c := callerEN
	if r.IntN(4) == 0 {
		c = callerES
	}
	recordedMode := func() string {
		switch x := r.IntN(100); {
		case x < 70:
			return "accept"
		case x < 80:
			return "decline"
		case x < 88:
			return "leave"
		case x < 94:
			return "busy"
		default:
			return "ring"
		}
	}
	switch x := r.IntN(100); {
	case x < 28:
		if r.IntN(6) == 0 {
			return callSpec{"recorded", callerRestricted, recordedNumbers[0], recordedMode()}
		}
		return callSpec{"recorded", c, recordedNumbers[r.IntN(len(recordedNumbers))], recordedMode()}
	case x < 40:
		return callSpec{"late", c, lateNumber, recordedMode()}
	case x < 62:
		return callSpec{"privileged", c, privilegedNumbers[r.IntN(len(privilegedNumbers))], "talk"}
	case x < 76:
		return callSpec{"free", c, freeNumber, "talk"}
	case x < 88:
		if r.IntN(3) == 0 {
			return callSpec{"blocked", callerRestricted, recordedNumbers[1], "none"}
		}
		return callSpec{"blocked", c, blockedNumber, "none"}
	default:
		return callSpec{"invalid", c, invalidNumbers[r.IntN(len(invalidNumbers))], "none"}
	}
}

// expect is the decision the call must get: the late number is privileged once the phone
// decides under the registry that made it so.
func (h *harness) expect(o *callOutcome) string {
	switch o.spec.kind {
	case "late":
		if h.lateVer > 0 && o.regVersion >= h.lateVer {
			return "privileged"
		}
		return "recorded"
	}
	return o.spec.kind
}
