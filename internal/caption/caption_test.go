package caption

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// What a person at the terminal reads: prompts as captions (to the caller's earpiece or to
// the called party), the called party's words, other events as one line with their fields,
// warnings marked, debug left out.
func TestCaptions(t *testing.T) {
	var out strings.Builder
	log := slog.New(NewHandler(&out)).With("call_id", "c1")
	at := time.Date(2026, 1, 1, 9, 0, 5, 0, time.UTC)
	log.Info("prompt", "event", "prompt", "at", at, "text", "Welcome.")
	log.Info("prompt", "event", "prompt", "at", at, "to", "callee", "text", "This call is recorded.")
	log.Info("callee_says", "at", at, "text", "Hello?")
	log.Warn("registry stale", "event", "registry_stale", "at", at, "since", "a day", "registry_version", 3)
	log.Debug("repository checked", "event", "update_checked")
	want := `09:00:05  [earpiece] "Welcome."
09:00:05  [to called party] "This call is recorded."
09:00:05  [earpiece, called party] "Hello?"
09:00:05  WARN registry stale  since="a day"  registry_version=3
`
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
