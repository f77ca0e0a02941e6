package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCompactForgetsReplacedValues: a value replaced in bbolt stays in the file's free pages
// until Compact.
func TestCompactForgetsReplacedValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"number":"+15125550123"}`)
	if err := db.PutCall("c1", secret); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCall("c1", []byte(`{"number":""}`)); err != nil {
		t.Fatal(err)
	}
	id, _ := db.DeviceID()
	db.Close()
	if b, _ := os.ReadFile(path); !bytes.Contains(b, secret) {
		t.Skip("bbolt reused the page; nothing for Compact to show")
	}
	if err := Compact(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); bytes.Contains(b, secret) {
		t.Fatal("the replaced value is still in the file")
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []byte
	db.Calls(func(_ string, b []byte) error { got = b; return nil })
	if again, _ := db.DeviceID(); again != id || string(got) != `{"number":""}` {
		t.Fatalf("after compact: %q %q", again, got)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatal("temporary file left")
	}
}
