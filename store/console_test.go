package store_test

import (
	"path/filepath"
	"testing"
	"time"
)

func TestConsoleFailuresPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db := open(t, path)
	if n, until, err := db.ConsoleFailures(); err != nil || n != 0 || !until.IsZero() {
		t.Fatalf("fresh: %d %v %v", n, until, err)
	}
	until := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := db.SetConsoleFailures(7, until); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open(t, path)
	n, got, err := db.ConsoleFailures()
	if err != nil || n != 7 || !got.Equal(until) {
		t.Fatalf("after reopen: %d %v %v", n, got, err)
	}
	// Lockouts of callers are a different thing and stay apart.
	if l, err := db.Lockout("console_lockout"); err != nil || l.Failures != 0 {
		t.Fatalf("caller lockout touched: %+v %v", l, err)
	}
	if err := db.SetConsoleFailures(0, time.Time{}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if v := rawGet(t, path, "meta", "console_lockout"); v != nil {
		t.Fatalf("cleared lockout still stored: %q", v)
	}
}
