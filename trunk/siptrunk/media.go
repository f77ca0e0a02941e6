package siptrunk

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/wallphone/wallphone/audio"
)

// Numbers of the outbound telephone events: each key is sent as an event of eventPackets
// packets (100 ms), its end packet three times (RFC 4733 section 2.5.1.4), then eventGap
// frames of audio before the next key.
const (
	eventPackets = 5
	eventEnds    = 3
	eventGap     = 3
	eventVolume  = 10
	// resyncAfter is the pause in outbound frames after which the stream's timestamp jumps by
	// the time that passed and the marker bit is set (a talkspurt starts).
	resyncAfter = 3 * audio.FrameDuration
	// frameTS is one frame in RTP timestamp units (8 kHz).
	frameTS uint32 = uint32(audio.FrameSamples)
)

// outItem is one thing for the sender: a frame of audio or a key.
type outItem struct {
	frame audio.Frame
	key   rune // 0: a frame
}

// sender builds the outbound RTP stream: one packet per frame handed to it, in order, with
// consecutive sequence numbers, timestamps that follow the clock and one SSRC.
type sender struct {
	codec   codec
	eventPT int
	seq     uint16
	ts      uint32
	ssrc    uint32
	last    time.Time
	started bool

	keys      []rune
	ev        TelephoneEvent
	evTS      uint32
	evSent    int // packets of the current event sent, ends included; 0: no event
	evPause   int // frames of audio still due before the next key
	pkt       rtp.Packet
	buf, body []byte
	// srtp encrypts each packet when the call is SRTP; nil for plain RTP.
	srtp *srtp.Context
	enc  []byte
}

func newSender(c codec, eventPT int) *sender {
	return &sender{codec: c, eventPT: eventPT, seq: uint16(rand.Uint32()), ts: rand.Uint32(),
		ssrc: rand.Uint32(), buf: make([]byte, 0, 12+audio.FrameSamples), body: make([]byte, audio.FrameSamples)}
}

// next returns the packet for one item (nil if the item yields none) at time now. The slice
// is reused by the next call.
func (s *sender) next(it *outItem, now time.Time) ([]byte, error) {
	if it.key != 0 {
		if s.eventPT >= 0 && len(s.keys) < 32 {
			s.keys = append(s.keys, it.key)
		}
		return nil, nil
	}
	marker := false
	switch {
	case !s.started:
		s.started, marker = true, true
	case now.Sub(s.last) >= resyncAfter:
		gap := uint32(now.Sub(s.last)/audio.FrameDuration) * frameTS
		s.ts += gap - frameTS
		marker = true
	}
	s.last = now
	defer func() { s.ts += frameTS }()
	if s.evSent == 0 && s.evPause == 0 && len(s.keys) > 0 {
		code, _ := eventCode(s.keys[0])
		s.keys = s.keys[1:]
		s.ev = TelephoneEvent{Event: code, Volume: eventVolume}
		s.evTS, s.evSent = s.ts, 0
		s.evSent = 0
		return s.eventPacket(true)
	}
	if s.evSent > 0 {
		return s.eventPacket(false)
	}
	if s.evPause > 0 {
		s.evPause--
	}
	n := s.codec.enc(s.body, it.frame[:])
	return s.packet(s.codec.pt, marker, s.ts, s.body[:n])
}

func (s *sender) eventPacket(first bool) ([]byte, error) {
	s.evSent++
	if s.evSent <= eventPackets {
		s.ev.Duration = uint16(s.evSent * audio.FrameSamples)
	} else {
		s.ev.End = true
	}
	b := s.ev.Append(s.body[:0])
	if s.evSent >= eventPackets+eventEnds {
		s.evSent, s.evPause = 0, eventGap
	}
	return s.packet(uint8(s.eventPT), first, s.evTS, b)
}

func (s *sender) packet(pt uint8, marker bool, ts uint32, payload []byte) ([]byte, error) {
	s.pkt.Header = rtp.Header{Version: 2, Marker: marker, PayloadType: pt, SequenceNumber: s.seq,
		Timestamp: ts, SSRC: s.ssrc}
	s.pkt.Payload = payload
	s.seq++
	n := s.pkt.MarshalSize()
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	if _, err := s.pkt.MarshalTo(s.buf); err != nil {
		return nil, err
	}
	if s.srtp != nil {
		var err error
		s.enc, err = s.srtp.EncryptRTP(s.enc[:0], s.buf, &s.pkt.Header)
		return s.enc, err
	}
	return s.buf, nil
}

// receiver reads the inbound RTP stream: audio into the jitter buffer, telephone events as
// keys, each key once on the first packet of its event.
type receiver struct {
	eventPT   int
	codec     codec
	haveEvent bool
	eventTS   uint32
	frame     audio.Frame
	pkt       rtp.Packet
	// srtp authenticates and decrypts each packet when the call is SRTP; nil for plain RTP.
	srtp  *srtp.Context
	plain []byte
}

// handle takes one packet. It returns a key (0 if none) and whether frame holds audio.
func (r *receiver) handle(b []byte) (key rune, isAudio bool, seq uint16, err error) {
	if r.srtp != nil {
		// Only authenticated packets are read: a forged key press must not accept a call.
		if r.plain, err = r.srtp.DecryptRTP(r.plain[:0], b, nil); err != nil {
			return 0, false, 0, err
		}
		b = r.plain
	}
	if err := r.pkt.Unmarshal(b); err != nil {
		return 0, false, 0, err
	}
	h := &r.pkt.Header
	switch {
	case r.eventPT >= 0 && int(h.PayloadType) == r.eventPT:
		ev, err := ParseTelephoneEvent(r.pkt.Payload)
		if err != nil {
			return 0, false, 0, err
		}
		// An event is its timestamp: retransmitted end packets and the event's later packets
		// carry the same one, so a key counts once, on the first packet seen.
		if r.haveEvent && h.Timestamp == r.eventTS {
			return 0, false, 0, nil
		}
		r.haveEvent, r.eventTS = true, h.Timestamp
		k, err := ev.Key()
		if err != nil {
			return 0, false, 0, nil // not a key: nothing for the phone
		}
		return k, false, 0, nil
	case h.PayloadType == r.codec.pt:
		if len(r.pkt.Payload) != audio.FrameSamples {
			// Other packet times are decoded as far as they go; the rest of the frame is silence.
			r.frame.Silence()
		}
		r.codec.dec(r.frame[:], r.pkt.Payload)
		return 0, true, h.SequenceNumber, nil
	}
	return 0, false, 0, nil
}

// listenRTP binds an even UDP port in [low, high] on ip for RTP and the odd one above it
// for RTCP, trying ports from a random start. The far end may send RTCP even though the phone
// does not use it; an unbound RTCP port would answer with ICMP errors, which some peers take
// for the end of the call.
func listenRTP(ip netip.Addr, low, high int) (rtpConn, rtcpConn *net.UDPConn, err error) {
	low += low & 1
	n := (high-low)/2 + 1
	if high-low < 1 {
		return nil, nil, errors.New("no RTP port pair in the range")
	}
	if low+2*(n-1)+1 > high {
		n--
	}
	start := rand.IntN(n)
	for i := range min(n, 64) {
		port := low + 2*((start+i)%n)
		rtpConn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
		if err != nil {
			continue
		}
		rtcpConn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port+1))))
		if err != nil {
			rtpConn.Close()
			continue
		}
		return rtpConn, rtcpConn, nil
	}
	return nil, nil, errors.Join(errors.New("no free RTP port"), err)
}

// srtpContext is the SRTP context for one direction of a call, from a 30-byte SDES master
// key and salt.
func srtpContext(keySalt []byte) (*srtp.Context, error) {
	return srtp.CreateContext(keySalt[:16], keySalt[16:30], srtp.ProtectionProfileAes128CmHmacSha1_80,
		srtp.SRTPReplayProtection(256))
}
