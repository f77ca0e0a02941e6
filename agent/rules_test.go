package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/call"
	"github.com/wallphone/wallphone/registry"
)

type idle bool

func (i idle) InCall() bool { return !bool(i) }

// A registry installed while a call is under way takes effect when the phone is idle again,
// and then the sweep runs; a registry that drops numbers without listing them is refused and
// the one in force stays.
func TestInstallBetweenCalls(t *testing.T) {
	data, keys := enrolled(t)
	var log syncBuffer
	a, _ := newAgent(t, data, &log, nil)
	t.Cleanup(func() { a.Close() })
	if a.registryVersion() != 1 {
		t.Fatalf("registry %d:\n%s", a.registryVersion(), log.String())
	}

	if err := demo.PublishRegistry(keys, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil); err != nil {
		t.Fatal(err)
	}
	if !a.check(context.Background()) {
		t.Fatalf("nothing installed:\n%s", log.String())
	}
	a.installed <- struct{}{}
	a.between(idle(false), a.clock.Now()) // in a call
	if a.registryVersion() != 1 {
		t.Fatal("the registry changed under a call in progress")
	}
	a.between(idle(true), a.clock.Now())
	if a.registryVersion() != 2 {
		t.Fatal("the new registry did not take effect once idle")
	}
	if _, ok := a.registry.Lookup("+15125550150"); !ok {
		t.Fatal("new number not privileged")
	}

	// Version 3 drops the public defender without listing it: made by hand, past the
	// back-office tool that would refuse it.
	var buf bytes.Buffer
	if err := registry.Build(&buf, 3, demo.Items()[1:], nil, nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(keys, "registry-3.reg")
	os.WriteFile(file, buf.Bytes(), 0o600)
	r, signers, err := demo.Repo(keys)
	if err != nil {
		t.Fatal(err)
	}
	r.AddTarget("registry.reg", file, map[string]int{"version": 3})
	if err := r.Commit(signers, demo.Expiry, a.clock.Now()); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if a.check(context.Background()) {
		t.Fatal("installed a registry that lost an entry")
	}
	if !strings.Contains(log.String(), `"event":"update_error"`) || !strings.Contains(log.String(), "removal log does not reach back") {
		t.Fatalf("refusal not logged:\n%s", log.String())
	}
	a.between(idle(true), a.clock.Now())
	if _, ok := a.registry.Lookup("+15125550100"); !ok || a.registryVersion() != 2 {
		t.Fatal("the public defender is no longer privileged")
	}
}

// A policy given as a local file stays in force when the repository publishes another; the
// registry still comes from the repository.
func TestLocalPolicyNotReplaced(t *testing.T) {
	data, keys := enrolled(t)
	var log syncBuffer
	first, _ := newAgent(t, data, &log, nil)
	first.Close()
	b, err := os.ReadFile(filepath.Join(data, "installed", "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "local.json")
	os.WriteFile(local, bytes.Replace(b, []byte(`"version": 1,`), []byte(`"version": 7,`), 1), 0o600)
	a, _ := newAgent(t, data, &log, func(c *Config) { c.LocalPolicy = local })
	t.Cleanup(func() { a.Close() })
	if err := demo.PublishPolicy(keys, 2); err != nil {
		t.Fatal(err)
	}
	if err := demo.PublishRegistry(keys, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil); err != nil {
		t.Fatal(err)
	}
	if !a.check(context.Background()) {
		t.Fatalf("nothing installed:\n%s", log.String())
	}
	a.installed <- struct{}{}
	a.between(idle(true), a.clock.Now())
	if a.policy.Version != 7 || a.registryVersion() != 2 {
		t.Fatalf("policy %d (want the local 7), registry %d (want 2)", a.policy.Version, a.registryVersion())
	}
	if r := a.rules(a.clock.Now()); r.policyVersion != 7 || r.registryVersion != 2 {
		t.Fatalf("reported rules %+v", r)
	}
}

// TestRecipientsPinned: recordings go only to the recipients a technician installed at
// enrolment. A phone enrolled without any records nothing (its policy is refused: no key may
// receive recordings), and an installed policy is checked against the pins at every start.
func TestRecipientsPinned(t *testing.T) {
	t.Run("none pinned", func(t *testing.T) {
		data, _ := enrolled(t)
		os.Remove(filepath.Join(data, "conf", "recipients.txt"))
		var log syncBuffer
		a, _ := newAgent(t, data, &log, nil)
		t.Cleanup(func() { a.Close() })
		if a.policy != nil || a.recorder != nil {
			t.Fatalf("a phone with no pinned recipients took a policy that records:\n%s", log.String())
		}
		if !strings.Contains(log.String(), "no recording recipients were pinned at enrolment") {
			t.Errorf("the log does not say why:\n%s", log.String())
		}
	})
	t.Run("pins changed since the install", func(t *testing.T) {
		data, _ := enrolled(t)
		var log syncBuffer
		a, _ := newAgent(t, data, &log, nil)
		if a.policy == nil {
			t.Fatalf("no policy:\n%s", log.String())
		}
		a.Close()
		// Another recipient pinned, as a re-enrolment would: the installed policy no longer fits.
		os.WriteFile(filepath.Join(data, "conf", "recipients.txt"),
			[]byte("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n"), 0o600)
		log.Reset()
		a, _ = newAgent(t, data, &log, func(c *Config) { c.CheckAtStart = false })
		t.Cleanup(func() { a.Close() })
		if a.policy != nil {
			t.Fatalf("an installed policy sealing to unpinned recipients is in force:\n%s", log.String())
		}
		if !strings.Contains(log.String(), `"event":"policy_damaged"`) || !strings.Contains(log.String(), "is not one installed on this phone") {
			t.Errorf("the log does not say why:\n%s", log.String())
		}
	})
}

// TestDecisionFromTheRegistryThatDecided: a registry installed while the handset is up waits
// for the call to end; a decision made meanwhile is audited with the version and hash of the
// registry that made it, and marked stale since a newer one is waiting, never with the hash
// of the newer one.
func TestDecisionFromTheRegistryThatDecided(t *testing.T) {
	data, keys := enrolled(t)
	var log syncBuffer
	a, _ := newAgent(t, data, &log, nil)
	t.Cleanup(func() { a.Close() })
	v1 := a.updates.State().Registry.SHA256
	if err := demo.PublishRegistry(keys, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil); err != nil {
		t.Fatal(err)
	}
	if !a.check(context.Background()) {
		t.Fatalf("nothing installed:\n%s", log.String())
	}
	a.installed <- struct{}{}
	a.between(idle(false), a.clock.Now()) // off-hook: registry 2 waits
	if v2 := a.updates.State().Registry.SHA256; v2 == v1 || a.registryVersion() != 1 {
		t.Fatalf("registry 2 should be installed, not in force: %s %s, in force %d", v1, v2, a.registryVersion())
	}
	caller, _ := a.policy.Caller("1001")
	d, err := call.Decide(a.policy, a.registry, caller, "5125550150")
	if err != nil {
		t.Fatal(err)
	}
	d = call.ApplyStale(d, a.policy, a.machineFreshness(a.clock.Now()), a.clock.Now())
	if err := a.Decided("20260101T000000Z-000000000001", a.clock.Now(), d); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(data, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	var e audit.Entry
	if err := json.Unmarshal(lines[len(lines)-1], &e); err != nil {
		t.Fatal(err)
	}
	if e.Fields["registry_version"] != "1" || e.Fields["registry_sha256"] != v1 || e.Fields["registry_stale"] != "true" {
		t.Fatalf("decision audited as %v: want registry 1, its hash %s, stale", e.Fields, v1)
	}
}

// TestReEnrolNewRoot: a technician enrols the phone with another repository's root. From the
// next start that root is trusted (the metadata cached under the old one is dropped), the
// log and the audit log say so, and the new repository's registry installs.
func TestReEnrolNewRoot(t *testing.T) {
	data, _ := enrolled(t)
	var log syncBuffer
	a, _ := newAgent(t, data, &log, nil)
	a.Close()
	other := filepath.Join(t.TempDir(), "other")
	if err := demo.Init(other, nil); err != nil {
		t.Fatal(err)
	}
	if err := demo.PublishRegistry(other, 2, []registry.Item{{Number: "+15125550150", Kind: registry.Consulate}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root.json", "repository.json"} {
		b, err := os.ReadFile(filepath.Join(other, demo.EnrolDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(data, "conf", name), b, 0o600)
	}
	log.Reset()
	a, _ = newAgent(t, data, &log, func(c *Config) { c.CheckAtStart = true })
	t.Cleanup(func() { a.Close() })
	if !strings.Contains(log.String(), `"event":"trust_root_changed"`) {
		t.Errorf("no trust_root_changed in the log:\n%s", log.String())
	}
	if a.registryVersion() != 2 {
		t.Fatalf("the new repository's registry is not in force (version %d):\n%s", a.registryVersion(), log.String())
	}
	b, _ := os.ReadFile(filepath.Join(data, "audit.log"))
	if !bytes.Contains(b, []byte(`"kind":"trust_root_changed"`)) {
		t.Errorf("the audit log does not record the new root:\n%s", b)
	}
}
