// Package sdnotify tells systemd how the agent is doing over the notify socket: ready,
// stopping, and the watchdog's "still alive", so that a hung agent is restarted. Outside
// systemd (no NOTIFY_SOCKET) every call does nothing.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"time"
)

// The states the agent reports.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends to systemd's notify socket.
type Notifier struct {
	socket   string        // "" outside systemd
	watchdog time.Duration // WATCHDOG_USEC, 0 if not set
}

// FromEnv reads NOTIFY_SOCKET and WATCHDOG_USEC as systemd sets them.
func FromEnv() Notifier {
	n := Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		// WATCHDOG_PID, when set, names the process meant; another's watchdog is not ours.
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// WatchdogInterval is how often to send Watchdog: half systemd's timeout, as it advises, or
// fallback when systemd set none.
func (n Notifier) WatchdogInterval(fallback time.Duration) time.Duration {
	if n.watchdog > 0 {
		return n.watchdog / 2
	}
	return fallback
}

// Send sends one state. Errors are ignored: systemd not listening must not stop the phone.
func (n Notifier) Send(state string) {
	if n.socket == "" {
		return
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	if n.socket[0] == '@' {
		addr.Name = "\x00" + n.socket[1:] // the abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
