// Package testports hands tests the ports of real peers they start as processes (SIPp,
// baresip, servers the tests kill and start again), which bind them only after the test has
// chosen them. The ports come from above the kernel's ephemeral range, where no socket the
// kernel numbers itself (a trunk's listener, a client's connection) can take one in between,
// and from a random place in it, so that test binaries running at once rarely meet.
//
// It is for tests only: nothing in the phone's or the back office's binaries imports it.
package testports

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Picker hands out ports, never the same one twice.
type Picker struct {
	mu       sync.Mutex // guards next
	lo, n    int        // the range: lo up to 65535
	next     int        // the offset in the range of the next port to try
	rangeErr error
}

// New returns a picker starting at a place in the range drawn from rng (nil: a random one).
func New(rng *rand.Rand) *Picker {
	lo := 61000
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if top, err := strconv.Atoi(f[1]); err == nil && top+1 > lo {
				lo = top + 1
			}
		}
	}
	p := &Picker{lo: lo, n: 65536 - lo}
	if p.n < 64 {
		p.rangeErr = fmt.Errorf("testports: no room above the ephemeral ports (from %d) for test peers", lo)
		return p
	}
	if rng != nil {
		p.next = rng.IntN(p.n)
	} else {
		p.next = rand.IntN(p.n)
	}
	return p
}

// Take returns the first of count consecutive ports that were all free on 127.0.0.1, for UDP
// and TCP, a moment ago.
func (p *Picker) Take(t testing.TB, count int) int {
	t.Helper()
	if p.rangeErr != nil {
		t.Fatal(p.rangeErr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for tries := 0; tries < p.n; tries += count {
		off := p.next % p.n
		if off+count > p.n {
			off = 0
		}
		p.next = off + count
		ok := true
		for q := p.lo + off; q < p.lo+off+count && ok; q++ {
			ok = Free(q)
		}
		if ok {
			return p.lo + off
		}
	}
	t.Fatalf("testports: no %d free ports above the ephemeral range", count)
	return 0
}

// Free reports whether port is free on 127.0.0.1 for both UDP and TCP.
func Free(port int) bool {
	a := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for _, listen := range []func() (io.Closer, error){
		func() (io.Closer, error) { return net.ListenPacket("udp", a) },
		func() (io.Closer, error) { return net.Listen("tcp", a) },
	} {
		c, err := listen()
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// Bound reports whether a socket on 127.0.0.1 or any address is bound to port (listening, for
// TCP), as /proc/net/udp or /proc/net/tcp list it: how a test waits for a peer it started to
// take its port without binding the port itself, which would race the peer for it.
func Bound(network string, port int) bool {
	file, listen := "/proc/net/udp", ""
	if network == "tcp" {
		file, listen = "/proc/net/tcp", "0A"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[1], want) {
			continue
		}
		if listen == "" || f[3] == listen {
			return true
		}
	}
	return false
}
