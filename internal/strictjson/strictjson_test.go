package strictjson

import (
	"errors"
	"testing"
)

type conf struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		trailing bool
	}{
		{`{"a":1}`, true, false},
		{" {\"a\":1,\"b\":\"x\"}\n\t ", true, false},
		{`{"a":1,"c":2}`, false, false},
		{`{"a":"one"}`, false, false},
		{`{"a":1}{}`, false, true},
		{`{"a":1}}`, false, true},
		{`{"a":1}]`, false, true},
		{`{"a":1} x`, false, true},
		{`{"a":1`, false, false},
		{``, false, false},
	} {
		var c conf
		err := Decode([]byte(tc.in), &c)
		if (err == nil) != tc.ok || errors.Is(err, ErrTrailing) != tc.trailing {
			t.Errorf("Decode(%q) = %v", tc.in, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`{"a":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c conf
		if Decode(b, &c) == nil {
			var again conf
			if err := Decode(b, &again); err != nil || again != c {
				t.Fatalf("not repeatable: %v", err)
			}
		}
	})
}
