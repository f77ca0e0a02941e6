package siptrunk

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/wallphone/wallphone/audio/g711"
)

// ErrSDP: the far end's session description cannot carry the call.
var ErrSDP = errors.New("SDP answer")

// codec is one G.711 law on the wire.
type codec struct {
	name string
	pt   uint8 // the static RTP payload type (RFC 3551)
	enc  func(dst []byte, src []int16) int
	dec  func(dst []int16, src []byte) int
}

var codecs = []codec{
	{"PCMU", 0, g711.EncodeUlawFrame, g711.DecodeUlawFrame},
	{"PCMA", 8, g711.EncodeAlawFrame, g711.DecodeAlawFrame},
}

func codecByName(name string) (codec, bool) {
	for _, c := range codecs {
		if c.name == name {
			return c, true
		}
	}
	return codec{}, false
}

func codecByPT(pt uint8) (codec, bool) {
	for _, c := range codecs {
		if c.pt == pt {
			return c, true
		}
	}
	return codec{}, false
}

// offerEventPT is the dynamic payload type the phone offers for telephone-event.
const offerEventPT = 101

// offer is the phone's SDP offer: one audio stream of the configured G.711 laws and
// telephone-event, 20 ms packets.
func offer(names []string, ip netip.Addr, port int, sessID uint64, crypto *sdes) ([]byte, error) {
	ipv := "IP4"
	if ip.Is6() {
		ipv = "IP6"
	}
	formats := make([]string, 0, len(names)+1)
	attrs := []sdp.Attribute{}
	for _, n := range names {
		c, _ := codecByName(n)
		formats = append(formats, strconv.Itoa(int(c.pt)))
		attrs = append(attrs, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d %s/8000", c.pt, c.name)))
	}
	formats = append(formats, strconv.Itoa(offerEventPT))
	attrs = append(attrs,
		sdp.NewAttribute("rtpmap", fmt.Sprintf("%d telephone-event/8000", offerEventPT)),
		sdp.NewAttribute("fmtp", fmt.Sprintf("%d 0-15", offerEventPT)),
		sdp.NewAttribute("ptime", "20"),
		sdp.NewPropertyAttribute("sendrecv"))
	proto := []string{"RTP", "AVP"}
	if crypto != nil {
		attrs = append(attrs, sdp.NewAttribute("crypto", "1 "+sdesSuite+" inline:"+base64.StdEncoding.EncodeToString(crypto.key)))
		if crypto.mandatory {
			proto = []string{"RTP", "SAVP"}
		}
	}
	s := sdp.SessionDescription{
		Origin: sdp.Origin{Username: "wallphone", SessionID: sessID, SessionVersion: sessID,
			NetworkType: "IN", AddressType: ipv, UnicastAddress: ip.String()},
		SessionName: "call",
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: ipv,
			Address: &sdp.Address{Address: ip.String()}},
		TimeDescriptions: []sdp.TimeDescription{{}},
		MediaDescriptions: []*sdp.MediaDescription{{
			MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: port},
				Protos: proto, Formats: formats},
			Attributes: attrs,
		}},
	}
	return s.Marshal()
}

// answer is what the phone takes from the far end's SDP answer.
type answer struct {
	addr    netip.AddrPort
	codec   codec
	eventPT int // -1: the far end takes no telephone events
	// srtpKey is the far end's SDES master key and salt (30 bytes), nil for plain RTP.
	srtpKey []byte
}

// sdesSuite is the one SRTP crypto suite the phone offers (RFC 4568).
const sdesSuite = "AES_CM_128_HMAC_SHA1_80"

// sdes is the phone's side of SRTP keyed in SDP: its own master key and salt, and whether
// plain RTP is refused.
type sdes struct {
	key       []byte // 30 bytes: 16 of key, 14 of salt
	mandatory bool
}

// parseAnswer reads an SDP answer to offer: the first audio stream, its address, the first
// of its formats the phone offered, and telephone-event's payload type.
func parseAnswer(b []byte, offered []string, crypto *sdes) (answer, error) {
	var s sdp.SessionDescription
	if err := s.Unmarshal(b); err != nil {
		return answer{}, fmt.Errorf("%w: %v", ErrSDP, err)
	}
	var m *sdp.MediaDescription
	for _, md := range s.MediaDescriptions {
		if md.MediaName.Media == "audio" && md.MediaName.Port.Value != 0 {
			m = md
			break
		}
	}
	if m == nil {
		return answer{}, fmt.Errorf("%w: no audio stream accepted", ErrSDP)
	}
	p := strings.Join(m.MediaName.Protos, "/")
	if p != "RTP/AVP" && (p != "RTP/SAVP" || crypto == nil) {
		return answer{}, fmt.Errorf("%w: transport %s, want RTP/AVP", ErrSDP, p)
	}
	ci := m.ConnectionInformation
	if ci == nil {
		ci = s.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return answer{}, fmt.Errorf("%w: no connection address", ErrSDP)
	}
	ip, err := netip.ParseAddr(ci.Address.Address)
	if err != nil {
		return answer{}, fmt.Errorf("%w: connection address %q", ErrSDP, ci.Address.Address)
	}
	port := m.MediaName.Port.Value
	if port < 1 || port > 65535 {
		return answer{}, fmt.Errorf("%w: port %d", ErrSDP, port)
	}
	a := answer{addr: netip.AddrPortFrom(ip.Unmap(), uint16(port)), eventPT: -1}
	found := false
	rtpmaps := map[int]string{}
	for _, at := range m.Attributes {
		if at.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(at.Value, " ")
		n, err := strconv.Atoi(pt)
		if ok && err == nil {
			rtpmaps[n] = strings.ToLower(enc)
		}
	}
	for _, f := range m.MediaName.Formats {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 127 {
			continue
		}
		if strings.HasPrefix(rtpmaps[n], "telephone-event/8000") {
			if a.eventPT < 0 {
				a.eventPT = n
			}
			continue
		}
		if found {
			continue
		}
		c, ok := codecByPT(uint8(n))
		if enc, has := rtpmaps[n]; has && ok && !strings.HasPrefix(enc, strings.ToLower(c.name)+"/8000") {
			ok = false // a static number remapped to something else
		}
		if ok && contains(offered, c.name) {
			a.codec, found = c, true
		}
	}
	if crypto != nil {
		for _, at := range m.Attributes {
			if at.Key == "crypto" {
				if k, ok := parseCrypto(at.Value); ok {
					a.srtpKey = k
					break
				}
			}
		}
		if a.srtpKey == nil && (crypto.mandatory || p == "RTP/SAVP") {
			return answer{}, fmt.Errorf("%w: no %s key in the answer, and SRTP is required", ErrSDP, sdesSuite)
		}
	}
	if !found {
		return answer{}, fmt.Errorf("%w: no G.711 law the phone offered (%v) in %v", ErrSDP, offered, m.MediaName.Formats)
	}
	return a, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseCrypto reads an a=crypto value ("1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^31|1:1")
// and returns its 30-byte master key and salt, if it is the suite the phone offered.
func parseCrypto(v string) ([]byte, bool) {
	f := strings.Fields(v)
	if len(f) < 3 || f[1] != sdesSuite || !strings.HasPrefix(f[2], "inline:") {
		return nil, false
	}
	k, _, _ := strings.Cut(strings.TrimPrefix(f[2], "inline:"), "|")
	key, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(k)
	}
	if err != nil || len(key) != 30 {
		return nil, false
	}
	return key, true
}
