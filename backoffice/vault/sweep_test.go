package vault_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/backoffice/vault"
	"github.com/wallphone/wallphone/callrecord"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/registry"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/uplink"
)

const (
	attorney = "+15125550100" // in the registry the sweep checks against
	friend   = "+15125550123" // not
	// The calls of the sweep tests.
	toAttorney = "20260314T101500Z-000000000001"
	toFriend   = "20260314T111500Z-000000000002"
	sealedAway = "20260314T121500Z-000000000003" // to the attorney, sealed to another investigator
	notRecord  = "20260314T131500Z-000000000004" // a free call: a record, no recording
)

// calls is a phone's call log, as the uplink ships it.
type calls map[string]callrecord.Record

func (c calls) Calls(fn func(string, []byte) error) error {
	for id, r := range c {
		b, err := r.Encode()
		if err != nil {
			return err
		}
		if err := fn(id, b); err != nil {
			return err
		}
	}
	return nil
}

// shipCalls records calls with the real recorder into a real spool and ships them, with the
// call records, through the phone's uplink to the vault. It returns the device key.
func shipCalls(t *testing.T, be backend, investigator, other *age.X25519Identity) ed25519.PrivateKey {
	t.Helper()
	dir := t.TempDir()
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	log := calls{}
	for _, c := range []struct {
		id, number string
		to         *age.X25519Identity
	}{{toAttorney, attorney, investigator}, {toFriend, friend, investigator}, {sealedAway, attorney, other}} {
		rec, err := recording.New(recording.Options{Spool: sp, Recipients: []string{c.to.Recipient().String()},
			Segment: time.Second, DeviceID: dev, DeviceKey: devKey})
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		r, err := rec.Start(recording.CallInfo{CallID: c.id, CallerID: "1001", E164: c.number,
			Decision: "recorded", Reason: "default_recorded", Started: started})
		if err != nil {
			t.Fatal(err)
		}
		var a, b audio.Frame
		for range 60 { // 1.2 s: two segments
			if err := r.Write(&a, &b); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := rec.Close(); err != nil {
			t.Fatal(err)
		}
		log[c.id] = callrecord.Record{CallID: c.id, DeviceID: dev, Started: started, Decision: "recorded",
			Number: c.number, Recorded: true, RegistryVersion: 1}
	}
	log[notRecord] = callrecord.Record{CallID: notRecord, DeviceID: dev, Decision: "free", RegistryVersion: 1}
	state, err := uplink.OpenState(filepath.Join(dir, "uplink.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	u, err := uplink.New(uplink.Options{Vault: be.phone(t), Spool: sp, Facility: fac, DeviceID: dev,
		Calls: log, State: state, Recipients: []age.Recipient{investigator.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	return devKey
}

// buildRegistry writes a registry of version 2 that names the attorney.
func buildRegistry(t *testing.T) *registry.Set {
	t.Helper()
	p := filepath.Join(t.TempDir(), "v2.reg")
	var b bytes.Buffer
	if err := registry.Build(&b, 2, []registry.Item{{Number: attorney, Kind: registry.Attorney}, {Prefix: "+1800", Kind: registry.Hotline}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// TestSweep ships calls recorded by the real recorder through the phone's uplink, then sweeps
// the vault against a registry that names one number: a dry run touches nothing; the sweep
// destroys every object of the privileged call (segments, manifest, call record) with a
// receipt, leaves the other calls, reports the call it cannot open, and says no number
// anywhere; run again it finds nothing to do, and it finishes a destruction cut short.
func TestSweep(t *testing.T) { forEachBackend(t, testSweep) }

func testSweep(t *testing.T, be backend) {
	ctx := context.Background()
	investigator, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	devKey := shipCalls(t, be, investigator, other)
	before := be.objects(t)
	attorneyPrefix := uplink.CallPrefix(fac, dev, toAttorney)
	var doomed []string
	for k := range before {
		if strings.HasPrefix(k, attorneyPrefix) {
			doomed = append(doomed, k)
		}
	}
	if len(doomed) != 4 {
		t.Fatalf("the attorney call has %d objects in the vault (%v), want 2 segments, the manifest and the record", len(doomed), doomed)
	}
	v, err := vault.New(be.admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := buildRegistry(t)
	now := time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC)
	opts := vault.SweepOptions{Identities: []age.Identity{investigator}, Registry: reg, Now: func() time.Time { return now }}
	sweep := func(o vault.SweepOptions) (vault.SweepSummary, map[string]vault.SweepOutcome) {
		t.Helper()
		got := map[string]vault.SweepOutcome{}
		sum, err := v.Sweep(ctx, o, func(out vault.SweepOutcome) {
			if _, dup := got[out.Call.ID]; dup {
				t.Errorf("call %s reported twice", out.Call.ID)
			}
			got[out.Call.ID] = out
			for _, s := range []string{attorney, friend, attorney[2:], friend[2:]} {
				if out.Err != nil && strings.Contains(out.Err.Error(), s) {
					t.Errorf("an outcome's error names a number: %v", out.Err)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return sum, got
	}

	dry := opts
	dry.DryRun = true
	sum, got := sweep(dry)
	if want := (vault.SweepSummary{Checked: 2, Privileged: 1, Unreadable: 1}); sum != want {
		t.Errorf("dry run: %+v, want %+v", sum, want)
	}
	if o := got[toAttorney]; !o.Privileged || o.Receipt != nil || o.Err != nil || o.Call != (vault.Call{Facility: fac, Device: dev, ID: toAttorney}) {
		t.Errorf("dry run, the attorney call: %+v", o)
	}
	if after := be.objects(t); len(after) != len(before) {
		t.Errorf("the dry run changed the vault: %d objects, were %d", len(after), len(before))
	}

	sum, got = sweep(opts)
	if want := (vault.SweepSummary{Checked: 2, Privileged: 1, Destroyed: 1, Deleted: 4, Unreadable: 1}); sum != want {
		t.Errorf("sweep: %+v, want %+v", sum, want)
	}
	if len(got) != 2 {
		t.Errorf("outcomes %v, want the attorney call and the call it cannot open", got)
	}
	if o := got[sealedAway]; !errors.Is(o.Err, vault.ErrUnreadable) || !errors.Is(o.Err, recording.ErrNoIdentity) || o.Privileged {
		t.Errorf("the call sealed to another investigator: %+v, want ErrUnreadable and ErrNoIdentity", o)
	}
	rc := got[toAttorney].Receipt
	if rc == nil || rc.FoundBy != vault.FoundBySweep || rc.RegistryVersion != 2 || rc.Reason != "privileged" || len(rc.Deleted) != 4 ||
		rc.DeviceKey != identity.Fingerprint(devKey.Public().(ed25519.PublicKey)) || !rc.Purged.Equal(now) || rc.Request != "" {
		t.Fatalf("receipt %+v", rc)
	}
	after := be.objects(t)
	for _, k := range doomed {
		if _, ok := after[k]; ok {
			t.Errorf("%s survived the sweep", k)
		}
	}
	for _, c := range []string{toFriend, sealedAway} {
		if _, ok := after[uplink.ManifestKey(fac, dev, c)]; !ok {
			t.Errorf("call %s lost its manifest", c)
		}
	}
	if _, ok := after[uplink.RecordKey(fac, dev, notRecord)]; !ok {
		t.Error("the record of a call that was not recorded is gone")
	}
	stored := after[uplink.ReceiptKey(fac, dev, toAttorney)]
	var rcStored vault.Receipt
	if err := json.Unmarshal(stored, &rcStored); err != nil || rcStored.FoundBy != vault.FoundBySweep || len(rcStored.Deleted) != 4 {
		t.Errorf("receipt object %q: %v", stored, err)
	}
	for k, b := range after {
		if !strings.HasSuffix(k, ".age") && (bytes.Contains(b, []byte(attorney[2:])) || bytes.Contains(b, []byte(friend[2:]))) {
			t.Errorf("%s names a number in the clear: %s", k, b)
		}
	}

	// After the next registry release: nothing new, and a call destroyed before is no error.
	sum, got = sweep(opts)
	if want := (vault.SweepSummary{Checked: 1, Unreadable: 1}); sum != want || len(got) != 1 {
		t.Errorf("second sweep: %+v %v, want %+v", sum, got, want)
	}

	// A sweep cut short after the receipt is written still has the manifest in the vault
	// (it goes last): the next one finishes the call, and the receipt keeps its list.
	be.put(t, uplink.ManifestKey(fac, dev, toAttorney), before[uplink.ManifestKey(fac, dev, toAttorney)])
	sum, got = sweep(opts)
	if sum.Destroyed != 1 || got[toAttorney].Receipt == nil || len(got[toAttorney].Receipt.Deleted) != 4 {
		t.Errorf("finishing a cut sweep: %+v %+v", sum, got[toAttorney])
	}
	if _, ok := be.objects(t)[uplink.ManifestKey(fac, dev, toAttorney)]; ok {
		t.Error("the manifest of a cut sweep is still there")
	}

	// A privileged call's manifest filed under another call's key is not acted on: what is
	// under that key is not the call the manifest speaks of.
	moved := "20260314T141500Z-000000000005"
	be.put(t, uplink.ManifestKey(fac, dev, moved), before[uplink.ManifestKey(fac, dev, toAttorney)])
	be.put(t, uplink.SegmentKey(fac, dev, moved, 0), before[uplink.SegmentKey(fac, dev, toAttorney, 0)])
	_, got = sweep(opts)
	if o := got[moved]; !errors.Is(o.Err, vault.ErrUnreadable) || o.Privileged {
		t.Errorf("a manifest under another call's key: %+v", o)
	}
	if _, ok := be.objects(t)[uplink.SegmentKey(fac, dev, moved, 0)]; !ok {
		t.Error("a manifest under another call's key had that call destroyed")
	}
}
