package main

import (
	"bytes"
	"crypto/ed25519"
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
	if err := run([]string{"audit", "verify"}, nil, &out); !errors.Is(err, errUsage) {
		t.Fatalf("no --log: %v", err)
	}
}
