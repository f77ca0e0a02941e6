package device

import "testing"

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		k    Key
		want bool
	}{
		{'0', true}, {'5', true}, {'9', true}, {'*', true}, {'#', true},
		{'A', true}, {'B', true}, {'C', true}, {'D', true},
		{'a', false}, {'d', false}, {'E', false}, {'@', false}, // '@' is just below 'A'
		{'/', false}, {':', false}, // just below '0' and above '9'
		{'+', false}, {' ', false}, {0, false}, {-1, false},
		{'٣', false}, {'０', false}, // Arabic-Indic and full-width digits
	} {
		if got := ValidKey(tc.k); got != tc.want {
			t.Errorf("ValidKey(%q) = %v, want %v", tc.k, got, tc.want)
		}
	}
}

func TestValidKeyCount(t *testing.T) {
	// A 4x4 keypad has sixteen keys, and nothing else is one.
	var keys []Key
	for k := Key(-1); k <= 0x10ffff; k++ {
		if ValidKey(k) {
			keys = append(keys, k)
		}
	}
	if got := string(runes(keys)); got != "#*0123456789ABCD" {
		t.Errorf("valid keys %q, want #*0123456789ABCD", got)
	}
}

func runes(ks []Key) []rune {
	out := make([]rune, len(ks))
	for i, k := range ks {
		out[i] = rune(k)
	}
	return out
}
