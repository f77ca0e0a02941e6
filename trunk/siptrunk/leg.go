package siptrunk

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/trunk"
)

// staleAfter: when the call machine has not taken a frame for this long, what the jitter
// buffer holds is from before (the notice, the wait for the accept) and is thrown away, so
// that nothing the called party said before accepting reaches the caller.
const staleAfter = 5 * audio.FrameDuration

// Leg is one call through the SIP server. Its trunk.Leg methods never block.
type Leg struct {
	t      *Trunk
	conn   *net.UDPConn
	rtcp   *net.UDPConn // bound so that the far end's RTCP finds a socket; read and dropped
	callID string

	answered atomic.Bool
	hangup   chan struct{} // closed by Hangup
	done     chan struct{} // closed when the call is over
	once     sync.Once
	out      chan outItem // frames and keys for the sender goroutine
	// item is where Send builds what it queues: a frame is too big to be queued from a
	// temporary without a heap allocation each tick. Only the call machine's goroutine
	// calls Send and SendDigit.
	item outItem

	mu     sync.Mutex // guards everything below
	events []trunk.Event
	jb     jitter
	lastRx time.Time
	dialog *sipgo.DialogClientSession
	recv   receiver
	remote netip.AddrPort
	// Stats for tests and the log.
	rxPackets, txPackets int
}

var _ trunk.Leg = (*Leg)(nil)

func newLeg(t *Trunk, c, rtcp *net.UDPConn) *Leg {
	return &Leg{t: t, conn: c, rtcp: rtcp, callID: uuid.NewString(), hangup: make(chan struct{}),
		done: make(chan struct{}),
		out:  make(chan outItem, 8)}
}

func (l *Leg) push(ev trunk.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *Leg) dlg() *sipgo.DialogClientSession {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dialog
}

func (l *Leg) infoKey(k rune) {
	if l.answered.Load() {
		l.push(trunk.Event{Kind: trunk.Digit, Digit: k})
	}
}

// Poll implements trunk.Leg.
func (l *Leg) Poll() (trunk.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		return trunk.Event{}, false
	}
	ev := l.events[0]
	l.events = l.events[1:]
	return ev, true
}

// Send implements trunk.Leg. A frame the sender has no room for is dropped: the network is
// behind, and waiting would stall the phone.
func (l *Leg) Send(f *audio.Frame) {
	if !l.answered.Load() {
		return
	}
	l.item.frame, l.item.key = *f, 0
	select {
	case l.out <- l.item:
	default:
	}
}

// SendDigit implements trunk.Leg: the key goes out as an RFC 4733 event in place of the
// next frames of audio.
func (l *Leg) SendDigit(d rune) {
	if _, ok := eventCode(d); !ok || !l.answered.Load() {
		return
	}
	l.item.key = d
	select {
	case l.out <- l.item:
	default:
	}
}

// Receive implements trunk.Leg.
func (l *Leg) Receive(f *audio.Frame) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastRx) > staleAfter {
		l.jb.reset()
		l.jb.started = false
	}
	l.lastRx = now
	return l.jb.pop(f)
}

// Hangup implements trunk.Leg: a CANCEL before the answer, a BYE after it.
func (l *Leg) Hangup() { l.once.Do(func() { close(l.hangup) }) }

func (l *Leg) hungUp() bool {
	select {
	case <-l.hangup:
		return true
	default:
		return false
	}
}

// run is the call's signalling, from INVITE to the end; it owns the RTP goroutines.
func (l *Leg) run(e164 string) {
	t := l.t
	log := t.log.With("sip_call_id", l.callID)
	t.mu.Lock()
	t.legs[l.callID] = l
	t.mu.Unlock()
	var media sync.WaitGroup
	defer func() {
		l.answered.Store(false)
		close(l.done)
		l.conn.Close()
		l.rtcp.Close()
		media.Wait()
		t.mu.Lock()
		delete(t.legs, l.callID)
		t.mu.Unlock()
	}()

	// ctx ends the INVITE transaction when the phone hangs up first (sipgo sends CANCEL).
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	go func() {
		select {
		case <-l.hangup:
			cancel()
		case <-ctx.Done():
		}
	}()

	var crypto *sdes
	if t.cfg.SRTP != "off" {
		crypto = &sdes{key: make([]byte, 30), mandatory: t.cfg.SRTP == "required"}
		if _, err := crand.Read(crypto.key); err != nil {
			l.fail(log, fmt.Sprintf("SRTP key: %v", err))
			return
		}
	}
	body, err := offer(t.cfg.Codecs, t.ip, l.conn.LocalAddr().(*net.UDPAddr).Port, rand.Uint64()>>2, crypto)
	if err != nil {
		l.fail(log, fmt.Sprintf("SDP offer: %v", err))
		return
	}
	req := sip.NewRequest(sip.INVITE, t.uri(e164))
	t.address(req, sip.Uri{Scheme: "sip", User: t.cfg.User, Host: t.cfg.Domain})
	cid := sip.CallIDHeader(l.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS"))
	req.SetBody(body)
	dlg, err := t.dialog.WriteInvite(ctx, req)
	if err != nil {
		l.fail(log, fmt.Sprintf("INVITE: %v", err))
		return
	}
	l.mu.Lock()
	l.dialog = dlg
	l.mu.Unlock()
	log.Info("sip invite sent", "event", "sip_invite")
	rang := false
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{
		Username: t.cfg.AuthUser, Password: t.cfg.Password,
		OnResponse: func(res *sip.Response) error {
			if (res.StatusCode == sip.StatusRinging || res.StatusCode == sip.StatusSessionInProgress) && !rang {
				// 183 early media is not played: the caller hears the phone's own ringback,
				// and nothing of the far end before the call is connected.
				rang = true
				l.push(trunk.Event{Kind: trunk.Ringing})
			}
			return nil
		},
	})
	if err != nil {
		l.refused(log, err)
		return
	}
	ans, aerr := parseAnswer(dlg.InviteResponse.Body(), t.cfg.Codecs, crypto)
	snd := newSender(ans.codec, ans.eventPT)
	recv := receiver{eventPT: ans.eventPT, codec: ans.codec}
	if aerr == nil && ans.srtpKey != nil {
		if snd.srtp, aerr = srtpContext(crypto.key); aerr == nil {
			recv.srtp, aerr = srtpContext(ans.srtpKey)
		}
	}
	if err := dlg.Ack(ctx); err != nil {
		log.Warn("sip ack", "event", "sip_error", "err", err)
	}
	if aerr != nil {
		l.fail(log, aerr.Error())
		l.bye(log, dlg)
		return
	}
	l.mu.Lock()
	l.remote = ans.addr
	l.recv = recv
	l.mu.Unlock()
	media.Go(func() { l.readRTP() })
	media.Go(func() { drain(l.rtcp) })
	media.Go(func() { l.writeRTP(snd, ans.addr) })
	// Logged before the call hears of it, so that the log never lags what the phone does
	// (TestBaresip/srtp_required read the log before this line on a slow emulated core).
	log.Info("sip call answered", "event", "sip_answered", "codec", ans.codec.name, "telephone_event", ans.eventPT,
		"srtp", ans.srtpKey != nil)
	l.answered.Store(true)
	l.push(trunk.Event{Kind: trunk.Answered})

	select {
	case <-dlg.Context().Done():
		if !l.hungUp() {
			log.Info("sip far end hung up", "event", "sip_bye_received")
			l.push(trunk.Event{Kind: trunk.HungUp})
		}
	case <-l.hangup:
		l.bye(log, dlg)
	case <-t.ctx.Done():
		l.bye(log, dlg)
	}
}

func (l *Leg) bye(log interface{ Warn(string, ...any) }, dlg *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The BYE goes to the far end's Contact and, over UDP, leaves from the listening socket
	// as the INVITE did (sipgo would open a socket of its own for it).
	to := sip.Uri{Scheme: "sip", Host: l.t.cfg.Domain}
	if c := dlg.InviteResponse.Contact(); c != nil {
		to = *c.Address.Clone()
	}
	bye := sip.NewRequest(sip.BYE, to)
	bye.Laddr = l.t.laddr
	if err := dlg.WriteBye(ctx, bye); err != nil {
		log.Warn("sip bye", "event", "sip_error", "err", err)
	}
}

// drain reads and drops datagrams until c is closed.
func drain(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			return
		}
	}
}

func (l *Leg) fail(log interface{ Warn(string, ...any) }, reason string) {
	log.Warn("sip call failed", "event", "sip_failed", "reason", reason)
	l.push(trunk.Event{Kind: trunk.Failed, Reason: reason})
}

// refused turns the INVITE's failure into the event the caller's prompt follows from.
func (l *Leg) refused(log interface {
	Warn(string, ...any)
	Info(string, ...any)
}, err error) {
	if l.hungUp() {
		return // the phone cancelled; the call machine has moved on
	}
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) {
		l.fail(log, err.Error())
		return
	}
	kind := statusEvent(de.Res.StatusCode)
	log.Info("sip call refused", "event", "sip_refused", "status", de.Res.StatusCode, "kind", kind.String())
	ev := trunk.Event{Kind: kind}
	if kind == trunk.Failed {
		ev.Reason = fmt.Sprintf("%d %s", de.Res.StatusCode, de.Res.Reason)
	}
	l.push(ev)
}

// statusEvent maps a final failure status of the INVITE to what it means for the caller.
// 487 arrives only when the phone did not cancel (it waits for nothing after its own CANCEL):
// a server that gave up ringing.
func statusEvent(code int) trunk.EventKind {
	switch code {
	case 486, 600:
		return trunk.Busy
	case 408, 480, 487:
		return trunk.NoAnswer
	case 603:
		return trunk.Rejected
	}
	return trunk.Failed
}

// readRTP reads the far end's packets until the socket closes.
func (l *Leg) readRTP() {
	buf := make([]byte, 1500)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		l.mu.Lock()
		if from.Addr().Unmap() != l.remote.Addr().Unmap() {
			l.mu.Unlock()
			continue // not the far end's media server
		}
		l.rxPackets++
		key, isAudio, seq, err := l.recv.handle(buf[:n])
		switch {
		case err != nil:
		case isAudio:
			l.jb.push(seq, &l.recv.frame)
		case key != 0:
			l.events = append(l.events, trunk.Event{Kind: trunk.Digit, Digit: key})
		}
		l.mu.Unlock()
	}
}

// writeRTP sends what Send and SendDigit queue until the call ends.
func (l *Leg) writeRTP(s *sender, to netip.AddrPort) {
	var it outItem // one for the call: taken by address, it would escape if declared per item
	for {
		select {
		case <-l.done:
			return
		case it = <-l.out:
			if !l.answered.Load() {
				return
			}
			b, err := s.next(&it, time.Now())
			if err != nil || b == nil {
				continue
			}
			if _, err := l.conn.WriteToUDPAddrPort(b, to); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			l.mu.Lock()
			l.txPackets++
			l.mu.Unlock()
		}
	}
}
