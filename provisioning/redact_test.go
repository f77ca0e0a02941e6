package provisioning_test

import (
	"testing"

	"github.com/wallphone/wallphone/provisioning"
)

// TestRedactKeepsIdentifiers: the console's logs keep a device id, a key fingerprint and a
// SHA-256 whole, though they may hold seven digits in a row, and still remove a number.
func TestRedactKeepsIdentifiers(t *testing.T) {
	line := `2026-12-03T07:23:51Z INFO agent started device_id="wp-c67a7c79d6534846" device_key="0c83161234567ed6bf6d73d6a263e6fc" ` +
		`sha256="5d5ff83a4a0805d616bb4d4ec485fe1f21d37545f386cb0ee3248691234567b2" err="no route to 512 555 0100"`
	want := `2026-12-03T07:23:51Z INFO agent started device_id="wp-c67a7c79d6534846" device_key="0c83161234567ed6bf6d73d6a263e6fc" ` +
		`sha256="5d5ff83a4a0805d616bb4d4ec485fe1f21d37545f386cb0ee3248691234567b2" err="no route to [number removed]"`
	if got := provisioning.RedactNumbers(line); got != want {
		t.Fatalf("redacted:\n%s\nwant:\n%s", got, want)
	}
}
