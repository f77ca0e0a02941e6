package uplink

import (
	"context"
	"io"
	"sync"
	"time"
)

// throttle caps the upload rate: each read is given a start time no earlier than the end of
// the bytes before it at the capped rate, and waits for it. A nil throttle does not cap.
type throttle struct {
	rate float64 // bytes per second

	mu   sync.Mutex // guards next
	next time.Time  // when the bytes read so far have been paid for
}

func newThrottle(bytesPerSecond int64) *throttle {
	if bytesPerSecond <= 0 {
		return nil
	}
	return &throttle{rate: float64(bytesPerSecond)}
}

// chunk bounds a single read, so that the cap holds over short spans too.
const chunk = 32 << 10

func (t *throttle) reader(ctx context.Context, r io.Reader) io.Reader {
	if t == nil {
		return r
	}
	return &throttled{ctx: ctx, r: r, t: t}
}

// wait reserves n bytes and sleeps until they may go.
func (t *throttle) wait(ctx context.Context, n int) error {
	t.mu.Lock()
	now := time.Now()
	start := t.next
	if start.Before(now) {
		start = now
	}
	t.next = start.Add(time.Duration(float64(n) / t.rate * float64(time.Second)))
	t.mu.Unlock()
	if d := time.Until(start); d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tm.C:
		}
	}
	return nil
}

type throttled struct {
	ctx context.Context
	r   io.Reader
	t   *throttle
}

func (r *throttled) Read(p []byte) (int, error) {
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.t.wait(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
