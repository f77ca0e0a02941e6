package provisioning_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/wallphone/wallphone/provisioning"
)

// TestStaleAnswersIgnored: answers left on the line for an earlier client (hellos it sent
// while the phone was down, answered when the phone came up) are not taken for this
// client's: its hello gets the phone's fresh challenge, never a stale one, which would make
// the sign-in fail and count against the lock.
func TestStaleAnswersIgnored(t *testing.T) {
	for range 50 {
		cr, pw, err := os.Pipe() // phone to client; buffered, as a serial line is
		if err != nil {
			t.Fatal(err)
		}
		pr, cw, err := os.Pipe() // client to phone
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer pw.Close()
			for seq := uint16(1); seq <= 10; seq++ {
				b, _ := json.Marshal(provisioning.Hello{DeviceID: "wp-1", Challenge: []byte("stale")})
				pw.Write(frame(t, 0x81, seq, string(b)))
			}
			f, err := provisioning.NewFrameReader(pr).ReadFrame()
			if err != nil {
				return
			}
			b, _ := json.Marshal(provisioning.Hello{DeviceID: "wp-1", Challenge: []byte("fresh")})
			pw.Write(frame(t, 0x81, f.Seq, string(b)))
		}()
		c := provisioning.NewClient(struct {
			io.Reader
			io.Writer
		}{cr, cw})
		h, err := c.Hello(context.Background())
		c.Close()
		cw.Close()
		cr.Close()
		pr.Close()
		if err != nil || !bytes.Equal(h.Challenge, []byte("fresh")) {
			t.Fatalf("hello: %q, %v", h.Challenge, err)
		}
	}
}
