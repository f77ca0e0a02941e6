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
	log.Info("call_ended", "event", "call_ended", "at", at, "reason", "caller_hangup", "talk", 14579997244*time.Nanosecond)
	log.Warn("recording destroyed: the number called is privileged", "event", "recording_destroyed", "at", at, "kind", "attorney")
	log.Info("registry installed", "event", "registry_installed", "fresh_until", at.Add(time.Hour))
	want := `09:00:05  [earpiece] "Welcome."
09:00:05  [to called party] "This call is recorded."
09:00:05  [earpiece, called party] "Hello?"
09:00:05  WARN registry stale  since="a day"  registry_version=3
09:00:05  call_ended  call=c1  reason=caller_hangup  talk=14.58s
09:00:05  WARN recording destroyed: the number called is privileged  call=c1  kind=attorney
`
	// The last line is stamped with the record's own time, which is now.
	all := out.String()
	cut := strings.LastIndex(strings.TrimSuffix(all, "\n"), "\n") + 1
	got, last := all[:cut], all[cut:]
	if !strings.HasSuffix(last, "  registry installed  fresh_until=2026-01-01T10:00:05Z\n") {
		t.Errorf("a time attribute: %q, want RFC 3339", last)
	}
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
