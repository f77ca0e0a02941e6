package provisioning_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/provisioning"
)

// tamperName changes the technician's name in a certificate and keeps its signature.
func tamperName(t *testing.T, cert []byte) []byte {
	t.Helper()
	var f map[string]json.RawMessage
	if err := json.Unmarshal(cert, &f); err != nil {
		t.Fatal(err)
	}
	var body []byte
	json.Unmarshal(f["body"], &body)
	var b map[string]any
	json.Unmarshal(body, &b)
	b["name"] = "Someone Else"
	body, _ = json.Marshal(b)
	f["body"], _ = json.Marshal(body)
	out, _ := json.Marshal(f)
	return out
}

func frame(t *testing.T, typ byte, seq uint16, payload string) []byte {
	t.Helper()
	b, err := provisioning.AppendFrame(nil, provisioning.Frame{Type: typ, Seq: seq, Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGarbageMidSession: noise, corrupted frames, a frame cut short and an oversized one in
// the middle of a session are thrown away; nothing in them runs and the session goes on.
func TestGarbageMidSession(t *testing.T) {
	r := newRig(t)
	r.login()
	reboot := frame(t, provisioning.TypeReboot, 900, "{}")
	flipped := bytes.Clone(reboot)
	flipped[5] ^= 0x04
	var burst []byte
	burst = append(burst, []byte("\x00\x00ATZ\r\n+++\xff\xfe\x00\x01\x02\x03")...)
	burst = append(burst, flipped...)
	burst = append(burst, reboot[:len(reboot)/2]...) // cut short; the next delimiter ends it
	burst = append(burst, 0)
	burst = append(burst, bytes.Repeat([]byte{0x55}, 3*provisioning.MaxPayload)...) // oversized
	burst = append(burst, 0)
	for i := range 2000 {
		burst = append(burst, byte(i*7919>>3))
	}
	if _, err := r.master.Write(burst); err != nil {
		t.Fatal(err)
	}
	st, err := r.client.Status(context.Background())
	if err != nil || st.DeviceID != "wp-test" {
		t.Fatalf("after the burst: %+v %v", st, err)
	}
	if _, reboots, _, _ := r.phone.counts(); reboots != 0 {
		t.Fatalf("garbage ran a reboot")
	}
	if n := r.audit.count("console_command"); n != 1 {
		t.Fatalf("%d commands audited, want the one status", n)
	}
}

// TestCablePulledMidCommand: the line goes away in the middle of a frame. The console stops
// serving that line with an error, runs nothing of the cut frame, and serves the next line
// from scratch: the technician authenticates again, and what was uploaded is gone.
func TestCablePulledMidCommand(t *testing.T) {
	r := newRig(t)
	r.login()
	if err := r.client.Call(context.Background(), provisioning.TypePut, provisioning.Put{Name: "sip.json", Total: 2, Data: []byte("{}")}, nil); err != nil {
		t.Fatal(err)
	}
	enroll := frame(t, provisioning.TypeEnroll, 901, `{"items":{"sip.json":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}`)
	if _, err := r.master.Write(enroll[:len(enroll)-9]); err != nil {
		t.Fatal(err)
	}
	r.client.Close() // the cable is out: the technician's end closes mid-frame
	select {
	case err := <-r.served:
		if err == nil {
			t.Fatal("Serve returned nil for a line that went away")
		}
		r.stopped = true
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not notice the line going away")
	}
	r.port.Close()
	if got := confFiles(t, r.data); len(got) != 0 {
		t.Fatalf("the cut enroll ran: %v", got)
	}
	r.connect()
	_, err := r.client.Status(context.Background())
	wantCode(t, err, provisioning.CodeNotAuthenticated)
	r.login()
	err = r.client.Call(context.Background(), provisioning.TypeEnroll, provisioning.Enroll{Items: map[string]string{"sip.json": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}, nil)
	wantCode(t, err, provisioning.CodeRefused)
	if _, err := r.client.Enroll(context.Background(), map[string][]byte{"sip.json": []byte("{}")}, nil); err != nil {
		t.Fatalf("enrolment on the new line: %v", err)
	}
}

func TestFrameTooLargeRefused(t *testing.T) {
	_, err := provisioning.AppendFrame(nil, provisioning.Frame{Type: 1, Payload: make([]byte, provisioning.MaxPayload+1)})
	if !errors.Is(err, provisioning.ErrFrameTooLarge) {
		t.Fatalf("encode: %v", err)
	}
	fr := provisioning.NewFrameReader(bytes.NewReader(append(append([]byte{0}, bytes.Repeat([]byte{1}, 10000)...), append([]byte{0}, frame(t, 1, 3, "{}")...)...)))
	if _, err := fr.ReadFrame(); !errors.Is(err, provisioning.ErrFrameTooLarge) {
		t.Fatalf("decode: %v", err)
	}
	f, err := fr.ReadFrame()
	if err != nil || f.Seq != 3 {
		t.Fatalf("frame after the oversized one: %+v %v", f, err)
	}
}

// vectors are the frames in testdata/frames.txt: name, type, seq, payload, wire bytes in hex.
type vector struct {
	name    string
	typ     byte
	seq     uint16
	payload string
	wire    string
}

func readVectors(t testing.TB) []vector {
	b, err := os.ReadFile(filepath.Join("testdata", "frames.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("vector line %q", line)
		}
		var v vector
		v.name, v.payload, v.wire = f[0], f[3], f[4]
		if h, ok := strings.CutPrefix(v.payload, "hex:"); ok {
			// A binary payload (the data answer's) is written in hex.
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatalf("vector line %q: %v", line, err)
			}
			v.payload = string(b)
		}
		typ, err1 := strconv.ParseUint(f[1], 0, 8)
		seq, err2 := strconv.ParseUint(f[2], 0, 16)
		if err1 != nil || err2 != nil {
			t.Fatalf("vector line %q", line)
		}
		v.typ, v.seq = byte(typ), uint16(seq)
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	return vs
}
