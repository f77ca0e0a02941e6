package chaos

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/provisioning/ptytest"
)

// console is the technician's end of the phone's serial console: a pseudo-terminal whose
// slave end every run of the agent opens as its port, by name.
type console struct {
	port   string
	client *provisioning.Client
	cert   []byte
	key    ed25519.PrivateKey
}

// consoleResult is what one session read, or why it failed.
type consoleResult struct {
	status provisioning.Status
	logs   []string
	err    error
}

// noClose keeps the client from closing the pseudo-terminal, which outlives every session.
type noClose struct{ *os.File }

func newConsole(t *testing.T, keys string) *console {
	master, slave := ptytest.Open(t)
	cert, err := os.ReadFile(filepath.Join(keys, "technician.cert"))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(keys, "technician.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	c := &console{port: slave.Name(), client: provisioning.NewClient(noClose{master}), cert: cert, key: key}
	c.client.Timeout = 5 * time.Second
	// ptytest closes the master at the end, which ends the client's reader.
	t.Cleanup(func() { c.client.Close() })
	return c
}

// session signs in as the demo's technician, reads the status and the last log lines, and
// signs out, on a goroutine; the answer comes on the channel.
func (c *console) session(deviceID string) chan consoleResult {
	done := make(chan consoleResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var r consoleResult
		defer func() { done <- r }()
		hello, _, err := c.client.Authenticate(ctx, c.cert, c.key)
		if err != nil {
			r.err = fmt.Errorf("sign in: %w", err)
			return
		}
		if deviceID != "" && hello.DeviceID != deviceID {
			r.err = fmt.Errorf("hello from device %s, want %s", hello.DeviceID, deviceID)
			return
		}
		if r.status, err = c.client.Status(ctx); err != nil {
			r.err = fmt.Errorf("status: %w", err)
			return
		}
		if r.logs, err = c.client.Logs(ctx, 100); err != nil {
			r.err = fmt.Errorf("logs: %w", err)
			return
		}
		if err := c.client.Bye(ctx); err != nil {
			r.err = fmt.Errorf("bye: %w", err)
		}
	}()
	return done
}

// consoleResult checks a session's answer. One the agent's kill cut short proves nothing.
func (h *harness) consoleResult(r consoleResult, cut bool) {
	switch {
	case r.err != nil && cut:
		h.counts["console sessions cut by a kill"]++
		return
	case r.err != nil:
		h.t.Errorf("console session with the agent up: %v", r.err)
		return
	}
	h.counts["console sessions that read the status"]++
	st := r.status
	if st.DeviceID != h.deviceID || st.Facility != "demo-county" || st.PolicyVersion < 2 || st.RegistryVersion < 1 {
		h.t.Errorf("console status %+v", st)
	}
	b, _ := json.Marshal(st)
	for _, l := range r.logs {
		b = append(b, l...)
	}
	for _, n := range h.secretNumbers() {
		if containsAny(b, n) {
			h.t.Errorf("the console's status or logs hold %s, the number of a privileged or free call", n)
		}
	}
}
