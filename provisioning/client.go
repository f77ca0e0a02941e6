package provisioning

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// ErrTimeout: the phone did not answer in time (wrong port, wrong speed, agent not running,
// cable out).
var ErrTimeout = errors.New("no answer from the phone")

// DefaultTimeout is how long a Client waits for one answer.
const DefaultTimeout = 10 * time.Second

// Client is the technician's end of the console. Its methods are for one goroutine.
type Client struct {
	w       io.Writer
	closer  io.Closer
	frames  chan Frame
	done    chan struct{} // closed when the reader has stopped
	quit    chan struct{} // closed by Close
	readErr error         // set before done is closed
	seq     uint16
	hello   Hello
	// Timeout bounds the wait for each answer.
	Timeout time.Duration

	closeOnce sync.Once
}

// NewClient starts reading answers from rw. Close stops it: it closes rw if rw is an
// io.Closer and waits for the reader; otherwise the reader ends when rw's Read fails.
func NewClient(rw io.ReadWriter) *Client {
	c := &Client{w: rw, frames: make(chan Frame), done: make(chan struct{}), quit: make(chan struct{}), Timeout: DefaultTimeout}
	// Sequence numbers start anywhere: answers still on the line from an earlier client (a
	// phone that came up and answered hellos sent while it was down) must not pass for ours.
	c.seq = uint16(rand.N(1 << 16))
	c.closer, _ = rw.(io.Closer)
	go c.read(rw)
	return c
}

func (c *Client) read(r io.Reader) {
	defer close(c.done)
	fr := NewFrameReader(r)
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, ErrFrameCorrupt) || errors.Is(err, ErrFrameTooLarge) {
			continue // noise on the line; the request is sent again or times out
		}
		if err != nil {
			c.readErr = err
			return
		}
		select {
		case c.frames <- f:
		case <-c.quit:
			return
		}
	}
}

// Close ends the client.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.quit)
		if c.closer != nil {
			err = c.closer.Close()
			<-c.done
		}
	})
	return err
}

// Call sends one request of type typ and decodes its answer into answer, skipping late
// answers to earlier requests. The methods below cover every request; Call is for the rest.
func (c *Client) Call(ctx context.Context, typ byte, req, answer any) error {
	if req == nil {
		req = struct{}{}
	}
	seq, err := c.send(typ, req)
	if err != nil {
		return err
	}
	timer := time.NewTimer(c.Timeout)
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if f.Seq != seq || f.Type < answerBit {
				// A late answer, or the phone's own request or note of an update that
				// ended: not the answer to this.
				continue
			}
			return ParseAnswer(typ, f, answer)
		case <-c.done:
			return fmt.Errorf("%w: the line closed: %v", ErrTimeout, c.readErr)
		case <-timer.C:
			return fmt.Errorf("%w within %s", ErrTimeout, c.Timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// send writes one request and returns its sequence number.
func (c *Client) send(typ byte, req any) (uint16, error) {
	c.seq++
	if c.seq == 0 {
		c.seq = 1 // 0 is the phone's for answers to frames it could not read
	}
	if err := writeJSON(c.w, Frame{Type: typ, Seq: c.seq}, req); err != nil {
		return 0, fmt.Errorf("write to the phone: %w", err)
	}
	return c.seq, nil
}

// Hello asks who the phone is and for a fresh challenge.
func (c *Client) Hello(ctx context.Context) (Hello, error) {
	var h Hello
	err := c.Call(ctx, TypeHello, nil, &h)
	if err == nil {
		c.hello = h
	}
	return h, err
}

// Authenticate says hello and answers the challenge with the technician's certificate and
// key. It returns the phone's hello and what the phone made of the certificate.
func (c *Client) Authenticate(ctx context.Context, cert []byte, key ed25519.PrivateKey) (Hello, AuthOK, error) {
	h, err := c.Hello(ctx)
	if err != nil {
		return h, AuthOK{}, err
	}
	var ok AuthOK
	err = c.Call(ctx, TypeAuth, Auth{Certificate: cert, Signature: ed25519.Sign(key, AuthMessage(h.DeviceID, h.Challenge))}, &ok)
	return h, ok, err
}

// AnswerChallenge sends an auth with a signature made by the caller; tests use it to send
// wrong answers.
func (c *Client) AnswerChallenge(ctx context.Context, a Auth) (AuthOK, error) {
	var ok AuthOK
	err := c.Call(ctx, TypeAuth, a, &ok)
	return ok, err
}

// Status asks for the phone's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.Call(ctx, TypeStatus, nil, &s)
}

// Selftest runs the phone's unattended self test.
func (c *Client) Selftest(ctx context.Context) ([]Check, error) {
	var r SelftestResult
	return r.Checks, c.Call(ctx, TypeSelftest, nil, &r)
}

// Logs fetches up to n recent lines of the agent's log.
func (c *Client) Logs(ctx context.Context, n int) ([]string, error) {
	var l LogLines
	return l.Lines, c.Call(ctx, TypeLogs, Logs{Lines: n}, &l)
}

// Enroll uploads items (conf file name → content) and enrols the phone in the facility of
// the technician's certificate. progress, if not nil, is called after every chunk.
func (c *Client) Enroll(ctx context.Context, items map[string][]byte, progress func(sent, total int)) (Enrolled, error) {
	names := make([]string, 0, len(items))
	total := 0
	for name, b := range items {
		names = append(names, name)
		total += len(b)
	}
	slices.Sort(names)
	sums := map[string]string{}
	sent := 0
	for _, name := range names {
		b := items[name]
		sum := sha256.Sum256(b)
		sums[name] = hex.EncodeToString(sum[:])
		for off := 0; off == 0 || off < len(b); off += ChunkSize {
			chunk := b[off:min(off+ChunkSize, len(b))]
			if err := c.Call(ctx, TypePut, Put{Name: name, Offset: off, Total: len(b), Data: chunk}, &Done{}); err != nil {
				return Enrolled{}, fmt.Errorf("upload %s: %w", name, err)
			}
			sent += len(chunk)
			if progress != nil {
				progress(sent, total)
			}
		}
	}
	var e Enrolled
	return e, c.Call(ctx, TypeEnroll, Enroll{Items: sums}, &e)
}

// Reset asks for a factory reset; confirm sees what would be lost and says whether to go on.
// It returns whether the phone is resetting.
func (c *Client) Reset(ctx context.Context, confirm func(ResetAnswer) bool) (bool, error) {
	var first ResetAnswer
	if err := c.Call(ctx, TypeReset, Reset{}, &first); err != nil {
		return false, err
	}
	if !confirm(first) {
		return false, nil
	}
	var done ResetAnswer
	if err := c.Call(ctx, TypeReset, Reset{Nonce: first.Nonce}, &done); err != nil {
		return false, err
	}
	return done.Done, nil
}

// Reboot restarts the phone.
func (c *Client) Reboot(ctx context.Context) error {
	return c.Call(ctx, TypeReboot, nil, &Done{})
}

// Bye ends the session: the phone forgets the authentication.
func (c *Client) Bye(ctx context.Context) error {
	return c.Call(ctx, TypeBye, nil, &Done{})
}
