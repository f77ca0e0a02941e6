package siptrunk

import (
	"errors"
	"fmt"
	"github.com/wallphone/wallphone/internal/strictjson"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrConfig: sip.json is not a usable configuration; the message says which field is wrong.
var ErrConfig = errors.New("sip.json")

// Config is the phone's SIP account, as installed in <data>/conf/sip.json.
type Config struct {
	// Server is the facility's SIP server, host or host:port: the registrar, the domain of
	// the called numbers' URIs and, unless Proxy says otherwise, where requests go.
	Server string `json:"server"`
	// Domain is the host of the called URIs (sip:+15125550100@Domain); default Server's host.
	Domain string `json:"domain,omitempty"`
	// Proxy is an outbound proxy (host:port) that every request is sent to instead of Server.
	Proxy string `json:"proxy,omitempty"`
	// Transport is udp (the default), tcp or tls.
	Transport string `json:"transport,omitempty"`
	// User is the phone's SIP user (the From and Contact user).
	User string `json:"user"`
	// AuthUser is the digest authentication user; default User.
	AuthUser string `json:"auth_user,omitempty"`
	// Password is the digest password; empty means the server does not challenge.
	Password string `json:"password,omitempty"`
	// Register makes the phone register with Server and keep the registration fresh.
	Register bool `json:"register,omitempty"`
	// RegisterExpires is the registration lifetime asked for, in seconds; default 300.
	RegisterExpires int `json:"register_expires,omitempty"`
	// Listen is the local SIP address (ip:port); default 0.0.0.0:5060 (5061 for tls). Port 0
	// picks a free one.
	Listen string `json:"listen,omitempty"`
	// Address is the IP the far end reaches the phone on (Contact, Via, SDP); default the
	// Listen IP, or the address the route to Server leaves from.
	Address string `json:"address,omitempty"`
	// RTPPorts is the range of local RTP ports, "low-high"; default "10000-20000".
	RTPPorts string `json:"rtp_ports,omitempty"`
	// Codecs lists the G.711 laws offered, in order of preference: PCMU, PCMA (the default
	// is both, µ-law first).
	Codecs []string `json:"codecs,omitempty"`
	// SRTP: "off" (the default) offers plain RTP; "sdes" offers SRTP keys in the SDP (RFC
	// 4568, AES_CM_128_HMAC_SHA1_80) and encrypts the call if the far end answers with its
	// own, else talks plain RTP; "required" offers RTP/SAVP and fails a call without SRTP.
	SRTP string `json:"srtp,omitempty"`
	// TLS configures transport tls.
	TLS *TLSConfig `json:"tls,omitempty"`

	rtpLow, rtpHigh int
}

// TLSConfig is how the phone checks the SIP server's certificate.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs that sign the server's certificate; default the
	// system's roots.
	CAFile string `json:"ca_file,omitempty"`
	// ServerName is the name the certificate must carry; default Server's host.
	ServerName string `json:"server_name,omitempty"`
}

// Parse reads and checks sip.json. Unknown fields are refused, so that a misspelt field is
// not silently ignored.
func Parse(b []byte) (Config, error) {
	var c Config
	if err := strictjson.Decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func bad(field, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, a...))
}

func (c *Config) validate() error {
	if c.Server == "" {
		return bad("server", "missing")
	}
	if _, _, err := splitHostPort(c.Server, 5060); err != nil {
		return bad("server", "%v", err)
	}
	if c.Proxy != "" {
		if _, _, err := splitHostPort(c.Proxy, 5060); err != nil {
			return bad("proxy", "%v", err)
		}
	}
	switch c.Transport {
	case "":
		c.Transport = "udp"
	case "udp", "tcp", "tls":
	default:
		return bad("transport", "%q: want udp, tcp or tls", c.Transport)
	}
	if c.TLS != nil && c.Transport != "tls" {
		return bad("tls", "set, but transport is %s", c.Transport)
	}
	if c.User == "" || strings.ContainsAny(c.User, "@:;<> \t\r\n\"") {
		return bad("user", "%q: want a plain SIP user name", c.User)
	}
	if c.AuthUser == "" {
		c.AuthUser = c.User
	}
	if c.RegisterExpires == 0 {
		c.RegisterExpires = 300
	}
	if c.RegisterExpires < 60 || c.RegisterExpires > 86400 {
		return bad("register_expires", "%d: want 60 to 86400 seconds", c.RegisterExpires)
	}
	if c.Listen == "" {
		c.Listen = "0.0.0.0:5060"
		if c.Transport == "tls" {
			c.Listen = "0.0.0.0:5061"
		}
	}
	if _, err := netip.ParseAddrPort(c.Listen); err != nil {
		return bad("listen", "%q: want ip:port", c.Listen)
	}
	if c.Address != "" {
		if _, err := netip.ParseAddr(c.Address); err != nil {
			return bad("address", "%q: want an IP address", c.Address)
		}
	}
	if c.RTPPorts == "" {
		c.RTPPorts = "10000-20000"
	}
	lo, hi, ok := strings.Cut(c.RTPPorts, "-")
	c.rtpLow, _ = strconv.Atoi(lo)
	c.rtpHigh, _ = strconv.Atoi(hi)
	if !ok || c.rtpLow < 1024 || c.rtpHigh > 65534 || c.rtpLow > c.rtpHigh {
		return bad("rtp_ports", "%q: want low-high within 1024-65534", c.RTPPorts)
	}
	if len(c.Codecs) == 0 {
		c.Codecs = []string{"PCMU", "PCMA"}
	}
	seen := map[string]bool{}
	for _, name := range c.Codecs {
		if _, ok := codecByName(name); !ok || seen[name] {
			return bad("codecs", "%q: want PCMU or PCMA, each once", name)
		}
		seen[name] = true
	}
	switch c.SRTP {
	case "":
		c.SRTP = "off"
	case "off", "sdes", "required":
	default:
		return bad("srtp", "%q: want off, sdes or required", c.SRTP)
	}
	return nil
}

// splitHostPort splits host[:port], with def when there is no port.
func splitHostPort(s string, def int) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return s, def, nil
		}
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("port %q", port)
	}
	if host == "" {
		return "", 0, fmt.Errorf("no host in %q", s)
	}
	return host, p, nil
}
