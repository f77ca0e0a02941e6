package uplink_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/uplink"
)

var configCases = []struct {
	name, json string
	err        string // "" for valid; else a piece of the error
}{
	{"s3", `{"endpoint":"https://s3.eu-west-1.amazonaws.com","bucket":"county-vault","region":"eu-west-1","access_key":"AKIA","secret_key":"s"}`, ""},
	{"s3 with cap and parts", `{"endpoint":"http://10.0.0.5:7070","bucket":"v.1","access_key":"a","secret_key":"s","bandwidth_bytes_per_second":65536,"part_size_bytes":8388608}`, ""},
	{"dir", `{"dir":"/var/lib/wallphone-vault"}`, ""},
	{"dir relative", `{"dir":"vault"}`, "absolute"},
	{"dir and endpoint", `{"dir":"/v","endpoint":"https://x"}`, "not both"},
	{"empty", `{}`, "no endpoint"},
	{"unknown field", `{"endpoint":"https://x","bucket":"abc","access_key":"a","secret_key":"s","secure":true}`, "unknown field"},
	{"trailing", `{"dir":"/v"} {}`, "trailing"},
	{"not json", `endpoint=https://x`, "vault.json"},
	{"ftp", `{"endpoint":"ftp://x","bucket":"abc","access_key":"a","secret_key":"s"}`, "want https"},
	{"path in endpoint", `{"endpoint":"https://x/bucket","bucket":"abc","access_key":"a","secret_key":"s"}`, "only scheme"},
	{"user in endpoint", `{"endpoint":"https://a:b@x","bucket":"abc","access_key":"a","secret_key":"s"}`, "only scheme"},
	{"bucket caps", `{"endpoint":"https://x","bucket":"Vault","access_key":"a","secret_key":"s"}`, "bucket"},
	{"bucket short", `{"endpoint":"https://x","bucket":"v","access_key":"a","secret_key":"s"}`, "bucket"},
	{"no secret", `{"endpoint":"https://x","bucket":"abc","access_key":"a"}`, "secret_key"},
	{"negative cap", `{"dir":"/v","bandwidth_bytes_per_second":-1}`, "bandwidth"},
	{"small parts", `{"endpoint":"https://x","bucket":"abc","access_key":"a","secret_key":"s","part_size_bytes":1024}`, "part_size_bytes"},
}

func TestParseConfig(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := uplink.ParseConfig([]byte(tc.json))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tc.err)
			case tc.err != "" && (!strings.Contains(err.Error(), tc.err) || !errors.Is(err, uplink.ErrConfig)):
				t.Fatalf("error %q, want ErrConfig with %q", err, tc.err)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	if len(configCases) == 0 {
		f.Fatal("no seeds")
	}
	for _, tc := range configCases {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := uplink.ParseConfig(b)
		if err != nil {
			if !errors.Is(err, uplink.ErrConfig) {
				t.Fatalf("error not ErrConfig: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed but not valid: %v", err)
		}
		if (c.Dir == "") == (c.Endpoint == "") {
			t.Fatalf("accepted with dir %q and endpoint %q", c.Dir, c.Endpoint)
		}
	})
}
