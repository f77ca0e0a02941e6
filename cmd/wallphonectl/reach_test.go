package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/provisioning"
)

// A phone that does not answer: each attempt is said on a stderr that is not a terminal
// (no spinner, no carriage returns), and giving up says what to check, with exit status 3.
func TestReachSaysWhatItTries(t *testing.T) {
	silent, w := io.Pipe() // nothing ever comes from the phone
	defer w.Close()
	client := provisioning.NewClient(struct {
		io.Reader
		io.Writer
	}{silent, io.Discard})
	defer client.Close()
	var stderr bytes.Buffer
	c := &consoleCmd{stderr: &stderr, client: client, port: "/dev/ttyUSB0", baud: 9600,
		timeout: 300 * time.Millisecond, attemptEvery: 100 * time.Millisecond, spin: isTerminal(&stderr)}
	_, err := c.reach(context.Background())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitNoPhone || !errors.Is(err, provisioning.ErrTimeout) {
		t.Fatalf("err %v, want exit status %d", err, exitNoPhone)
	}
	for _, want := range []string{"/dev/ttyUSB0 at 9600 baud after 3 attempts in 300ms", "cable", "--baud 9600 is the phone's --console-baud", "--console"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("giving up: %q lacks %q", err, want)
		}
	}
	want := "no answer from the phone on /dev/ttyUSB0 at 9600 baud (attempt 1 of 3)\n" +
		"no answer from the phone on /dev/ttyUSB0 at 9600 baud (attempt 2 of 3)\n" +
		"no answer from the phone on /dev/ttyUSB0 at 9600 baud (attempt 3 of 3)\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%q\nwant\n%q", stderr.String(), want)
	}
	if c.client.Timeout != c.timeout {
		t.Errorf("the wait for later answers is %s, not --timeout's %s", c.client.Timeout, c.timeout)
	}
}
