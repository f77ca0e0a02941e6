package siptrunk

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A phone without a usable sip.json keeps running: every call fails with ErrNoAccount, and
// the log says why, naming the file, once.
func TestOpenFileWithoutAccount(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"server": "sip.example", "pasword": "x"}`), 0o600)
	for _, tc := range []struct{ file, event, detail string }{
		{filepath.Join(dir, "missing.json"), "sip_not_configured", "missing.json"},
		{bad, "sip_error", "pasword"},
	} {
		var log bytes.Buffer
		tr, stop := OpenFile(tc.file, slog.New(slog.NewJSONHandler(&log, nil)))
		if _, err := tr.Dial("+15125550123"); !errors.Is(err, ErrNoAccount) {
			t.Errorf("%s: dial: %v, want ErrNoAccount", tc.file, err)
		}
		stop()
		if !strings.Contains(log.String(), `"event":"`+tc.event+`"`) || !strings.Contains(log.String(), tc.detail) {
			t.Errorf("%s: log %s", tc.file, log.String())
		}
	}
}
