package siptrunk

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/wallphone/wallphone/audio"
)

// seeds adds each seed to f and fails if there are none, so that a seed corpus that went
// missing does not leave the fuzz target testing nothing.
func seeds[T any](f *testing.F, add func(T), s ...T) {
	if len(s) == 0 {
		f.Fatal("no seeds")
	}
	for _, x := range s {
		add(x)
	}
}

func FuzzTelephoneEvent(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b) }, unhex(f, "010a0000"), unhex(f, "018a08c0"), unhex(f, "0b800320ff"), []byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseTelephoneEvent(b)
		if err != nil {
			return
		}
		// Packing what was read gives the same 4 bytes, the unused bit 6 of the flags aside.
		want := append([]byte(nil), b[:4]...)
		want[1] &^= 0x40
		if got := ev.Append(nil); !bytes.Equal(got, want) {
			t.Fatalf("%x read as %+v packs as %x", b, ev, got)
		}
		if k, err := ev.Key(); err == nil && !bytes.ContainsRune([]byte(eventKeys), k) {
			t.Fatalf("key %q", k)
		}
	})
}

func FuzzParseInfoDigit(f *testing.F) {
	type seed struct{ ct, body string }
	seeds(f, func(s seed) { f.Add(s.ct, s.body) },
		seed{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"},
		seed{"application/dtmf", "11"},
		seed{"application/dtmf-relay; x=\"y\"", "signal = *"},
		seed{"text/plain", "1"})
	f.Fuzz(func(t *testing.T, ct, body string) {
		k, err := ParseInfoDigit(ct, []byte(body))
		if err == nil && !bytes.ContainsRune([]byte(eventKeys), k) {
			t.Fatalf("%q %q: key %q is no keypad key", ct, body, k)
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	o, err := offer([]string{"PCMU", "PCMA"}, netip.MustParseAddr("127.0.0.1"), 4000, 1, nil)
	if err != nil {
		f.Fatal(err)
	}
	seeds(f, func(b []byte) { f.Add(b) }, o,
		[]byte(answerHead+"m=audio 4002 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n"),
		[]byte(answerHead+"m=audio 0 RTP/AVP 0\r\n"),
		[]byte(answerHead+"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^31\r\n"),
		[]byte("v=0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// With SRTP offered, a key taken from the answer is always a whole one.
		if a, err := parseAnswer(b, []string{"PCMU"}, &sdes{key: make([]byte, 30), mandatory: true}); err == nil && len(a.srtpKey) != 30 {
			t.Fatalf("SRTP answer accepted with key %x", a.srtpKey)
		}
		a, err := parseAnswer(b, []string{"PCMU", "PCMA"}, nil)
		if err != nil {
			return
		}
		if !a.addr.IsValid() || a.addr.Port() == 0 || (a.codec.name != "PCMU" && a.codec.name != "PCMA") || a.eventPT > 127 || a.srtpKey != nil {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	seeds(f, func(s string) { f.Add([]byte(s)) },
		`{"server": "sip.example.org", "user": "wall-7", "password": "pw", "register": true}`,
		`{"server": "10.0.0.1:5070", "proxy": "10.0.0.2", "transport": "tcp", "user": "w", "rtp_ports": "20000-20010"}`,
		`{"server": "s", "user": "w", "transport": "tls", "tls": {"ca_file": "ca.pem"}}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		// What Parse accepts, New's own check accepts too, unchanged.
		again := c
		if err := again.validate(); err != nil || again.rtpLow != c.rtpLow || again.Listen != c.Listen {
			t.Fatalf("%s: parsed %+v, then %v", b, c, err)
		}
	})
}

// FuzzReceiver feeds arbitrary datagrams to the inbound RTP path: it must never panic, and
// whatever it calls audio fills exactly one frame.
func FuzzReceiver(f *testing.F) {
	seeds(f, func(s string) { f.Add(unhex(f, s)) }, append(pcapKey1,
		"8000000100000000000000050102030405",
		"90000001000000000000000500010001aabbccdd01")...)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := receiver{eventPT: 101, codec: codecs[0]}
		var j jitter
		_, isAudio, seq, err := r.handle(b)
		if err == nil && isAudio {
			j.push(seq, &r.frame)
			var out audio.Frame
			if !j.pop(&out) || out != r.frame {
				t.Fatal("a single packet did not come out of the jitter buffer as it went in")
			}
		}
	})
}
