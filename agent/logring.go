package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wallphone/wallphone/provisioning"
)

// logRing keeps the agent's last log lines for the console, redacted field by field: the
// attributes that can hold a dialed number are left out, free text has anything number-like
// removed, and times and call ids are kept whole so that a call seen in the log can be found.
type logRing struct {
	mu    sync.Mutex // guards lines and next
	lines []string
	next  int
}

const ringSize = 200

// numberKeys are the log attributes that can hold a dialed number.
var numberKeys = map[string]bool{"number": true, "to": true, "dialed": true, "e164": true, "callee": true, "digits": true}

// withRing returns a logger that writes to log's handler and keeps lines in a ring.
func withRing(log *slog.Logger) (*slog.Logger, *logRing) {
	r := &logRing{}
	return slog.New(ringHandler{next: log.Handler(), ring: r}), r
}

func (r *logRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < ringSize {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % ringSize
}

func (r *logRing) last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := append(slices.Clone(r.lines[r.next:]), r.lines[:r.next]...)
	return all[max(0, len(all)-n):]
}

type ringHandler struct {
	next  slog.Handler
	ring  *logRing
	attrs []slog.Attr
}

func (h ringHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ringHandler{next: h.next.WithAttrs(as), ring: h.ring, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h ringHandler) WithGroup(name string) slog.Handler {
	return ringHandler{next: h.next.WithGroup(name), ring: h.ring, attrs: h.attrs}
}

func (h ringHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Time.UTC().Format(time.RFC3339))
	b.WriteString(" " + r.Level.String() + " " + provisioning.RedactNumbers(r.Message))
	add := func(a slog.Attr) bool {
		if a.Key == "event" || numberKeys[a.Key] {
			return true
		}
		fmt.Fprintf(&b, " %s=%q", a.Key, ringValue(a))
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.ring.add(b.String())
	return h.next.Handle(ctx, r)
}

// idKeys are attributes whose value is an identifier the phone made, never a number a caller
// dialed.
var idKeys = map[string]bool{"call_id": true, "sip_call_id": true, "device_id": true, "device_key": true}

// ringValue is an attribute's value as the console shows it: times in RFC 3339, numbers and
// identifiers as they are, any other text with anything number-like removed.
func ringValue(a slog.Attr) string {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().UTC().Format(time.RFC3339Nano)
	case slog.KindString:
		if idKeys[a.Key] {
			return v.String()
		}
		return provisioning.RedactNumbers(v.String())
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration:
		return v.String()
	default:
		return provisioning.RedactNumbers(v.String())
	}
}
