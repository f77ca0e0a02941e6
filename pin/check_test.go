package pin

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		pin  string
		want error
	}{
		{"1234", nil},
		{"0000", nil},
		{"98765", nil},
		{"123456789012", nil},
		{"", ErrLength},
		{"123", ErrLength},
		{"1234567890123", ErrLength},
		{"12a4", ErrDigits},
		{"12 4", ErrDigits},
		{"*123", ErrDigits}, // the keypad has * and #, but they clear and submit
		{"123#", ErrDigits},
		{"-123", ErrDigits},
		{"١٢٣٤", ErrDigits}, // digits, but not ones a keypad sends
		{"12a", ErrLength},  // too short comes first
	} {
		if err := Check(tc.pin); !errors.Is(err, tc.want) {
			t.Errorf("Check(%q) = %v, want %v", tc.pin, err, tc.want)
		}
	}
	// The errors are said to whoever chose the PIN, as they are.
	if ErrLength.Error() != "a PIN has 4 to 12 digits" || ErrDigits.Error() != "a PIN has only the digits 0-9" {
		t.Errorf("ErrLength %q, ErrDigits %q", ErrLength, ErrDigits)
	}
}
