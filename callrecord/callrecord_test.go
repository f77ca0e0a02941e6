package callrecord_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/wallphone/wallphone/callrecord"
)

var (
	started = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	// recorded is a record with every field set, and vector its stored form: the layout in
	// phones' state databases, which a new agent must go on reading.
	recorded = callrecord.Record{
		CallID: "20260501T080000Z-0a1b2c3d4e5f", DeviceID: "wp-0011223344556677",
		Started: started, Ended: started.Add(3 * time.Minute), CallerID: "1001", Language: "en",
		Decision: "recorded", Reason: "default_recorded", PrivilegedKind: "court", Number: "+15125550123",
		RegistryVersion: 7, RegistryStale: true, PolicyVersion: 2, Connected: started.Add(time.Minute),
		Recorded: true, EndReason: "caller_hangup", Destroyed: true, DestroyedRegistryVersion: 8,
	}
	vector = `{"call_id":"20260501T080000Z-0a1b2c3d4e5f","device_id":"wp-0011223344556677",` +
		`"started":"2026-05-01T08:00:00Z","ended":"2026-05-01T08:03:00Z","caller_id":"1001","lang":"en",` +
		`"decision":"recorded","reason":"default_recorded","privileged_kind":"court","number":"+15125550123",` +
		`"registry_version":7,"registry_stale":true,"policy_version":2,"connected":"2026-05-01T08:01:00Z",` +
		`"recorded":true,"end_reason":"caller_hangup","destroyed":true,"destroyed_registry_version":8}`
	// minimal is a session that never got past the ID: the optional fields are left out.
	minimal       = callrecord.Record{CallID: "c1", DeviceID: "wp-1", Started: started, Ended: started, Language: "es", EndReason: "no_input"}
	minimalVector = `{"call_id":"c1","device_id":"wp-1","started":"2026-05-01T08:00:00Z","ended":"2026-05-01T08:00:00Z",` +
		`"lang":"es","registry_version":0,"policy_version":0,"recorded":false,"end_reason":"no_input"}`
)

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    callrecord.Record
		want string
	}{
		{"every field", recorded, vector},
		{"optional fields left out", minimal, minimalVector},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.r.Encode()
			if err != nil || string(b) != tc.want {
				t.Fatalf("Encode = %s, %v\nwant %s", b, err, tc.want)
			}
		})
	}
	if _, err := (callrecord.Record{Started: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).Encode(); err == nil {
		t.Error("Encode of a year JSON cannot hold: no error")
	}
}

// parseCases are what Parse must accept and refuse; the fuzz target starts from them.
var parseCases = []struct {
	name string
	in   string
	want *callrecord.Record // nil: refused
}{
	{"every field", vector, &recorded},
	{"optional fields left out", minimalVector, &minimal},
	// A newer agent's field: still read, or the sweep would skip the record.
	{"unknown field", `{"call_id":"c1","recorded":true,"number":"+15125550123","newer":{"x":1}}`,
		&callrecord.Record{CallID: "c1", Recorded: true, Number: "+15125550123"}},
	{"empty object", `{}`, &callrecord.Record{}},
	{"not JSON", `not json`, nil},
	{"empty", ``, nil},
	{"array", `[]`, nil},
	{"cut short", vector[:len(vector)/2], nil},
	{"trailing data", vector + `{}`, nil},
	{"wrong type", `{"recorded":"yes"}`, nil},
	{"bad time", `{"started":"yesterday"}`, nil},
	{"negative version", `{"registry_version":-1}`, nil},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := callrecord.Parse([]byte(tc.in))
			if tc.want == nil {
				if !errors.Is(err, callrecord.ErrFormat) {
					t.Fatalf("Parse = %+v, %v; want ErrFormat", r, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Encoded to compare: times that are equal need not be ==.
			got, _ := r.Encode()
			want, _ := tc.want.Encode()
			if !bytes.Equal(got, want) {
				t.Fatalf("Parse = %s\nwant %s", got, want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	if len(parseCases) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := callrecord.Parse(b)
		if err != nil {
			if !errors.Is(err, callrecord.ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		// What parses encodes, and the encoding is stable: read back and encoded again, it is
		// the same bytes (the sweep reads a record and writes it back).
		enc, err := r.Encode()
		if err != nil {
			t.Fatalf("a parsed record does not encode: %v", err)
		}
		again, err := callrecord.Parse(enc)
		if err != nil {
			t.Fatalf("an encoded record does not parse: %v\n%s", err, enc)
		}
		if enc2, _ := again.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encode, parse, encode changed the record:\n%s\n%s", enc, enc2)
		}
	})
}
