// Package siptrunk is the phone's trunk to the facility's SIP server: a SIP user agent
// (github.com/emiago/sipgo) that registers, places each call as an INVITE with an SDP offer
// of G.711 and RFC 4733 telephone events, and carries the call's audio and keys over RTP.
//
// It keeps promise 2 on the wire: the called party's accept key arrives here (an RFC 4733
// event, counted once on its first packet, or a SIP INFO), and no audio of the called party
// is handed to the phone before the call machine asks for it, which it does only once the
// call is connected; early media is never played to the caller.
//
// Network I/O runs on goroutines owned by the Trunk (the SIP transport, registration) and by
// each Leg (signalling, RTP in, RTP out); the Leg methods the call machine calls each tick
// only take a short mutex or hand a frame to a buffered channel, and never block.
package siptrunk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/wallphone/wallphone/trunk"
)

// Options are what the Trunk takes besides its configuration.
type Options struct {
	// Logger receives the trunk's records; nil discards. Dialed numbers are never logged:
	// a call may be privileged.
	Logger *slog.Logger
}

// Trunk places calls through the facility's SIP server. Close it to stop.
type Trunk struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	dialog *sipgo.DialogUA
	ip     netip.Addr // where the far end reaches the phone
	sipLn  string     // the phone's SIP address, ip:port
	dest   string     // where requests go: the proxy or the server, host:port
	route  bool       // requests carry a Route header to dest
	laddr  sip.Addr   // the listening UDP socket, which requests in a dialog leave from too
	port   int        // the server's port
	bound  string     // the local SIP socket, ip:port, as bound (for the status)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the serving goroutine, and every leg's
	// stopReg ends the registration, which unregisters while the transport still runs;
	// regDone is closed when it has.
	stopReg context.CancelFunc
	regDone chan struct{}

	// regCallID and regCSeq are the registration's Call-ID and last CSeq; only the
	// registration goroutine uses them.
	regCallID string
	regCSeq   uint32

	regMu    sync.Mutex // guards regState
	regState string     // how the registration stands, for the status

	mu   sync.Mutex      // guards legs
	legs map[string]*Leg // by Call-ID, for INFO and BYE from the far end
}

var _ trunk.Trunk = (*Trunk)(nil)

// New starts the SIP user agent: it listens, and registers if the configuration says so.
// cfg must come from Parse.
func New(cfg Config, o Options) (*Trunk, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Trunk{cfg: cfg, log: log, legs: map[string]*Leg{}, regCallID: uuid.NewString()}
	host, port, _ := splitHostPort(cfg.Server, 5060)
	if cfg.Transport == "tls" && port == 5060 {
		port = 5061
	}
	t.dest = net.JoinHostPort(host, strconv.Itoa(port))
	if cfg.Proxy != "" {
		ph, pp, _ := splitHostPort(cfg.Proxy, 5060)
		t.dest = net.JoinHostPort(ph, strconv.Itoa(pp))
	}
	t.port = port
	if cfg.Domain == "" {
		t.cfg.Domain = host
	}
	t.route = cfg.Proxy != "" || t.cfg.Domain != host
	listen := netip.MustParseAddrPort(cfg.Listen)
	ip, err := localIP(cfg, listen.Addr(), t.dest)
	if err != nil {
		return nil, err
	}
	t.ip = ip

	lib := slog.New(libHandler{log.Handler()})
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent(cfg.User), sipgo.WithUserAgentHostname(ip.String()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(lib)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(lib))}
	var tlsConf *tls.Config
	if cfg.Transport == "tls" {
		if tlsConf, err = clientTLS(cfg, host); err != nil {
			return nil, err
		}
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(tlsConf))
	}
	if t.ua, err = sipgo.NewUA(uaOpts...); err != nil {
		return nil, fmt.Errorf("sip user agent: %w", err)
	}
	if t.srv, err = sipgo.NewServer(t.ua, sipgo.WithServerLogger(lib)); err != nil {
		t.ua.Close()
		return nil, fmt.Errorf("sip server: %w", err)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	serve, laddr, err := t.listen(listen, tlsConf)
	if err != nil {
		t.cancel()
		t.ua.Close()
		return nil, err
	}
	t.bound = laddr.String()
	t.sipLn = net.JoinHostPort(ip.String(), strconv.Itoa(int(laddr.Port())))
	if cfg.Transport == "udp" {
		t.laddr = sip.Addr{IP: net.IP(laddr.Addr().AsSlice()), Port: int(laddr.Port()), Hostname: laddr.Addr().String()}
	}
	clientOpts := []sipgo.ClientOption{sipgo.WithClientHostname(ip.String()), sipgo.WithClientLogger(lib)}
	clientOpts = append(clientOpts, sipgo.WithClientPort(int(laddr.Port())))
	if cfg.Transport == "udp" {
		// Requests leave from the listening socket, so that answers and the far end's requests
		// in the dialog come back to it.
		clientOpts = append(clientOpts, sipgo.WithClientConnectionAddr(laddr.String()))
	}
	if t.client, err = sipgo.NewClient(t.ua, clientOpts...); err != nil {
		t.cancel()
		t.ua.Close()
		return nil, fmt.Errorf("sip client: %w", err)
	}
	t.dialog = &sipgo.DialogUA{Client: t.client, ContactHDR: sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: cfg.User, Host: ip.String(), Port: int(laddr.Port()),
			UriParams: transportParam(cfg.Transport)},
	}}
	t.srv.OnBye(t.onBye)
	t.srv.OnInfo(t.onInfo)
	t.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		// A wall phone makes calls; it never takes one.
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusForbidden, "Wall phone takes no calls", nil))
	})
	t.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	t.srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	t.wg.Go(func() {
		if err := serve(); err != nil && t.ctx.Err() == nil {
			log.Error("sip transport stopped", "event", "sip_error", "err", err)
		}
	})
	if err := t.ready(laddr); err != nil {
		t.cancel()
		t.wg.Wait()
		t.ua.Close()
		return nil, err
	}
	t.regState = "not registering"
	if cfg.Register {
		t.regState = "registering"
	}
	regCtx, stopReg := context.WithCancel(t.ctx)
	t.stopReg, t.regDone = stopReg, make(chan struct{})
	go func() {
		defer close(t.regDone)
		if cfg.Register {
			t.registerLoop(regCtx)
		}
	}()
	log.Info("sip trunk ready", "event", "sip_ready", "listen", t.sipLn, "transport", cfg.Transport,
		"server", t.dest, "register", cfg.Register)
	return t, nil
}

func transportParam(tr string) sip.HeaderParams {
	if tr == "udp" {
		return nil
	}
	p := sip.NewParams()
	p.Add("transport", tr)
	return p
}

// ready waits until the transport serves the listening UDP socket, so that the first request
// leaves from it. Over TCP and TLS requests go out on connections of their own.
func (t *Trunk) ready(laddr netip.AddrPort) error {
	if t.cfg.Transport != "udp" {
		return nil
	}
	tl := t.ua.TransportLayer()
	for range 500 {
		if _, err := tl.GetConnection("udp", laddr.String()); err == nil {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("sip: the udp transport did not start on %s", laddr)
}

// listen binds the SIP socket and returns the function that serves it.
func (t *Trunk) listen(addr netip.AddrPort, tlsConf *tls.Config) (func() error, netip.AddrPort, error) {
	switch t.cfg.Transport {
	case "udp":
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, addr, fmt.Errorf("sip listen: %w", err)
		}
		context.AfterFunc(t.ctx, func() { c.Close() })
		return func() error { return t.srv.ServeUDP(c) }, c.LocalAddr().(*net.UDPAddr).AddrPort(), nil
	default:
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err != nil {
			return nil, addr, fmt.Errorf("sip listen: %w", err)
		}
		context.AfterFunc(t.ctx, func() { l.Close() })
		la := l.Addr().(*net.TCPAddr).AddrPort()
		if t.cfg.Transport == "tls" {
			return func() error { return t.srv.ServeTLS(tls.NewListener(l, tlsConf)) }, la, nil
		}
		return func() error { return t.srv.ServeTCP(l) }, la, nil
	}
}

func clientTLS(cfg Config, host string) (*tls.Config, error) {
	c := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil && cfg.TLS.ServerName != "" {
		c.ServerName = cfg.TLS.ServerName
	}
	if cfg.TLS != nil && cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("sip tls: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sip tls: %s holds no PEM certificate", cfg.TLS.CAFile)
		}
	}
	return c, nil
}

// localIP is the address the far end reaches the phone on: the configured one, the listening
// one, or the one the route to the server leaves from.
func localIP(cfg Config, listen netip.Addr, dest string) (netip.Addr, error) {
	if cfg.Address != "" {
		return netip.MustParseAddr(cfg.Address), nil
	}
	if !listen.IsUnspecified() {
		return listen, nil
	}
	c, err := net.Dial("udp", dest) // no packet is sent: this only picks the route
	if err != nil {
		return netip.Addr{}, fmt.Errorf("sip: no route to %s (set address in sip.json): %w", dest, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// Close ends every call, unregisters and stops the user agent.
func (t *Trunk) Close() error {
	t.mu.Lock()
	legs := make([]*Leg, 0, len(t.legs))
	for _, l := range t.legs {
		legs = append(legs, l)
	}
	t.mu.Unlock()
	for _, l := range legs {
		l.Hangup()
	}
	// The CANCELs and BYEs go out before the transport closes; a far end that does not
	// answer them is not waited for long.
	timeout := time.After(5 * time.Second)
	for _, l := range legs {
		select {
		case <-l.done:
		case <-timeout:
		}
	}
	t.stopReg()
	<-t.regDone
	t.cancel()
	t.wg.Wait()
	return t.ua.Close()
}

func (t *Trunk) registerLoop(ctx context.Context) {
	expires := time.Duration(t.cfg.RegisterExpires) * time.Second
	retry := 5 * time.Second
	for {
		err := t.register(ctx, expires)
		wait := expires / 2
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.log.Warn("sip registration failed", "event", "sip_register_failed", "err", err)
			t.setRegState("not registered: " + err.Error())
			wait, retry = retry, min(2*retry, expires/2)
		} else {
			retry = 5 * time.Second
			t.setRegState("registered")
			t.log.Info("sip registered", "event", "sip_registered", "expires", expires)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			continue
		}
		break
	}
	unreg, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := t.register(unreg, 0); err != nil {
		t.log.Warn("sip unregistration failed", "event", "sip_register_failed", "err", err)
	}
}

func (t *Trunk) setRegState(s string) {
	t.regMu.Lock()
	t.regState = s
	t.regMu.Unlock()
}

// Status says, for the console, whether the trunk takes calls, where it listens and how its
// registration stands: "ready, listening on 127.0.0.1:5070 (udp), registered".
func (t *Trunk) Status() string {
	if t.ctx.Err() != nil {
		return "closed"
	}
	t.regMu.Lock()
	defer t.regMu.Unlock()
	return fmt.Sprintf("ready, listening on %s (%s), %s", t.bound, t.cfg.Transport, t.regState)
}

// register sends one REGISTER (expires 0 unregisters), answering a digest challenge.
func (t *Trunk) register(ctx context.Context, expires time.Duration) error {
	req := sip.NewRequest(sip.REGISTER, t.uri(""))
	t.address(req, sip.Uri{Scheme: "sip", User: t.cfg.User, Host: t.cfg.Domain})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: t.cfg.User, Host: t.cfg.Domain}})
	req.AppendHeader(&t.dialog.ContactHDR)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	// One Call-ID for every REGISTER of this phone, CSeq counting up (RFC 3261 10.2).
	cid := sip.CallIDHeader(t.regCallID)
	req.AppendHeader(&cid)
	t.regCSeq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: t.regCSeq, MethodName: sip.REGISTER})
	defer func() { t.regCSeq = req.CSeq().SeqNo }()
	res, err := t.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired {
		req.RemoveHeader("Via")
		res, err = t.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: t.cfg.AuthUser, Password: t.cfg.Password})
		if err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
	if !res.IsSuccess() {
		return fmt.Errorf("register: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// address sets where req goes and who it is from.
func (t *Trunk) address(req *sip.Request, from sip.Uri) {
	req.SetDestination(t.dest)
	req.SetTransport(t.cfg.Transport)
	f := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	f.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(f)
	if t.route {
		r := "<sip:" + t.dest + ";lr"
		if t.cfg.Transport != "udp" {
			r += ";transport=" + t.cfg.Transport
		}
		req.AppendHeader(sip.NewHeader("Route", r+">"))
	}
}

// uri is a SIP URI at the configured domain: the server itself, port included, unless a
// domain of its own was configured (requests then reach the server by a Route header, which
// CANCEL and ACK copy).
func (t *Trunk) uri(user string) sip.Uri {
	u := sip.Uri{Scheme: "sip", User: user, Host: t.cfg.Domain}
	if !t.route {
		u.Port = t.port
	}
	return u
}

func (t *Trunk) legFor(req *sip.Request) *Leg {
	id := req.CallID()
	if id == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.legs[id.Value()]
}

func (t *Trunk) onBye(req *sip.Request, tx sip.ServerTransaction) {
	l := t.legFor(req)
	if l == nil || l.dlg() == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	if err := l.dlg().ReadBye(req, tx); err != nil {
		t.log.Warn("sip bye", "event", "sip_error", "err", err)
	}
}

func (t *Trunk) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	l := t.legFor(req)
	if l == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	k, err := ParseInfoDigit(ct, req.Body())
	if err != nil {
		// An INFO for something else (a media update, a package the phone does not know).
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusUnsupportedMediaType, "Unsupported Media Type", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	l.infoKey(k)
}

// Dial implements trunk.Trunk. The number is the Request-URI's user part at the configured
// domain.
func (t *Trunk) Dial(e164 string) (trunk.Leg, error) {
	if t.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if e164 == "" {
		return nil, errors.New("sip: dial: no number")
	}
	rtpConn, rtcpConn, err := listenRTP(t.ip, t.cfg.rtpLow, t.cfg.rtpHigh)
	if err != nil {
		return nil, fmt.Errorf("sip: dial: %w", err)
	}
	l := newLeg(t, rtpConn, rtcpConn)
	t.wg.Go(func() { l.run(e164) })
	return l, nil
}

// ErrClosed: Dial after Close.
var ErrClosed = errors.New("sip trunk closed")

// libHandler is the log of the SIP stack (sipgo): its warnings and errors only, and without
// their attributes, which may quote whole SIP messages and with them the dialed number of a
// privileged call.
type libHandler struct{ h slog.Handler }

func (l libHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= slog.LevelWarn && l.h.Enabled(ctx, lvl)
}

func (l libHandler) Handle(ctx context.Context, r slog.Record) error {
	rec := slog.NewRecord(r.Time, r.Level, "sip stack: "+r.Message, 0)
	rec.AddAttrs(slog.String("event", "sip_stack"))
	return l.h.Handle(ctx, rec)
}

func (l libHandler) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l libHandler) WithGroup(string) slog.Handler      { return l }
