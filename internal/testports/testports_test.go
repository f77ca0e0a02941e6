package testports

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

func TestTakeHandsOutFreePortsOnce(t *testing.T) {
	p := New(rand.New(rand.NewPCG(1, 2)))
	seen := map[int]bool{}
	for range 50 {
		port := p.Take(t, 4)
		for q := port; q < port+4; q++ {
			if seen[q] {
				t.Fatalf("port %d handed out twice", q)
			}
			seen[q] = true
			if q < p.lo || q > 65535 {
				t.Fatalf("port %d outside %d-65535", q, p.lo)
			}
		}
	}
	// A port in use is not handed out.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	used := l.LocalAddr().(*net.UDPAddr).Port
	if Free(used) {
		t.Fatalf("port %d in use reported free", used)
	}
}

func TestBound(t *testing.T) {
	p := New(nil)
	port := p.Take(t, 1)
	if Bound("udp", port) || Bound("tcp", port) {
		t.Fatalf("free port %d reported bound", port)
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !Bound("udp", port) || !Bound("tcp", port) {
		t.Fatalf("port %d bound and listening not reported", port)
	}
}
