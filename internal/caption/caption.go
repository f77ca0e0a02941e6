// Package caption prints the agent's events for a person at a terminal: what the earpiece
// says as captions, everything else as one short line. Machines read the JSON log instead.
package caption

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// callLines are the events whose line shows the call's id: where a person will want to find
// the call's recording, its record or its audit entry.
var callLines = map[string]bool{"decision": true, "recording_started": true, "call_ended": true,
	"recording_failed": true, "recording_lost": true, "recording_destroyed": true, "call_cut_short": true}

// NewHandler returns a handler that writes to w, at info level and above.
func NewHandler(w io.Writer) slog.Handler {
	return &handler{w: w, mu: new(sync.Mutex)}
}

// handler prints events for a person at a terminal: prompts as the captions of what the
// earpiece says, everything else as one short line.
type handler struct {
	w     io.Writer
	mu    *sync.Mutex // guards w, shared by handlers derived with With
	attrs []slog.Attr
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{w: h.w, mu: h.mu, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *handler) WithGroup(string) slog.Handler { return h }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	at := r.Time
	var fields []string
	var text, to, callID, event string
	add := func(a slog.Attr) bool {
		switch a.Key {
		case "event":
			event = a.Value.String()
		case "call_id":
			callID = a.Value.String()
		case "at":
			at = a.Value.Time()
		case "text":
			text = a.Value.String()
		case "to":
			to = a.Value.String()
			fields = append(fields, a.Key+"="+a.Value.String())
		default:
			v := a.Value.String()
			switch a.Value.Kind() {
			case slog.KindTime:
				v = a.Value.Time().UTC().Format(time.RFC3339Nano)
			case slog.KindDuration:
				// A person reads 14.58s; the JSON log keeps the nanoseconds.
				v = a.Value.Duration().Round(10 * time.Millisecond).String()
			}
			if strings.ContainsAny(v, " \t\"") {
				v = fmt.Sprintf("%q", v)
			}
			fields = append(fields, a.Key+"="+v)
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	var b strings.Builder
	b.WriteString(at.Format(time.TimeOnly))
	b.WriteString("  ")
	if r.Level > slog.LevelInfo {
		b.WriteString(r.Level.String() + " ")
	}
	switch r.Message {
	case "prompt":
		who := "earpiece"
		if to == "callee" {
			who = "to called party"
		}
		fmt.Fprintf(&b, "[%s] %q\n", who, text)
	case "callee_says":
		fmt.Fprintf(&b, "[earpiece, called party] %q\n", text)
	default:
		b.WriteString(r.Message)
		if callID != "" && callLines[event] {
			// The call's id, where a person will want to find its recording or audit entry.
			b.WriteString("  call=" + callID)
		}
		for _, f := range fields {
			b.WriteString("  " + f)
		}
		b.WriteByte('\n')
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}
