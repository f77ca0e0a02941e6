package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/identity"
)

// Every decision is in the audit log, chained and signed with the device key, and no number
// is in it in clear: an auditor with the facility's key matches them by keyed hash.
func TestAuditLog(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	runAgent(t, data, recordedCall)
	runAgent(t, data, "offhook\npress 1\npress 1001#\npress 1234#\npress 5125550100#\nwait 5s\nonhook\n")
	b, err := os.ReadFile(filepath.Join(data, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := identity.LoadOrCreate(filepath.Join(data, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := audit.Verify(bytes.NewReader(b), key.Public().(ed25519.PublicKey))
	if err != nil || sum.Entries < 3 {
		t.Fatalf("verify: %+v %v", sum, err)
	}
	if bytes.Contains(b, []byte("5550123")) || bytes.Contains(b, []byte("5550100")) {
		t.Fatal("a number in clear in the audit log")
	}
	kb, _ := os.ReadFile(filepath.Join(data+"-keys", "audit.key"))
	ak, err := audit.ParseKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{audit.NumberMAC(ak, "+15125550123"): "recorded", audit.NumberMAC(ak, "+15125550100"): "privileged"}
	found := 0
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e audit.Entry
		json.Unmarshal(line, &e)
		if e.Kind != "decision" {
			continue
		}
		if d, ok := want[e.Fields["number_mac"]]; ok && d == e.Fields["decision"] && e.Fields["registry_version"] == "1" && e.Fields["registry_sha256"] != "" {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("decisions matched by keyed hash: %d, want 2\n%s", found, b)
	}
}
