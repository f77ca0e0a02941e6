package tufclient

import (
	"strings"
	"testing"
)

var repositoryCases = []struct {
	in   string
	want string // "" for an error
}{
	{`{"url": "https://tuf.vendor.example/repo"}`, "https://tuf.vendor.example/repo"},
	{`{"url": "http://10.0.0.5:8080/"}`, "http://10.0.0.5:8080/"},
	{`{"url": "file:///srv/repo"}` + "\n", "file:///srv/repo"},
	{`{"url": "ftp://x/repo"}`, ""},
	{`{"url": "https://"}`, ""},
	{`{"url": "repo"}`, ""},
	{`{"url": "https://x", "mirror": "y"}`, ""}, // unknown fields are refused
	{`{"url": "https://x"}}`, ""},               // and anything after the value
	{`[]`, ""},
	{``, ""},
}

func TestParseRepository(t *testing.T) {
	for _, tc := range repositoryCases {
		got, err := ParseRepository([]byte(tc.in))
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %q", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
		// What Marshal writes reads back the same.
		again, err := ParseRepository(Repository{URL: got}.Marshal())
		if err != nil || again != got {
			t.Errorf("%q: round trip %q, %v", tc.in, again, err)
		}
	}
}

func FuzzParseRepository(f *testing.F) {
	for _, tc := range repositoryCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseRepository(b)
		if err != nil {
			return
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "file:") {
			t.Fatalf("accepted %q", u)
		}
		if again, err := ParseRepository(Repository{URL: u}.Marshal()); err != nil || again != u {
			t.Fatalf("round trip of %q: %q, %v", u, again, err)
		}
	})
}

func TestValidRoot(t *testing.T) {
	for _, b := range []string{``, `{}`, `{"signed":{}}`, `not json`} {
		if ValidRoot([]byte(b)) == nil {
			t.Errorf("%q accepted as a root", b)
		}
	}
}
