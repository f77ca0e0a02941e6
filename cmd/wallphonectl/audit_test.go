package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/identity"
)

func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "device.key")
	key, _, err := identity.LoadOrCreate(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "audit.log")
	l, _, err := audit.Open(logFile, audit.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"recorded", "privileged", "free"} {
		l.Append("decision", map[string]string{"decision": d})
	}
	l.Close()

	var out bytes.Buffer
	if err := run([]string{"audit", "verify", "--log", logFile, "--device-key", keyFile}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "3 entries") || !strings.Contains(out.String(), identity.Fingerprint(key.Public().(ed25519.PublicKey))) {
		t.Fatalf("output %q", out.String())
	}
	// One decision changed after the fact.
	b, _ := os.ReadFile(logFile)
	os.WriteFile(logFile, bytes.Replace(b, []byte(`"privileged"`), []byte(`"recorded"`), 1), 0o600)
	out.Reset()
	err = run([]string{"audit", "verify", "--log", logFile}, nil, &out)
	if !errors.Is(err, audit.ErrBroken) || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "the 1 entries before it hold") {
		t.Fatalf("err = %v", err)
	}
	// What a phone shows: the public key in hex (hello), or only its fingerprint, which cannot
	// check a signature and is refused with the way to the key.
	os.WriteFile(logFile, b, 0o600)
	pub := key.Public().(ed25519.PublicKey)
	out.Reset()
	if err := run([]string{"audit", "verify", "--log", logFile, "--device-key", hex.EncodeToString(pub)}, nil, &out); err != nil {
		t.Fatalf("verify with the public key in hex: %v", err)
	}
	err = run([]string{"audit", "verify", "--log", logFile, "--device-key", identity.Fingerprint(pub)}, nil, &out)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "console hello") {
		t.Fatalf("verify with a fingerprint: %v", err)
	}
	if err := run([]string{"audit", "verify"}, nil, &out); !errors.Is(err, errUsage) {
		t.Fatalf("no --log: %v", err)
	}
}

// Across an enrolment: the log starts under the phone's first key and records the change to
// the key enrolment made; verify follows it from the first key and checks the current one.
func TestAuditVerifyAcrossKeyChange(t *testing.T) {
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	oldKey, err := identity.Create(oldFile)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := identity.Create(newFile)
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "audit.log")
	l, _, err := audit.Open(logFile, audit.Options{Key: oldKey})
	if err != nil {
		t.Fatal(err)
	}
	l.Append("console_hello", nil)
	if err := l.ChangeKey(newKey); err != nil {
		t.Fatal(err)
	}
	l.Append("decision", map[string]string{"decision": "privileged"})
	l.Close()
	newFP := identity.Fingerprint(newKey.Public().(ed25519.PublicKey))

	var out bytes.Buffer
	if err := run([]string{"audit", "verify", "--log", logFile, "--device-key", oldFile, "--current-key", newFile}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "entry 2 (") || !strings.Contains(out.String(), "device key changed to "+newFP) ||
		!strings.Contains(out.String(), "3 entries") || !strings.Contains(out.String(), "last "+newFP) {
		t.Fatalf("output %q", out.String())
	}
	// The current key is not where the log starts: said so, at line 1.
	err = run([]string{"audit", "verify", "--log", logFile, "--device-key", newFile}, nil, &out)
	if !errors.Is(err, audit.ErrSignature) || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "the key the log starts with") {
		t.Fatalf("from the new key: %v", err)
	}
	// A log that does not end under the phone's current key is refused.
	err = run([]string{"audit", "verify", "--log", logFile, "--device-key", oldFile, "--current-key", oldFile}, nil, &out)
	if !errors.Is(err, audit.ErrSignature) || !strings.Contains(err.Error(), "ends under device key "+newFP) {
		t.Fatalf("wrong current key: %v", err)
	}
	if err := run([]string{"audit", "verify", "--log", logFile, "--current-key", newFile}, nil, &out); !errors.Is(err, errUsage) {
		t.Fatalf("--current-key alone: %v", err)
	}
}
