// Package recipients says to whom the phone seals what it records: age X25519 recipients
// ("age1..."), listed in the facility policy's recording.recipients and in the recipients.txt
// a technician installs at enrolment. It is the one place that says what a recipient is, so
// that the policy accepts only recipients the recorder can seal to, and the enrolment's
// recipients are compared with the policy's as the same strings.
//
// It stands apart from package recording, which seals to them, so that the policy (and the
// call machine above it) can check recipients without linking the recorder and its spool.
package recipients

import (
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

// Errors; test with errors.Is.
var (
	// ErrInvalid: a recipient is not an age X25519 recipient.
	ErrInvalid = errors.New("not an age X25519 recipient")
	// ErrEmpty: ParseFile found no recipient in the file.
	ErrEmpty = errors.New("no recipients")
)

// Parse parses one recipient. The error wraps ErrInvalid and age's reason.
func Parse(s string) (*age.X25519Recipient, error) {
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return r, nil
}

// ParseList parses recipients given as strings, in order. The error names the first that
// does not parse, counting from 1. An empty list gives none and no error: whether a caller
// may have none is its own rule.
func ParseList(ss []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, s := range ss {
		r, err := Parse(s)
		if err != nil {
			return nil, fmt.Errorf("recipient %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ParseFile reads a recipients.txt: one recipient per line, spaces around it ignored, blank
// lines and lines beginning with # skipped, at least one recipient (ErrEmpty). It returns
// the recipients as written, the form in which a policy's recipients are compared with them.
// The error names the first line that does not parse, counting from 1.
func ParseFile(b []byte) ([]string, error) {
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := Parse(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, ErrEmpty
	}
	return out, nil
}
