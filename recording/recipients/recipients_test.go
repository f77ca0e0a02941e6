package recipients_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/recording/recipients"
)

// Two age X25519 recipients whose identities nobody kept.
const (
	recipientA = "age1uwdjl4mgf073yp3m3w2fw3p7cqpk9klcnd527hvyvgv5s0zcdv2sxggeq6"
	recipientB = "age19phwxrk7zsc2tulwgw67xkz8l4epjghzjpj34j6r3sjh5qqe4qnqq2c6g3"
	// badChecksum is recipientB with its last character changed.
	badChecksum = "age19phwxrk7zsc2tulwgw67xkz8l4epjghzjpj34j6r3sjh5qqe4qnqq2c6gq"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{recipientA, true},
		{recipientB, true},
		{badChecksum, false},
		{"ssh-ed25519 AAAA", false},
		{"AGE-SECRET-KEY-1QQQQ", false}, // an identity is not a recipient
		{" " + recipientA, false},       // the file's spaces are ParseFile's to trim
		{"", false},
	} {
		r, err := recipients.Parse(tc.in)
		switch {
		case tc.ok && (err != nil || r.String() != tc.in):
			t.Errorf("Parse(%q) = %v, %v; want it back", tc.in, r, err)
		case !tc.ok && !errors.Is(err, recipients.ErrInvalid):
			t.Errorf("Parse(%q) = %v, %v; want ErrInvalid", tc.in, r, err)
		}
	}
}

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []string
		n       int
		wantErr string // "" for none
	}{
		{"two", []string{recipientA, recipientB}, 2, ""},
		{"the same twice", []string{recipientA, recipientA}, 2, ""}, // the policy refuses that, not the parser
		{"none", nil, 0, ""},
		{"second bad", []string{recipientA, badChecksum}, 0, "recipient 2: not an age X25519 recipient"},
		{"first bad", []string{"age1nope", recipientA}, 0, "recipient 1: not an age X25519 recipient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := recipients.ParseList(tc.in)
			if tc.wantErr != "" {
				if !errors.Is(err, recipients.ErrInvalid) || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("ParseList = %v, %v; want an error beginning %q", rs, err, tc.wantErr)
				}
				return
			}
			if err != nil || len(rs) != tc.n {
				t.Fatalf("ParseList = %v, %v; want %d recipients", rs, err, tc.n)
			}
		})
	}
}

// fileCases are recipients.txt files; the fuzz target starts from them.
var fileCases = []struct {
	name    string
	in      string
	want    []string
	wantErr error  // nil: none
	line    string // the line the error names
}{
	{"one", recipientA + "\n", []string{recipientA}, nil, ""},
	{"no final newline", recipientA, []string{recipientA}, nil, ""},
	{"comments, blank lines, spaces and CRLF", "# investigations\r\n\r\n  " + recipientA + "  \r\n# escrow\n\t" + recipientB + "\n",
		[]string{recipientA, recipientB}, nil, ""},
	{"empty", "", nil, recipients.ErrEmpty, ""},
	{"only comments", "# nobody yet\n\n", nil, recipients.ErrEmpty, ""},
	{"not a recipient", recipientA + "\nssh-ed25519 AAAA\n", nil, recipients.ErrInvalid, "line 2: "},
	{"bad checksum", "# one\n\n" + badChecksum + "\n", nil, recipients.ErrInvalid, "line 3: "},
	{"two on a line", recipientA + " " + recipientB + "\n", nil, recipients.ErrInvalid, "line 1: "},
	{"comment after a recipient", recipientA + " # inv\n", nil, recipients.ErrInvalid, "line 1: "},
}

func TestParseFile(t *testing.T) {
	for _, tc := range fileCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recipients.ParseFile([]byte(tc.in))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.HasPrefix(err.Error(), tc.line) {
					t.Fatalf("ParseFile = %q, %v; want %v naming %q", got, err, tc.wantErr, tc.line)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseFile = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzParseFile(f *testing.F) {
	if len(fileCases) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, tc := range fileCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := recipients.ParseFile(b)
		if err != nil {
			if !errors.Is(err, recipients.ErrInvalid) && !errors.Is(err, recipients.ErrEmpty) {
				t.Fatalf("error is neither ErrInvalid nor ErrEmpty: %v", err)
			}
			return
		}
		// Whatever the file gives, the recorder can seal to, and a file of just those lines
		// gives them again.
		if len(got) == 0 {
			t.Fatal("no recipients and no error")
		}
		if _, err := recipients.ParseList(got); err != nil {
			t.Fatalf("ParseFile gave %q, which ParseList refuses: %v", got, err)
		}
		again, err := recipients.ParseFile([]byte(strings.Join(got, "\n")))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ParseFile of its own result %q = %q, %v", got, again, err)
		}
	})
}
