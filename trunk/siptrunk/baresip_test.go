package siptrunk

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/trunk"
)

// baresip is one headless baresip as the called party, worked over its ctrl_tcp socket.
type baresip struct {
	addr   string
	dir    string
	ctrl   net.Conn
	events chan map[string]any
	seen   []map[string]any // events taken from the channel by saw
	out    bytes.Buffer
}

// writePCMWAV writes d of a sine at freq as a 16-bit 8 kHz mono WAV (baresip's aufile source).
func writePCMWAV(t *testing.T, path string, freq float64, d time.Duration) {
	t.Helper()
	n := int(d.Seconds() * audio.SampleRate)
	var b bytes.Buffer
	wavHeader(&b, 1, 16, n)
	for i := range n {
		binary.Write(&b, binary.LittleEndian, int16(8000*math.Sin(2*math.Pi*freq*float64(i)/audio.SampleRate)))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readWAV returns the samples of a 16-bit mono WAV (baresip's sndfile dumps).
func readWAV(t *testing.T, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("data"))
	if i < 0 || len(b) < i+8 {
		t.Fatalf("%s: no data chunk", path)
	}
	data := b[i+8:]
	x := make([]int16, len(data)/2)
	binary.Read(bytes.NewReader(data[:2*len(x)]), binary.LittleEndian, x)
	return x
}

// startBaresip starts baresip with tone as its voice; acctParams are added to its account
// (e.g. ";mediaenc=srtp").
func startBaresip(t *testing.T, tone, acctParams string) *baresip {
	t.Helper()
	bin := needTool(t, "baresip", "baresip")
	dir := t.TempDir()
	port, ctrl := freePort(t), freePort(t)
	b := &baresip{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, events: make(chan map[string]any, 64)}
	config := fmt.Sprintf(`poll_method epoll
sip_listen 127.0.0.1:%d
net_interface 127.0.0.1
audio_source aufile,%s
audio_player aubridge,sink
audio_alert aubridge,sink
module_path /usr/lib/baresip/modules
module g711.so
module srtp.so
module aufile.so
module aubridge.so
module sndfile.so
module ctrl_tcp.so
module_app account.so
module_app menu.so
ctrl_tcp_listen 127.0.0.1:%d
snd_path %s
statmode_default off
`, port, tone, ctrl, dir)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	acct := "<sip:+15125550100@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA" + acctParams + "\n"
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(acct), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", dir)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = &b.out, &b.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if b.ctrl != nil {
			b.ctrl.Close()
		}
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("baresip:\n%s\nevents: %v", tail(b.out.String(), 3000), b.seen)
		}
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ctrl)))
		if err == nil {
			b.ctrl = c
			break
		}
		select {
		case <-done:
			t.Fatalf("baresip exited:\n%s", b.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if i > 250 {
			t.Fatalf("baresip's control socket did not open: %v\n%s", err, b.out.String())
		}
	}
	go b.readEvents()
	return b
}

// readEvents reads the netstrings of ctrl_tcp ("LEN:JSON,").
func (b *baresip) readEvents() {
	r := bufio.NewReader(b.ctrl)
	defer close(b.events)
	for {
		n, err := r.ReadString(':')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSpace(n[:len(n)-1]))
		if err != nil || size > 1<<20 {
			return
		}
		msg := make([]byte, size+1)
		if _, err := io.ReadFull(r, msg); err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(msg[:size], &m) == nil {
			b.events <- m
		}
	}
}

func (b *baresip) command(t *testing.T, cmd, params string) {
	t.Helper()
	j, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": cmd})
	if _, err := fmt.Fprintf(b.ctrl, "%d:%s,", len(j), j); err != nil {
		t.Fatal(err)
	}
}

// saw reports whether an event of type typ has come, with its param; it does not wait.
func (b *baresip) saw(typ string) (string, bool) {
	for {
		select {
		case m, ok := <-b.events:
			if ok {
				b.seen = append(b.seen, m)
				continue
			}
		default:
		}
		break
	}
	for _, m := range b.seen {
		if m["type"] == typ {
			p, _ := m["param"].(string)
			return p, true
		}
	}
	return "", false
}

// waitEvent waits for a ctrl_tcp event of type typ and returns its param.
func (b *baresip) waitEvent(t *testing.T, typ string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-b.events:
			if !ok {
				t.Fatalf("baresip's control socket closed before %s", typ)
			}
			if m["type"] == typ {
				p, _ := m["param"].(string)
				return p
			}
		case <-timeout:
			t.Fatalf("no %s from baresip", typ)
		}
	}
}

// TestBaresip: baresip answers by itself and talks (a 1400 Hz tone); the phone talks back
// (600 Hz); each side presses a key. Each end must hear the other's tone and see its key.
func TestBaresip(t *testing.T) {
	for _, tc := range []struct{ name, srtp, mediaenc string }{
		{"rtp", "off", ""},
		// SRTP keyed in SDP: the phone offers a key, baresip answers with its own.
		{"srtp", "sdes", ";mediaenc=srtp"},
		{"srtp required", "required", ";mediaenc=srtp-mand"},
	} {
		t.Run(tc.name, func(t *testing.T) { testBaresip(t, tc.srtp, tc.mediaenc) })
	}
}

func testBaresip(t *testing.T, srtpMode, mediaenc string) {
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writePCMWAV(t, tone, 1400, 30*time.Second)
	b := startBaresip(t, tone, mediaenc)
	tr, log := testTrunkLog(t, fmt.Sprintf(`{"server": %q, "user": "wall-0042", "srtp": %q}`, b.addr, srtpMode))
	leg, err := tr.Dial("+15125550100")
	if err != nil {
		t.Fatal(err)
	}
	phoneTone := audio.Tone(0.2, 600)
	c := drive(t, leg, phoneTone, 10*time.Second, func(c *callLog) bool { return c.has(trunk.Answered) })
	if srtpMode != "off" && !log.saw(`"srtp":true`) {
		t.Error("the call is not SRTP")
	}
	if srtpMode == "off" && log.saw(`"srtp":true`) {
		t.Error("SRTP on a call configured without it")
	}
	b.waitEvent(t, "CALL_ESTABLISHED")
	// A second of talk, then baresip presses 7 while the phone presses 4.
	c2 := drive(t, leg, phoneTone, 10*time.Second, func(c *callLog) bool { return len(c.heard) >= 50*audio.FrameSamples })
	b.command(t, "sndcode", "7")
	leg.SendDigit('4')
	c3 := drive(t, leg, phoneTone, 10*time.Second, func(c *callLog) bool {
		_, ok := b.saw("CALL_DTMF_START")
		return c.digits != "" && ok
	})
	if p, _ := b.saw("CALL_DTMF_START"); p != "4" {
		t.Errorf("baresip saw key %q, want 4; its events: %v", p, b.seen)
	}
	drive(t, leg, phoneTone, 10*time.Second, func(c *callLog) bool { return len(c.heard) >= 25*audio.FrameSamples })
	leg.Hangup()
	b.waitEvent(t, "CALL_CLOSED")

	if c3.digits != "7" {
		t.Errorf("phone saw keys %q, want 7", c3.digits)
	}
	if got := c.kinds(); !strings.Contains(got, "answered") {
		t.Errorf("events %q", got)
	}
	if h := sound(c2.heard); len(h) < 25*audio.FrameSamples {
		t.Errorf("the phone heard %d samples of sound from baresip", len(h))
	} else if share := toneShare(h[len(h)-25*audio.FrameSamples:], 1400); share < 0.8 {
		t.Errorf("1400 Hz is %.2f of what the phone heard from baresip", share)
	}
	dumps, _ := filepath.Glob(filepath.Join(b.dir, "dump-*-dec.wav"))
	if len(dumps) != 1 {
		files, _ := os.ReadDir(b.dir)
		t.Fatalf("baresip's dump of what it heard: %v (dir: %v)", dumps, files)
	}
	heard := readWAV(t, dumps[0])
	if len(heard) < 50*audio.FrameSamples {
		t.Fatalf("baresip heard %d samples", len(heard))
	}
	// The middle of the call, clear of the key's event (sent in place of audio).
	if heard = sound(heard); len(heard) < 50*audio.FrameSamples {
		t.Fatalf("baresip heard %d samples of sound", len(heard))
	}
	mid := heard[len(heard)/4 : len(heard)/4+25*audio.FrameSamples]
	if share := toneShare(mid, 600); share < 0.8 {
		t.Errorf("600 Hz is %.2f of what baresip heard from the phone", share)
	}
}
