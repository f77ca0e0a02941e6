package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wallphone/wallphone/internal/testports"
)

// The real parts the harness starts and kills: the agent, the repository's server and the
// SIP peers. The S3 server comes from uplink/s3test.

// event is one line of the agent's JSON log, with the fields the harness reads.
type event struct {
	Msg             string `json:"msg"`
	Event           string `json:"event"`
	CallID          string `json:"call_id"`
	Decision        string `json:"decision"`
	Reason          string `json:"reason"`
	To              string `json:"to"`
	Seq             *int   `json:"seq"`
	Version         uint64 `json:"version"`
	RegistryVersion uint64 `json:"registry_version"`
	Recorded        *bool  `json:"recorded"`
	DeviceID        string `json:"device_id"`
	DeviceKey       string `json:"device_key"`
	Err             string `json:"err"`
	Firmware        string `json:"firmware"`
	Trial           *bool  `json:"trial"`
	line            string
}

// name is the event's name: its event field, else its msg.
func (e event) name() string {
	if e.Event != "" {
		return e.Event
	}
	return e.Msg
}

// agentProc is one run of wallphoned. Its log lines (standard output and error) are appended
// to a file, which the plaintext search reads at the end, and handed to the harness as events.
type agentProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan event // closed when its standard output ends
	mu     sync.Mutex // guards the write end of stdin after a kill
	dead   bool
}

func startAgent(t *testing.T, bin string, args []string, env []string, logFile *os.File) *agentProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = dieWithTest()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, stdin: stdin, events: make(chan event, 1024)}
	go func() {
		defer close(a.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			logFile.WriteString(line + "\n")
			var e event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			e.line = line
			a.events <- e
		}
	}()
	return a
}

// send writes command lines to the phone; after a kill they go nowhere.
func (a *agentProc) send(lines ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead {
		return
	}
	io.WriteString(a.stdin, strings.Join(lines, "\n")+"\n")
}

// kill kills the agent with SIGKILL. The caller drains events and then calls wait.
func (a *agentProc) kill() {
	a.mu.Lock()
	a.dead = true
	a.mu.Unlock()
	a.cmd.Process.Kill()
}

// wait waits for the process once its output is drained, and returns how it ended.
func (a *agentProc) wait() error {
	a.mu.Lock()
	a.dead = true
	a.stdin.Close()
	a.mu.Unlock()
	return a.cmd.Wait()
}

// memory is the agent's resident memory, from /proc: all of it, and its anonymous part (the
// heap, stacks and runtime, without the pages of files it maps: its binary, the registry,
// the state database), which is what would grow with what it keeps. Zero if unreadable.
type memory struct{ rss, anon int64 }

func (a *agentProc) memory() memory {
	var m memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "RssAnon:":
			m.anon = kb << 10
		}
	}
	return m
}

// dieWithTest has a process the harness starts killed if the test binary dies first (a
// test's timeout ends it without cleanups): nothing it started outlives it.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// repoServer is the repository served over HTTP by a process of its own (this test binary,
// see TestMain), so that it can be killed with SIGKILL like any web server.
type repoServer struct {
	dir, addr string
	log       *os.File
	cmd       *exec.Cmd
}

func (r *repoServer) url() string { return "http://" + r.addr }

func (r *repoServer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), repoEnv+"="+r.dir, repoAddrEnv+"="+r.addr)
	cmd.SysProcAttr = dieWithTest()
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd = cmd
	waitListening(t, r.addr, "repository server")
}

func (r *repoServer) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// waitListening waits until addr accepts TCP connections, with a guard against a server
// that never does.
func waitListening(t *testing.T, addr, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v", what, addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sipPeer is SIPp playing the called party of one call, from a scenario in testdata.
type sipPeer struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// peers starts SIPp for each call on the same SIP and media ports, which the phone's sip.json
// names; the one before is killed first.
type peers struct {
	bin, dir     string
	sipPort, rtp int
	scenarios    map[string]string // mode → scenario file with the harness's values filled in
	cur          *sipPeer
	started      int
}

func (p *peers) start(t *testing.T, mode string) {
	t.Helper()
	p.stop()
	sf, ok := p.scenarios[mode]
	if !ok {
		t.Fatalf("no scenario for %q", mode)
	}
	cmd := exec.Command(p.bin, "-sf", sf, "-i", "127.0.0.1", "-p", strconv.Itoa(p.sipPort),
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(p.rtp), "-m", "1", "-nostdin",
		"-timeout", "120s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(p.dir, "sipp_errors.log"))
	cmd.Dir = p.dir
	cmd.SysProcAttr = dieWithTest()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sipPeer{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	p.cur = s
	p.started++
	// SIPp binds its port just after it starts; the phone dials seconds later, after its own
	// prompt, but a port not yet bound would refuse the INVITE. A guard, not a timing.
	for i := 0; i < 500 && !testports.Bound("udp", p.sipPort); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the current peer, if any, and waits for it.
func (p *peers) stop() {
	if p.cur == nil {
		return
	}
	p.cur.cmd.Process.Kill()
	<-p.cur.done
	p.cur = nil
}
