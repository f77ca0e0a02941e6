package vault_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/wallphone/wallphone/backoffice/vault"
	"github.com/wallphone/wallphone/identity"
	"github.com/wallphone/wallphone/purge"
	"github.com/wallphone/wallphone/uplink"
	"github.com/wallphone/wallphone/uplink/s3test"
)

const (
	fac  = "fac1"
	dev  = "wp-0123456789abcdef"
	dev2 = "wp-fedcba9876543210"
	good = "20260314T101500Z-000000000001"
	bad  = "20260314T111500Z-000000000002"
	keep = "20260314T121500Z-000000000003"
)

func put(t *testing.T, c *minio.Client, key string, b []byte) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), s3test.Bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// TestPurge puts three calls of a phone in the vault with the phone's credentials, a
// purge request for the first signed by the phone's enrolled key, one for the second signed
// by another key, and one for a call of another device that names the wrong device; only the
// first call goes, with a receipt.
func TestPurge(t *testing.T) {
	srv := s3test.Start(t)
	phone := srv.Phone(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []string{good, bad, keep} {
		for _, name := range []string{"000000.age", "000001.age", "manifest.age", "record.age"} {
			put(t, phone, uplink.CallPrefix(fac, dev, c)+name, []byte("age-encryption.org/v1\n"+c+name))
		}
	}
	req := func(device, call string, k ed25519.PrivateKey) []byte {
		b, err := purge.Sign(purge.Request{DeviceID: device, CallID: call, Reason: purge.ReasonPrivileged, RegistryVersion: 7, Requested: time.Now()}, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	put(t, phone, uplink.PurgeKey(fac, dev, good), req(dev, good, key))
	put(t, phone, uplink.PurgeKey(fac, dev, bad), req(dev, bad, forger))
	put(t, phone, uplink.PurgeKey(fac, dev2, keep), req(dev, keep, key)) // a request moved to another device's prefix
	put(t, phone, uplink.PurgePrefix+"junk.json", []byte("{}"))

	enrolled := vault.Enrolled{dev: identity.Fingerprint(key.Public().(ed25519.PublicKey)), dev2: strings.Repeat("ab", 16)}
	v, err := vault.New(srv.AdminConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var receipts []*vault.Receipt
	refused := map[string]error{}
	now := time.Date(2026, 3, 20, 9, 0, 0, 0, time.UTC)
	err = v.Purge(context.Background(), enrolled, func() time.Time { return now }, func(o vault.Outcome) {
		if o.Err != nil {
			refused[o.Key] = o.Err
			return
		}
		receipts = append(receipts, o.Receipt)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(receipts) != 1 || receipts[0].CallID != good || len(receipts[0].Deleted) != 4 || !receipts[0].Purged.Equal(now) {
		t.Fatalf("receipts %+v", receipts)
	}
	if len(refused) != 3 {
		t.Fatalf("refused %v, want the forged, the misplaced and the junk request", refused)
	}
	for k, err := range refused {
		if !errors.Is(err, vault.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", k, err)
		}
	}
	if !errors.Is(refused[uplink.PurgeKey(fac, dev, bad)], purge.ErrSignature) && !strings.Contains(refused[uplink.PurgeKey(fac, dev, bad)].Error(), "enrolled") {
		t.Errorf("forged request: %v", refused[uplink.PurgeKey(fac, dev, bad)])
	}

	objs := srv.Objects(t)
	for k := range objs {
		if strings.Contains(k, good) && !strings.HasPrefix(k, uplink.ReceiptPrefix) {
			t.Errorf("%s survived its purge", k)
		}
	}
	for _, c := range []string{bad, keep} {
		if _, ok := objs[uplink.CallPrefix(fac, dev, c)+"000000.age"]; !ok {
			t.Errorf("call %s lost objects on a refused request", c)
		}
	}
	for _, k := range []string{uplink.PurgeKey(fac, dev, bad), uplink.PurgeKey(fac, dev2, keep)} {
		if _, ok := objs[k]; !ok {
			t.Errorf("refused request %s was removed; it must stay for inspection", k)
		}
	}
	var rc vault.Receipt
	if err := json.Unmarshal(objs[uplink.ReceiptKey(fac, dev, good)], &rc); err != nil || rc.Format != vault.ReceiptFormat || len(rc.Deleted) != 4 {
		t.Errorf("receipt object: %v %+v", err, rc)
	}

	// The phone sends the same request again (a crash before it removed its copy): the
	// receipt keeps what the first run deleted.
	put(t, phone, uplink.PurgeKey(fac, dev, good), req(dev, good, key))
	receipts = nil
	if err := v.Purge(context.Background(), enrolled, time.Now, func(o vault.Outcome) {
		if o.Err == nil {
			receipts = append(receipts, o.Receipt)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(receipts) != 1 || len(receipts[0].Deleted) != 4 {
		t.Errorf("second run: %+v", receipts)
	}
}

var enrolledCases = []struct {
	text string
	ok   bool
}{
	{"# devices of fac1\nwp-0123456789abcdef 0123456789abcdef0123456789abcdef\n\nwp-1 ABCDEF0123456789abcdef0123456789\n", true},
	{"", true},
	{"wp-1\n", false},
	{"wp-1 0123\n", false},
	{"wp-1 0123456789abcdef0123456789abcdeg\n", false},
	{"wp/1 0123456789abcdef0123456789abcdef\n", false},
	{"wp-1 0123456789abcdef0123456789abcdef\nwp-1 0123456789abcdef0123456789abcdef\n", false},
}

func TestParseEnrolled(t *testing.T) {
	for _, tc := range enrolledCases {
		e, err := vault.ParseEnrolled([]byte(tc.text))
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.text, err)
		}
		if err != nil && !errors.Is(err, vault.ErrEnrolled) {
			t.Errorf("%q: error not ErrEnrolled: %v", tc.text, err)
		}
		if tc.ok && len(tc.text) > 10 && e["wp-1"] != "abcdef0123456789abcdef0123456789" {
			t.Errorf("fingerprints are not kept in lower case: %v", e)
		}
	}
}

func FuzzParseEnrolled(f *testing.F) {
	for _, tc := range enrolledCases {
		f.Add([]byte(tc.text))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := vault.ParseEnrolled(b)
		if err != nil {
			return
		}
		for d, fp := range e {
			if d == "" || len(fp) != 32 || strings.ToLower(fp) != fp {
				t.Fatalf("accepted %q %q", d, fp)
			}
		}
	})
}
