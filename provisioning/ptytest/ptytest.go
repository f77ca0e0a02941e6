// Package ptytest gives the console's tests a real pseudo-terminal pair: the phone's end is
// opened as a serial port, the other end plays the technician's cable. It serves the tests of
// promise 7, which run the real console over a real line.
package ptytest

import (
	"os"
	"syscall"
	"testing"

	"github.com/creack/pty"
)

// Open opens a pseudo-terminal pair whose master end Close can interrupt in Read: the file
// pty.Open returns blocks in the read system call, where Close cannot reach it. Both ends are
// closed when the test ends.
func Open(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(m.Fd()))
	if err == nil {
		err = syscall.SetNonblock(fd, true)
	}
	m.Close()
	if err != nil {
		slave.Close()
		t.Fatal(err)
	}
	master = os.NewFile(uintptr(fd), "ptmx")
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave
}
