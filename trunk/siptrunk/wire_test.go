package siptrunk

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audio/g711"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The RTP packets of SIPp's dtmf_2833_1.pcap (key 1, payload type 101): the first with the
// marker bit, durations growing by 320, the end packet three times.
var pcapKey1 = []string{
	"80e51f30000033e00e05384e 010a0000",
	"80651f31000033e00e05384e 010a0140",
	"80651f32000033e00e05384e 010a0280",
	"80651f37000033e00e05384e 018a08c0",
	"80651f37000033e00e05384e 018a08c0",
	"80651f37000033e00e05384e 018a08c0",
}

func TestTelephoneEventVectors(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want TelephoneEvent
		key  rune
	}{
		{"010a0000", TelephoneEvent{Event: 1, Volume: 10}, '1'},
		{"018a08c0", TelephoneEvent{Event: 1, End: true, Volume: 10, Duration: 2240}, '1'},
		{"0a3f00a0", TelephoneEvent{Event: 10, Volume: 63, Duration: 160}, '*'},
		{"0b800320", TelephoneEvent{Event: 11, End: true, Duration: 800}, '#'},
		{"0f000000", TelephoneEvent{Event: 15}, 'D'},
	} {
		b := unhex(t, tc.hex)
		got, err := ParseTelephoneEvent(b)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.hex, got, err, tc.want)
		}
		if k, err := got.Key(); k != tc.key || err != nil {
			t.Errorf("%s: key %q, %v; want %q", tc.hex, k, err, tc.key)
		}
		if back := hex.EncodeToString(tc.want.Append(nil)); back != tc.hex {
			t.Errorf("%+v packs as %s, want %s", tc.want, back, tc.hex)
		}
	}
	if _, err := ParseTelephoneEvent([]byte{1, 2, 3}); !errors.Is(err, ErrShortEvent) {
		t.Errorf("3 bytes: %v, want ErrShortEvent", err)
	}
	if _, err := (TelephoneEvent{Event: 16}).Key(); !errors.Is(err, ErrNotDigit) {
		t.Errorf("event 16 (flash): %v, want ErrNotDigit", err)
	}
}

func TestParseInfoDigit(t *testing.T) {
	for _, tc := range []struct {
		ct, body string
		want     rune
		err      error
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', nil},
		{"application/dtmf-relay; charset=utf-8", "Duration=250\nSignal= #\n", '#', nil},
		{"Application/DTMF-Relay", "signal=*", '*', nil},
		{"application/dtmf-relay", "Signal=11\r\n", '#', nil},
		{"application/dtmf-relay", "Signal=d", 'D', nil},
		{"application/dtmf", "7", '7', nil},
		{"application/dtmf", "10\r\n", '*', nil},
		{"application/dtmf-relay", "Duration=160", 0, ErrInfoBody},
		{"application/dtmf-relay", "Signal=Z", 0, ErrNotDigit},
		{"application/dtmf-relay", "Signal=16", 0, ErrNotDigit},
		{"application/dtmf", "", 0, ErrNotDigit},
		{"text/plain", "5", 0, ErrInfoBody},
		{"", "5", 0, ErrInfoBody},
	} {
		got, err := ParseInfoDigit(tc.ct, []byte(tc.body))
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%q %q: %q, %v; want %q, %v", tc.ct, tc.body, got, err, tc.want, tc.err)
		}
	}
}

// TestReceiverKeyOnce: a key counts on the first packet of its event (a new timestamp), never
// again for the event's later packets or its repeated end packets, and again for a new press.
func TestReceiverKeyOnce(t *testing.T) {
	r := receiver{eventPT: 101, codec: codecs[0]}
	var keys string
	feed := func(pkts []string) {
		for _, p := range pkts {
			k, isAudio, _, err := r.handle(unhex(t, p))
			if err != nil || isAudio {
				t.Fatalf("%s: audio %v, %v", p, isAudio, err)
			}
			if k != 0 {
				keys += string(k)
			}
		}
	}
	feed(pcapKey1)
	if keys != "1" {
		t.Fatalf("keys %q after one press, want \"1\"", keys)
	}
	// The same key pressed again: a new event, with a new timestamp.
	var again []string
	for _, p := range pcapKey1 {
		again = append(again, p[:8]+"000035e0"+p[16:])
	}
	feed(again)
	// An event that is no key (16, flash) is not a key, and a short payload is an error.
	feed([]string{"80651f40000037e00e05384e 100a0000"})
	if keys != "11" {
		t.Fatalf("keys %q after two presses and a flash, want \"11\"", keys)
	}
	if _, _, _, err := r.handle(unhex(t, "80651f41000039e00e05384e 010a")); !errors.Is(err, ErrShortEvent) {
		t.Errorf("short event: %v", err)
	}
}

func TestReceiverAudio(t *testing.T) {
	for _, c := range codecs {
		r := receiver{eventPT: -1, codec: c}
		var want audio.Frame
		for i := range want {
			want[i] = int16(i*50 - 4000)
		}
		payload := make([]byte, audio.FrameSamples)
		c.enc(payload, want[:])
		c.dec(want[:], payload) // what survives the law
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: c.pt, SequenceNumber: 77, SSRC: 5}, Payload: payload}
		b, _ := pkt.Marshal()
		k, isAudio, seq, err := r.handle(b)
		if err != nil || !isAudio || k != 0 || seq != 77 || r.frame != want {
			t.Errorf("%s: key %q audio %v seq %d err %v, frame matches %v", c.name, k, isAudio, seq, err, r.frame == want)
		}
		// Another payload type (comfort noise, 13) is neither audio nor a key.
		pkt.PayloadType = 13
		b, _ = pkt.Marshal()
		if k, isAudio, _, err := r.handle(b); k != 0 || isAudio || err != nil {
			t.Errorf("%s: CN packet gave key %q audio %v err %v", c.name, k, isAudio, err)
		}
	}
}

// TestSenderStream: consecutive sequence numbers, timestamps 160 apart, one SSRC, the marker
// on the first packet and after a pause; a key as an RFC 4733 event in place of audio.
func TestSenderStream(t *testing.T) {
	s := newSender(codecs[0], 101)
	now := time.Unix(1000, 0)
	var pkts []rtp.Packet
	var tone audio.Frame
	for i := range tone {
		tone[i] = 1000
	}
	step := func(it outItem) {
		b, err := s.next(&it, now)
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			var p rtp.Packet
			if err := p.Unmarshal(append([]byte(nil), b...)); err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, p)
		}
		if it.key == 0 {
			now = now.Add(audio.FrameDuration)
		}
	}
	step(outItem{frame: tone})
	step(outItem{frame: tone})
	step(outItem{key: '#'})
	for range eventPackets + eventEnds + eventGap + 1 {
		step(outItem{frame: tone})
	}
	now = now.Add(time.Second) // the phone sent nothing for a second
	step(outItem{frame: tone})

	n := len(pkts)
	if n != 2+eventPackets+eventEnds+eventGap+1+1 {
		t.Fatalf("%d packets", n)
	}
	first := pkts[0].Header
	for i, p := range pkts {
		h := p.Header
		if h.SSRC != first.SSRC || h.SequenceNumber != first.SequenceNumber+uint16(i) || h.Version != 2 {
			t.Errorf("packet %d: %+v", i, h)
		}
	}
	if !first.Marker || pkts[1].Marker || first.PayloadType != 0 || len(pkts[0].Payload) != 160 {
		t.Errorf("first packets: %+v / %+v", first, pkts[1].Header)
	}
	if pkts[0].Payload[0] != g711.EncodeUlaw(1000) {
		t.Errorf("payload %x", pkts[0].Payload[0])
	}
	evTS := first.Timestamp + 2*160
	for i := range eventPackets + eventEnds {
		p := pkts[2+i]
		ev, err := ParseTelephoneEvent(p.Payload)
		if err != nil || p.PayloadType != 101 || p.Timestamp != evTS || p.Marker != (i == 0) {
			t.Fatalf("event packet %d: %+v %+v %v", i, p.Header, ev, err)
		}
		wantDur := uint16(min(i+1, eventPackets) * 160)
		if ev.Event != 11 || ev.End != (i >= eventPackets) || ev.Duration != wantDur || ev.Volume != eventVolume {
			t.Errorf("event packet %d: %+v, want duration %d", i, ev, wantDur)
		}
	}
	after := pkts[2+eventPackets+eventEnds]
	if after.PayloadType != 0 || after.Timestamp != evTS+uint32(eventPackets+eventEnds)*160 {
		t.Errorf("audio after the event: %+v", after.Header)
	}
	last, prev := pkts[n-1].Header, pkts[n-2].Header
	if !last.Marker || last.Timestamp-prev.Timestamp != 160+8000 {
		t.Errorf("after a 1 s pause: marker %v, timestamp step %d, want 8160", last.Marker, last.Timestamp-prev.Timestamp)
	}
	// With no telephone-event negotiated, keys are dropped, never sent as something else.
	s = newSender(codecs[1], -1)
	it := outItem{key: '5'}
	if b, _ := s.next(&it, now); b != nil {
		t.Error("key sent without telephone-event")
	}
	it = outItem{frame: tone}
	if b, _ := s.next(&it, now); b == nil || b[1]&0x7f != 8 {
		t.Errorf("PCMA packet %x", b)
	}
}

func frameOf(v int16) *audio.Frame {
	var f audio.Frame
	f[0] = v
	return &f
}

// TestJitter: reordering within a tick is repaired, a lost packet is one tick of silence,
// late and duplicate packets are dropped, a far jump starts afresh, and a backlog is cut.
func TestJitter(t *testing.T) {
	type op struct {
		push []uint16 // packets arriving before the tick (sample 0 = seq)
		want int      // what the tick plays: -1 nothing, -2 concealed silence, else a seq
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"in order", []op{{[]uint16{10}, 10}, {[]uint16{11}, 11}, {[]uint16{12}, 12}, {nil, -1}}},
		{"reordered", []op{{[]uint16{10}, 10}, {[]uint16{12}, -1}, {[]uint16{11}, 11}, {nil, 12}}},
		{"lost", []op{{[]uint16{10}, 10}, {[]uint16{12}, -1}, {[]uint16{13}, 12}, {nil, 13}}},
		{"late", []op{{[]uint16{10}, 10}, {[]uint16{11}, 11}, {[]uint16{9, 12}, 12}}},
		{"duplicate", []op{{[]uint16{10, 10, 11}, 10}, {nil, 11}, {nil, -1}}},
		{"wraps", []op{{[]uint16{65535}, 65535}, {[]uint16{0}, 0}, {[]uint16{1}, 1}}},
		{"jump", []op{{[]uint16{10}, 10}, {[]uint16{5000}, 5000}, {[]uint16{5001}, 5001}}},
		{"backlog", []op{{[]uint16{10, 11, 12, 13, 14, 15}, 12}, {nil, 13}}},
		{"pause resyncs", []op{{[]uint16{10}, 10}, {nil, -1}, {nil, -1}, {[]uint16{14}, 14}, {[]uint16{15}, 15}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var j jitter
			for i, o := range tc.ops {
				for _, s := range o.push {
					j.push(s, frameOf(int16(s)))
				}
				f := frameOf(-9)
				ok := j.pop(f)
				got := -1
				if ok {
					got = int(uint16(f[0]))
				}
				if got != o.want {
					t.Fatalf("tick %d: played %d, want %d", i, got, o.want)
				}
			}
		})
	}
}

func TestOfferAnswer(t *testing.T) {
	o, err := offer([]string{"PCMA", "PCMU"}, netip.MustParseAddr("192.0.2.7"), 10002, 42, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"c=IN IP4 192.0.2.7", "m=audio 10002 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000", "a=ptime:20", "a=sendrecv"} {
		if !strings.Contains(string(o), want+"\r\n") {
			t.Errorf("offer lacks %q:\n%s", want, o)
		}
	}
	// The offer read as an answer gives back what it offered.
	a, err := parseAnswer(o, []string{"PCMA", "PCMU"}, nil)
	if err != nil || a.codec.name != "PCMA" || a.eventPT != 101 || a.addr.String() != "192.0.2.7:10002" {
		t.Errorf("offer as answer: %+v %v", a, err)
	}
}

const answerHead = "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, sdp string
		codec     string
		eventPT   int
		addr      string
		err       bool
	}{
		{"pcmu and events", answerHead + "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", "PCMU", 101, "198.51.100.1:4000", false},
		{"pcma, event 96", answerHead + "m=audio 4002 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n", "PCMA", 96, "198.51.100.1:4002", false},
		{"no events", answerHead + "m=audio 4000 RTP/AVP 0\r\n", "PCMU", -1, "198.51.100.1:4000", false},
		{"media address", answerHead + "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 203.0.113.9\r\n", "PCMU", -1, "203.0.113.9:4000", false},
		{"first of several", answerHead + "m=audio 4000 RTP/AVP 18 8 0\r\n", "PCMA", -1, "198.51.100.1:4000", false},
		{"video first", answerHead + "m=video 5000 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 0\r\n", "PCMU", -1, "198.51.100.1:4000", false},
		{"static remapped", answerHead + "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 opus/48000\r\n", "", 0, "", true},
		{"no common law", answerHead + "m=audio 4000 RTP/AVP 18 3\r\n", "", 0, "", true},
		{"rejected stream", answerHead + "m=audio 0 RTP/AVP 0\r\n", "", 0, "", true},
		{"srtp", answerHead + "m=audio 4000 RTP/SAVP 0\r\n", "", 0, "", true},
		{"no address", "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", "", 0, "", true},
		{"hostname", "v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nc=IN IP4 media.example\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", "", 0, "", true},
		{"not sdp", "hello", "", 0, "", true},
	} {
		a, err := parseAnswer([]byte(tc.sdp), []string{"PCMU", "PCMA"}, nil)
		if tc.err {
			if !errors.Is(err, ErrSDP) {
				t.Errorf("%s: %+v, %v; want ErrSDP", tc.name, a, err)
			}
			continue
		}
		if err != nil || a.codec.name != tc.codec || a.eventPT != tc.eventPT || a.addr.String() != tc.addr {
			t.Errorf("%s: %s %d %s %v; want %s %d %s", tc.name, a.codec.name, a.eventPT, a.addr, err, tc.codec, tc.eventPT, tc.addr)
		}
	}
	// Only the laws the phone offered count.
	if _, err := parseAnswer([]byte(answerHead+"m=audio 4000 RTP/AVP 8\r\n"), []string{"PCMU"}, nil); !errors.Is(err, ErrSDP) {
		t.Errorf("PCMA answer to a PCMU offer: %v", err)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := Parse([]byte(`{"server": "sip.example.org", "user": "wall-7", "password": "pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != "udp" || c.AuthUser != "wall-7" || c.Listen != "0.0.0.0:5060" || c.RTPPorts != "10000-20000" ||
		strings.Join(c.Codecs, ",") != "PCMU,PCMA" || c.RegisterExpires != 300 || c.SRTP != "off" {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Parse([]byte(`{"server": "sip.example.org:5071", "transport": "tls", "user": "w", "tls": {"server_name": "sip"}, "codecs": ["PCMA"]}`))
	if err != nil || c.Listen != "0.0.0.0:5061" || c.Codecs[0] != "PCMA" {
		t.Errorf("tls: %+v %v", c, err)
	}
	for _, tc := range []struct{ json, field string }{
		{`{"user": "w"}`, "server"},
		{`{"server": "a:b:c", "user": "w"}`, "server"},
		{`{"server": "s:70000", "user": "w"}`, "server"},
		{`{"server": "s", "user": "w", "proxy": ":5060"}`, "proxy"},
		{`{"server": "s", "user": "w", "transport": "sctp"}`, "transport"},
		{`{"server": "s", "user": "w", "tls": {}}`, "tls"},
		{`{"server": "s"}`, "user"},
		{`{"server": "s", "user": "a@b"}`, "user"},
		{`{"server": "s", "user": "w", "register_expires": 10}`, "register_expires"},
		{`{"server": "s", "user": "w", "listen": "any"}`, "listen"},
		{`{"server": "s", "user": "w", "address": "host.example"}`, "address"},
		{`{"server": "s", "user": "w", "rtp_ports": "9000-8000"}`, "rtp_ports"},
		{`{"server": "s", "user": "w", "rtp_ports": "80-90"}`, "rtp_ports"},
		{`{"server": "s", "user": "w", "codecs": ["G729"]}`, "codecs"},
		{`{"server": "s", "user": "w", "codecs": ["PCMU", "PCMU"]}`, "codecs"},
		{`{"server": "s", "user": "w", "srtp": "dtls"}`, "srtp"},
		{`{"server": "s", "user": "w", "pasword": "x"}`, "unknown field"},
		{`{"server": "s", "user": "w"} {}`, "after"},
		{`[]`, "cannot unmarshal"},
	} {
		_, err := Parse([]byte(tc.json))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v; want ErrConfig naming %s", tc.json, err, tc.field)
		}
	}
}

func TestSDES(t *testing.T) {
	key := make([]byte, 30)
	for i := range key {
		key[i] = byte(i)
	}
	k64 := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
	o, err := offer([]string{"PCMU"}, netip.MustParseAddr("192.0.2.7"), 10002, 42, &sdes{key: key})
	if err != nil || !strings.Contains(string(o), "m=audio 10002 RTP/AVP 0 101\r\n") ||
		!strings.Contains(string(o), "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+k64+"\r\n") {
		t.Fatalf("best-effort SRTP offer:\n%s", o)
	}
	o, _ = offer([]string{"PCMU"}, netip.MustParseAddr("192.0.2.7"), 10002, 42, &sdes{key: key, mandatory: true})
	if !strings.Contains(string(o), "m=audio 10002 RTP/SAVP 0 101\r\n") {
		t.Fatalf("mandatory SRTP offer:\n%s", o)
	}
	for _, tc := range []struct {
		name, media string
		crypto      *sdes
		key         bool
		err         bool
	}{
		{"answered", "m=audio 4000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + k64 + "|2^31|1:1\r\n", &sdes{key: key}, true, false},
		{"savp", "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + k64 + "\r\n", &sdes{key: key, mandatory: true}, true, false},
		{"other suite skipped", "m=audio 4000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + k64 + "\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + k64 + "\r\n", &sdes{key: key}, true, false},
		{"plain answer to best effort", "m=audio 4000 RTP/AVP 0\r\n", &sdes{key: key}, false, false},
		{"plain answer to mandatory", "m=audio 4000 RTP/AVP 0\r\n", &sdes{key: key, mandatory: true}, false, true},
		{"savp without key", "m=audio 4000 RTP/SAVP 0\r\n", &sdes{key: key}, false, true},
		{"short key", "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAEC\r\n", &sdes{key: key}, false, true},
		{"savp not offered", "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + k64 + "\r\n", nil, false, true},
		{"key not offered is ignored", "m=audio 4000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + k64 + "\r\n", nil, false, false},
	} {
		a, err := parseAnswer([]byte(answerHead+tc.media), []string{"PCMU"}, tc.crypto)
		if (err != nil) != tc.err || (a.srtpKey != nil) != tc.key {
			t.Errorf("%s: key %x, %v", tc.name, a.srtpKey, err)
		}
		if tc.key && string(a.srtpKey) != string(key) {
			t.Errorf("%s: key %x", tc.name, a.srtpKey)
		}
	}
}

// TestSRTPRoundTrip: what the sender encrypts the receiver with the same key reads; a packet
// changed on the way (a forged key press) is refused.
func TestSRTPRoundTrip(t *testing.T) {
	key := make([]byte, 30)
	key[0] = 7
	s := newSender(codecs[0], 101)
	r := receiver{eventPT: 101, codec: codecs[0]}
	var err error
	if s.srtp, err = srtpContext(key); err != nil {
		t.Fatal(err)
	}
	if r.srtp, err = srtpContext(key); err != nil {
		t.Fatal(err)
	}
	var f audio.Frame
	for i := range f {
		f[i] = int16(i * 30)
	}
	now := time.Unix(0, 0)
	it := outItem{frame: f}
	b, err := s.next(&it, now)
	if err != nil || len(b) != 12+160+10 {
		t.Fatalf("SRTP packet of %d bytes, %v", len(b), err)
	}
	if bytes.Contains(b, g711Frame(f)) {
		t.Fatal("the payload went out in the clear")
	}
	_, isAudio, _, err := r.handle(append([]byte(nil), b...))
	if err != nil || !isAudio {
		t.Fatalf("audio %v, %v", isAudio, err)
	}
	key1 := outItem{key: '1'}
	s.next(&key1, now)
	it = outItem{frame: f}
	b, _ = s.next(&it, now.Add(audio.FrameDuration))
	forged := append([]byte(nil), b...)
	forged[14] ^= 1
	if k, _, _, err := r.handle(forged); err == nil || k != 0 {
		t.Fatalf("a changed packet was read: key %q, %v", k, err)
	}
	if k, _, _, err := r.handle(b); err != nil || k != '1' {
		t.Fatalf("key %q, %v", k, err)
	}
}

func g711Frame(f audio.Frame) []byte {
	b := make([]byte, audio.FrameSamples)
	g711.EncodeUlawFrame(b, f[:])
	return b
}

// TestNothingFromBeforeTheAccept: audio that arrived while the call machine was not taking any
// (the notice, the wait for the accept key) is thrown away, not played to the caller once
// the call connects; what comes after is played.
func TestNothingFromBeforeTheAccept(t *testing.T) {
	far := listenLoop(t)
	l := loopLeg(t, far)
	to := l.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	send := func(seq uint16, v int16) {
		var f audio.Frame
		for i := range f {
			f[i] = v
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 9},
			Payload: g711Frame(f)}
		b, _ := p.Marshal()
		if _, err := far.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
	}
	received := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			l.mu.Lock()
			got := l.rxPackets
			l.mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d packets arrived, want %d", got, n)
			}
			runtime.Gosched()
		}
	}
	for seq := range uint16(4) {
		send(seq, 3000) // the called party speaks before accepting
	}
	received(4)
	var f audio.Frame
	if l.Receive(&f) {
		t.Fatalf("the first frame after connecting is from before it: %d", f[0])
	}
	send(4, -3000)
	received(5)
	if !l.Receive(&f) || f[0] > -2000 {
		t.Fatalf("the frame after connecting: %d", f[0])
	}
}
