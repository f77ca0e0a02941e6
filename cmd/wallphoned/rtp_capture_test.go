package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/wallphone/wallphone/audio"
)

// The ports of TestRTPWhileAwaitingAccept on 127.0.0.1: SIPp's SIP and media ports and the
// phone's RTP range (apart from those of the scripts).
const (
	captureSIPPort   = 36080
	captureMediaPort = 36090
	captureRTPLow    = 36100
	captureRTPHigh   = 36199
)

// TestRTPWhileAwaitingAccept (issue 14, defect 10): a recorded call from the real agent through
// its SIP trunk to SIPp, which lets the notice play and then waits several seconds more before
// it presses 1. tcpdump captures the RTP on the loopback interface. Between the end of the
// notice and the accept the phone must keep its stream to the called party going (else
// carriers' media timers and NAT bindings drop the call) and send nothing but silence: the
// capture is checked for the packets' count, the largest gap between them and their payload.
func TestRTPWhileAwaitingAccept(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a SIP call in real time")
	}
	sipp := needCommand(t, "sipp", "sip-tester")
	tcpdump := needCommand(t, "tcpdump", "tcpdump")
	bin := buildAgent(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	initDemo(t, data+"-keys")

	// The called party waits out the notice and then 8 s more before it presses 1 (the
	// demo policy's accept timeout is 20 s from the end of the notice).
	prompts, err := audio.LoadPrompts()
	if err != nil {
		t.Fatal(err)
	}
	const wait = 8 * time.Second
	pause := prompts.Clip(audio.PromptNoticeCallee, audio.English).Duration() + wait
	xml, err := os.ReadFile(filepath.Join("testdata", "await_accept.xml"))
	if err != nil {
		t.Fatal(err)
	}
	scenario := filepath.Join(dir, "await_accept.xml")
	xml = []byte(strings.ReplaceAll(string(xml), "[pause]", fmt.Sprint(pause.Milliseconds())))
	if err := os.WriteFile(scenario, xml, 0o644); err != nil {
		t.Fatal(err)
	}
	sipConf := filepath.Join(dir, "sip.json")
	if err := os.WriteFile(sipConf, fmt.Appendf(nil,
		`{"server": "127.0.0.1:%d", "user": "wall-0042", "listen": "127.0.0.1:0", "rtp_ports": "%d-%d"}`,
		captureSIPPort, captureRTPLow, captureRTPHigh), 0o644); err != nil {
		t.Fatal(err)
	}

	// The capture: whatever passes the phone's RTP ports; its stream to SIPp is read from it.
	pcap := filepath.Join(dir, "rtp.pcap")
	capture := startCapture(t, tcpdump, pcap, fmt.Sprintf("udp and portrange %d-%d", captureRTPLow, captureRTPHigh))

	peer := exec.Command(sipp, "-sf", scenario, "-i", "127.0.0.1", "-p", fmt.Sprint(captureSIPPort),
		"-mi", "127.0.0.1", "-mp", fmt.Sprint(captureMediaPort), "-m", "1", "-nostdin",
		"-timeout", "90s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, "sipp_errors.log"))
	peer.Dir = dir
	var peerOut strings.Builder
	peer.Stdout, peer.Stderr = &peerOut, &peerOut
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	var peerErr error
	peerDone := make(chan struct{})
	go func() { peerErr = peer.Wait(); close(peerDone) }()
	t.Cleanup(func() {
		peer.Process.Kill()
		<-peerDone
	})

	// The phone: the demo's recorded number, on-hook a second after the call connects.
	agent := exec.Command(bin, "--board", "sim", "--log", "json", "--data", data, "--trunk", "sip", "--sip", sipConf)
	agent.Env = append(os.Environ(), "HOME="+dir)
	stdin, err := agent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var agentErr strings.Builder
	agent.Stderr = &agentErr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill() })
	io.WriteString(stdin, "offhook\npress 1\npress 1001#\npress 1234#\npress 5125550123#\n")

	// A generous guard against a hung agent or peer; nothing is timed by it.
	guard := time.AfterFunc(2*time.Minute, func() { agent.Process.Kill() })
	defer guard.Stop()
	var noticeEnd, accepted time.Time
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var e struct {
			Time time.Time
			Msg  string
			To   string
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		case e.Msg == "notice_played" && e.To == "callee":
			noticeEnd = e.Time
		case e.Msg == "callee_accepted":
			accepted = e.Time
		case e.Msg == "connected":
			time.AfterFunc(time.Second, func() { io.WriteString(stdin, "onhook\n") })
		case e.Msg == "call_ended":
			io.WriteString(stdin, "quit\n")
			stdin.Close()
		}
	}
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent: %v\n%s", err, agentErr.String())
	}
	<-peerDone
	if peerErr != nil {
		errs, _ := os.ReadFile(filepath.Join(dir, "sipp_errors.log"))
		t.Fatalf("sipp: %v\n%s\n%s", peerErr, errs, peerOut.String())
	}
	if noticeEnd.IsZero() || accepted.IsZero() {
		t.Fatalf("no notice_played to the callee (%v) or no callee_accepted (%v); stderr:\n%s", noticeEnd, accepted, agentErr.String())
	}
	dropped := capture.stop(t)

	pkts, err := readPcap(pcap)
	if err != nil {
		t.Fatal(err)
	}
	s := awaitStats(pkts, noticeEnd, accepted)
	t.Logf("await_accept %v (notice end %s, accept %s): %d RTP packets from the phone, %d expected at %v, largest gap %v, %d not silence; before it %d packets of sound (the notice); tcpdump: %s",
		s.window.Round(time.Millisecond), noticeEnd.Format("15:04:05.000"), accepted.Format("15:04:05.000"),
		s.packets, s.expected, audio.FrameDuration, s.maxGap.Round(time.Millisecond), s.loud, s.notice, dropped)
	if s.notice == 0 {
		t.Fatalf("the capture holds no packet of the notice from the phone (%d UDP packets in all): nothing to judge the wait by", len(pkts))
	}
	if s.window < wait/2 {
		t.Fatalf("the called party accepted %v after the notice, want a wait of about %v", s.window, wait)
	}
	// Half: a loaded test machine delays the phone's 20 ms pacing (293 of 381 were seen with
	// both cores busy), while a phone that stops its stream sends none at all.
	if s.packets*2 < s.expected {
		t.Errorf("%d RTP packets from the phone while it waited for the accept, want at least half of %d", s.packets, s.expected)
	}
	if s.maxGap > time.Second {
		t.Errorf("the phone's RTP stream paused for %v while it waited for the accept, want no gap over 1s", s.maxGap)
	}
	if s.loud > 0 {
		t.Errorf("%d of the phone's packets while it waited for the accept are not G.711 silence (first: %s)", s.loud, s.firstLoud)
	}
}

// needCommand returns the path of a command, or skips the test if it is not installed.
func needCommand(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s (Debian package %s) is not installed; make deps installs it", name, pkg)
	}
	return p
}

// tcpdumpRun is a running tcpdump and what it says on stderr.
type tcpdumpRun struct {
	cmd    *exec.Cmd
	stderr chan string // its lines after "listening on", closed at its end
}

// startCapture starts tcpdump writing the packets that match filter on the loopback interface
// to file, each as it comes (-U), and returns once it is capturing. A tcpdump that may not
// capture (not root, no CAP_NET_RAW) skips the test.
func startCapture(t *testing.T, tcpdump, file, filter string) *tcpdumpRun {
	t.Helper()
	cmd := exec.Command(tcpdump, "-i", "lo", "-n", "-U", "-w", file, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := &tcpdumpRun{cmd: cmd, stderr: make(chan string, 16)}
	// A guard against a tcpdump that never says it listens; nothing is timed by it.
	guard := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer guard.Stop()
	sc := bufio.NewScanner(stderr)
	var said []string
	for sc.Scan() {
		said = append(said, sc.Text())
		if strings.Contains(sc.Text(), "listening on ") {
			go func() {
				defer close(r.stderr)
				for sc.Scan() {
					r.stderr <- sc.Text()
				}
			}()
			return r
		}
	}
	cmd.Wait()
	msg := strings.Join(said, "\n")
	if strings.Contains(msg, "ermission") || strings.Contains(msg, "not permitted") {
		t.Skipf("tcpdump may not capture here (it needs root or CAP_NET_RAW):\n%s", msg)
	}
	t.Fatalf("tcpdump did not start capturing:\n%s", msg)
	return nil
}

// stop ends the capture (tcpdump writes out what it holds on SIGINT) and returns its report
// of dropped packets.
func (r *tcpdumpRun) stop(t *testing.T) string {
	t.Helper()
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var report []string
	for line := range r.stderr {
		if strings.Contains(line, "dropped") {
			report = append(report, line)
		}
	}
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	return strings.Join(report, ", ")
}

// udpPacket is one captured IPv4 UDP datagram.
type udpPacket struct {
	at       time.Time
	src, dst uint16
	payload  []byte
}

// readPcap reads the IPv4 UDP datagrams of a classic pcap file (either byte order,
// microsecond or nanosecond timestamps) captured on Ethernet (Linux's loopback), Linux
// cooked (v1 or v2) or raw IP links.
func readPcap(file string) ([]udpPacket, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, errors.New("pcap: short global header")
	}
	var order binary.ByteOrder = binary.LittleEndian
	magic := order.Uint32(b)
	if magic != 0xa1b2c3d4 && magic != 0xa1b23c4d {
		order = binary.BigEndian
		magic = order.Uint32(b)
	}
	var frac time.Duration
	switch magic {
	case 0xa1b2c3d4:
		frac = time.Microsecond
	case 0xa1b23c4d:
		frac = time.Nanosecond
	default:
		return nil, fmt.Errorf("pcap: magic %#x", magic)
	}
	var link int
	switch lt := order.Uint32(b[20:]); lt {
	case 1: // Ethernet: the EtherType ends its 14-byte header
		link = 14
	case 113: // Linux cooked v1: 16 bytes, protocol last
		link = 16
	case 276: // Linux cooked v2: 20 bytes, protocol first
		link = 20
	case 101, 228: // raw IP, raw IPv4
		link = 0
	default:
		return nil, fmt.Errorf("pcap: link type %d", lt)
	}
	var out []udpPacket
	for off := 24; off < len(b); {
		if len(b)-off < 16 {
			return nil, errors.New("pcap: short record header")
		}
		sec, sub, n := order.Uint32(b[off:]), order.Uint32(b[off+4:]), int(order.Uint32(b[off+8:]))
		off += 16
		if len(b)-off < n {
			return nil, errors.New("pcap: short record")
		}
		rec := b[off : off+n]
		off += n
		if len(rec) < link+28 || rec[link]>>4 != 4 {
			continue
		}
		ip := rec[link:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		end := min(int(binary.BigEndian.Uint16(ip[2:])), len(ip))
		udp := ip[ihl:end]
		out = append(out, udpPacket{
			at:      time.Unix(int64(sec), int64(time.Duration(sub)*frac)),
			src:     binary.BigEndian.Uint16(udp),
			dst:     binary.BigEndian.Uint16(udp[2:]),
			payload: udp[8:],
		})
	}
	return out, nil
}

// waitStats is what the capture shows of the phone's stream while it waited for the accept.
type waitStats struct {
	window            time.Duration // from the end of the notice to the accept
	packets, expected int           // RTP packets from the phone in the window; one a frame
	maxGap            time.Duration // the largest gap in the window, its ends included
	loud              int           // packets in the window that are not G.711 silence
	firstLoud         string
	notice            int // packets from the phone before the window that are not silence
}

// awaitStats reads the phone's RTP stream to the called party (from the phone's RTP ports to
// SIPp's media port) between from and to.
func awaitStats(pkts []udpPacket, from, to time.Time) waitStats {
	s := waitStats{window: to.Sub(from), expected: int(to.Sub(from) / audio.FrameDuration)}
	last := from
	for _, p := range pkts {
		var r rtp.Packet
		if p.src < captureRTPLow || p.src > captureRTPHigh || p.dst != captureMediaPort || r.Unmarshal(p.payload) != nil {
			continue
		}
		silent := g711Silence(r.PayloadType, r.Payload)
		switch {
		case p.at.Before(from):
			if !silent {
				s.notice++
			}
		case p.at.Before(to):
			s.packets++
			s.maxGap = max(s.maxGap, p.at.Sub(last))
			last = p.at
			if !silent {
				if s.loud == 0 {
					s.firstLoud = fmt.Sprintf("payload type %d, %d bytes %x…", r.PayloadType, len(r.Payload), r.Payload[:min(8, len(r.Payload))])
				}
				s.loud++
			}
		}
	}
	s.maxGap = max(s.maxGap, to.Sub(last))
	return s
}

// g711Silence reports whether payload is a frame of silence in the G.711 law of its payload
// type: zero samples are 0xFF or 0x7F in µ-law (0, PCMU), 0xD5 or 0x55 in A-law (8, PCMA).
func g711Silence(pt uint8, payload []byte) bool {
	var pos, neg byte
	switch pt {
	case 0:
		pos, neg = 0xff, 0x7f
	case 8:
		pos, neg = 0xd5, 0x55
	default:
		return false
	}
	if len(payload) == 0 {
		return false
	}
	for _, c := range payload {
		if c != pos && c != neg {
			return false
		}
	}
	return true
}
