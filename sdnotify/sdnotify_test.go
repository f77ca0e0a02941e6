package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestSend(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := FromEnv()
	if got := n.WatchdogInterval(time.Hour); got != 15*time.Second {
		t.Fatalf("interval %s", got)
	}
	for _, want := range []string{Ready, Watchdog, Stopping} {
		n.Send(want)
		buf := make([]byte, 64)
		l.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, err := l.Read(buf)
		if err != nil || string(buf[:k]) != want {
			t.Fatalf("got %q %v, want %q", buf[:k], err, want)
		}
	}
}

func TestOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	n := FromEnv()
	n.Send(Ready) // does nothing, and does not fail
	if n.WatchdogInterval(time.Minute) != time.Minute {
		t.Fatal("fallback not used")
	}
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", "1")
	if FromEnv().WatchdogInterval(time.Minute) != time.Minute {
		t.Fatal("another process's watchdog taken as ours")
	}
}
