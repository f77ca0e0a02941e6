package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/registry"
)

type idle bool

func (i idle) InCall() bool { return !bool(i) }

// openTestAgent opens the agent on a simulated phone's data directory, with the wall clock
// (so the first update check is the background one).
func openTestAgent(t *testing.T, data string, log *bytes.Buffer, extra ...string) *agent {
	t.Helper()
	cfg, err := parseFlags(append([]string{"--board", "sim", "--log", "json", "--data", data}, extra...), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := openAgent(cfg, slog.New(slog.NewJSONHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.close() })
	return a
}

// A registry installed while a call is under way takes effect when the phone is idle again,
// and then the sweep runs; a registry that drops numbers without listing them is refused and
// the one in force stays.
func TestInstallBetweenCalls(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	runAgent(t, data, "quit\n")
	keys := data + "-keys"
	var log bytes.Buffer
	a := openTestAgent(t, data, &log)
	if a.registryVersion() != 1 {
		t.Fatalf("registry %d", a.registryVersion())
	}

	publishDemoRegistry(t, keys, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil)
	if !a.check(context.Background()) {
		t.Fatalf("nothing installed:\n%s", log.String())
	}
	a.installed <- struct{}{}
	a.between(idle(false)) // in a call
	if a.registryVersion() != 1 {
		t.Fatal("the registry changed under a call in progress")
	}
	a.between(idle(true))
	if a.registryVersion() != 2 {
		t.Fatal("the new registry did not take effect once idle")
	}
	if _, ok := a.registry.Lookup("+15125550150"); !ok {
		t.Fatal("new number not privileged")
	}

	// Version 3 drops the public defender without listing it: made by hand, past the
	// back-office tool that would refuse it.
	var items []registry.Item
	for _, e := range registry.Demo().Entries[1:] {
		items = append(items, registry.Item{Number: e.Number, Prefix: e.Prefix, Kind: registry.Kind(e.Kind), Label: e.Label})
	}
	var buf bytes.Buffer
	if err := registry.Build(&buf, 3, items, nil, nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(keys, "registry-3.reg")
	os.WriteFile(file, buf.Bytes(), 0o600)
	r, signers := demoRepo(t, keys)
	r.AddTarget("registry.reg", file, map[string]int{"version": 3})
	if err := r.Commit(signers, demoExpiry, time.Now()); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if a.check(context.Background()) {
		t.Fatal("installed a registry that lost an entry")
	}
	if !strings.Contains(log.String(), `"event":"update_error"`) || !strings.Contains(log.String(), "removal log does not reach back") {
		t.Fatalf("refusal not logged:\n%s", log.String())
	}
	a.between(idle(true))
	if _, ok := a.registry.Lookup("+15125550100"); !ok || a.registryVersion() != 2 {
		t.Fatal("the public defender is no longer privileged")
	}
}

// A policy given as a local file stays in force when the repository publishes another; the
// registry still comes from the repository.
func TestLocalPolicyNotReplaced(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	runAgent(t, data, "quit\n")
	keys := data + "-keys"
	b, err := os.ReadFile(filepath.Join(data, "installed", "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "local.json")
	os.WriteFile(local, bytes.Replace(b, []byte(`"version": 1,`), []byte(`"version": 7,`), 1), 0o600)
	var log bytes.Buffer
	a := openTestAgent(t, data, &log, "--policy", local)
	publishDemoPolicy(t, keys, 2)
	publishDemoRegistry(t, keys, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil)
	if !a.check(context.Background()) {
		t.Fatalf("nothing installed:\n%s", log.String())
	}
	a.installed <- struct{}{}
	a.between(idle(true))
	if a.policy.Version != 7 || a.registryVersion() != 2 {
		t.Fatalf("policy %d (want the local 7), registry %d (want 2)", a.policy.Version, a.registryVersion())
	}
	if r := a.rules(time.Now()); r.policyVersion != 7 || r.registryVersion != 2 {
		t.Fatalf("reported rules %+v", r)
	}
}

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
