package provisioning_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/provisioning"
)

// TestEnrolmentKeepsTheAuditLogVerifiable is issue 14, defect 3: enrolment gives the phone a
// new device key, and the audit log must still verify as a whole, across the change and
// across the restart that follows it, from the key the log starts with.
func TestEnrolmentKeepsTheAuditLogVerifiable(t *testing.T) {
	r := newRig(t)
	oldPub, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	path := filepath.Join(r.data, "audit.log")
	log, _, err := audit.Open(path, audit.Options{Key: oldKey, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// The phone as the agent runs it: the console writes to the real log, under the old key.
	r.stop()
	r.devKey, r.auditor = oldPub, log
	r.newServer()
	r.connect()
	r.login()
	r.client.Bye(bg)
	r.enrollAs(r.home)
	if _, err := r.client.Hello(bg); err != nil {
		t.Fatal(err)
	}
	r.stop()
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	// The restart: the agent loads device.key, the key enrolment made, and goes on logging.
	kb, err := os.ReadFile(filepath.Join(r.data, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := identity.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	log, _, err = audit.Open(path, audit.Options{Key: newKey, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Append("decision", map[string]string{"call_id": "after-restart"}); err != nil {
		t.Fatal(err)
	}
	log.Close()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := audit.Verify(bufio.NewReader(f), oldPub)
	if err != nil {
		t.Fatalf("the whole log does not verify from the key it starts with: %v", err)
	}
	// The log names the change once, and ends under the key the phone has now (what its
	// hello shows).
	if newPub := newKey.Public().(ed25519.PublicKey); !sum.Key.Equal(newPub) || len(sum.KeyChanges) != 1 {
		t.Fatalf("key at the end %x, changes %+v; want %x after one change", sum.Key, sum.KeyChanges, newPub)
	}
	// Verifying from the new key alone does not hold: see audit's package doc.
	f.Seek(0, 0)
	if _, err := audit.Verify(bufio.NewReader(f), newKey.Public().(ed25519.PublicKey)); !errors.Is(err, audit.ErrSignature) {
		t.Fatalf("verify from the new key: %v, want %v", err, audit.ErrSignature)
	}
}

// An enrolment whose key change the audit log cannot record is refused, and the phone keeps
// its key: a key the log does not know of would break the log at the next start.
func TestEnrolmentRefusedIfTheAuditLogCannotRecordTheKey(t *testing.T) {
	r := newRig(t)
	oldKey := filepath.Join(r.data, "device.key")
	if _, err := identity.Create(oldKey); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(oldKey)
	r.audit.failChange = errors.New("flash full")
	r.login()
	_, err := r.client.Enroll(bg, map[string][]byte{"audit.key": []byte("k")}, nil)
	if e := wantCode(t, err, provisioning.CodeFailed); !strings.Contains(e.Message, "flash full") {
		t.Fatalf("refusal %q", e.Message)
	}
	if after, _ := os.ReadFile(oldKey); !bytes.Equal(after, before) {
		t.Fatal("device key replaced although the audit log did not record it")
	}
	if fac, _ := provisioning.ReadFacility(r.data); fac != "" {
		t.Fatalf("enrolled as %q", fac)
	}
}
