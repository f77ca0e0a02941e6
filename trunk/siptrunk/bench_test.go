package siptrunk

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/wallphone/wallphone/audio"
)

// BenchmarkRTPLoop measures one frame's round trip through the phone's media path and
// through a bare UDP echo, side by side. Each op: the far end writes one 20 ms RTP packet,
// the phone's side takes it and sends a frame back, the far end reads the packet that comes
// back. ns/op is the round trip (sequential, so it is latency, not throughput); %core/call is
// the CPU time of both ends per op over the 20 ms a frame lasts, so a call at 50 frames a
// second costs that share of one core.
//
//   - wallphone: the leg's RTP reader (parse, G.711 decode, jitter buffer), Receive as the
//     call machine calls it, Send, and the leg's RTP writer (encode, packetise).
//   - baseline: a goroutine that reads each datagram and writes the same bytes back.
//
// The call machine takes a frame once per 20 ms tick, which adds the wait for the next tick
// (0 to 20 ms, 10 on average) in the phone; that wait is the tick's, not the media path's,
// and is not in these figures.
func BenchmarkRTPLoop(b *testing.B) { benchLoop(b, false) }

// BenchmarkCallCPU runs the same loop at a call's pace, one frame every 20 ms as the call
// machine ticks, and reports the CPU time of both ends over the wall time as %core/call.
// The far end's share is in both figures; the difference is the phone's media path.
func BenchmarkCallCPU(b *testing.B) { benchLoop(b, true) }

func benchLoop(b *testing.B, paced bool) {
	pace := func(b *testing.B) <-chan time.Time {
		if !paced {
			return nil
		}
		t := time.NewTicker(audio.FrameDuration)
		b.Cleanup(t.Stop)
		return t.C
	}
	b.Run("wallphone", func(b *testing.B) {
		far := listenLoop(b)
		l := loopLeg(b, far)
		to := l.conn.LocalAddr().(*net.UDPAddr).AddrPort()
		var f audio.Frame
		l.Receive(&f) // the first Receive of a call drops what came before it
		runLoop(b, far, to, pace(b), func() {
			// Polled as often as the timer allows: a spinning loop would hold the core the
			// reader goroutine needs.
			for !l.Receive(&f) {
				time.Sleep(time.Microsecond)
			}
			l.Send(&f)
		})
	})
	b.Run("baseline", func(b *testing.B) {
		far := listenLoop(b)
		echo := listenLoop(b)
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := echo.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				echo.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
		runLoop(b, far, echo.LocalAddr().(*net.UDPAddr).AddrPort(), pace(b), func() {})
	})
}

// loopLeg is an answered leg on loopback whose far end is far, with its RTP goroutines
// running, and no SIP.
func loopLeg(b testing.TB, far *net.UDPConn) *Leg {
	conn, rtcp, err := listenRTP(netip.MustParseAddr("127.0.0.1"), 30000, 39999)
	if err != nil {
		b.Fatal(err)
	}
	l := newLeg(&Trunk{}, conn, rtcp)
	l.remote = far.LocalAddr().(*net.UDPAddr).AddrPort()
	l.recv = receiver{eventPT: 101, codec: codecs[0]}
	l.answered.Store(true)
	done := make(chan struct{}, 2)
	go func() { l.readRTP(); done <- struct{}{} }()
	go func() { l.writeRTP(newSender(codecs[0], 101), l.remote); done <- struct{}{} }()
	b.Cleanup(func() {
		close(l.done)
		conn.Close()
		rtcp.Close()
		<-done
		<-done
	})
	return l
}

func listenLoop(b testing.TB) *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// runLoop is the far end: per op it sends one packet to to, lets phone act, and reads the
// packet that comes back.
func runLoop(b *testing.B, far *net.UDPConn, to netip.AddrPort, pace <-chan time.Time, phone func()) {
	payload := make([]byte, audio.FrameSamples)
	for i := range payload {
		payload[i] = byte(i)
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 1}, Payload: payload}
	buf := make([]byte, 1500)
	out := make([]byte, 0, 1500)
	far.SetReadDeadline(time.Now().Add(time.Minute))
	cpu0, wall0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pkt.SequenceNumber = uint16(i)
		pkt.Timestamp = uint32(i) * 160
		n, _ := pkt.Header.MarshalTo(out[:cap(out)])
		msg := append(out[:n], payload...)
		if _, err := far.WriteToUDPAddrPort(msg, to); err != nil {
			b.Fatal(err)
		}
		if pace != nil {
			<-pace
		}
		phone()
		if _, _, err := far.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if pace != nil {
		b.ReportMetric(100*float64(cpuTime()-cpu0)/float64(time.Since(wall0)), "%core/call")
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
