package registry

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/wallphone/wallphone/dialplan"
)

// RowError is one refused row of a registry CSV.
type RowError struct {
	Line int
	Err  error
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e RowError) Unwrap() error { return e.Err }

// CSVError lists every refused row of a registry CSV, in line order; nothing of such a file
// is used.
type CSVError struct{ Rows []RowError }

func (e *CSVError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "registry CSV: %d bad rows", len(e.Rows))
	for _, r := range e.Rows {
		b.WriteString("\n  ")
		b.WriteString(r.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see each row's error.
func (e *CSVError) Unwrap() []error {
	out := make([]error, len(e.Rows))
	for i, r := range e.Rows {
		out[i] = r
	}
	return out
}

// ReadCSV reads the back office's list of privileged numbers: rows of number, kind and an
// optional label, with an optional header row (number,kind,label) and # comment lines. A
// number may be written in any form the dial plan's Written accepts; a prefix is written as
// "+" and digits ending in "*" ("+1512854*"). Every bad row is reported with its line
// number in a *CSVError, and then no row is returned: a list that silently lost rows is
// what this exists to prevent.
func ReadCSV(r io.Reader, plan dialplan.Plan) ([]Item, error) {
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	type seen struct {
		line int
		kind Kind
	}
	first := map[string]seen{}
	var items []Item
	var bad []RowError
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			bad = append(bad, RowError{Line: pe.Line, Err: pe.Err})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registry CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if row == 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "number") {
			continue
		}
		it, err := parseRow(rec, plan)
		if err != nil {
			bad = append(bad, RowError{line, err})
			continue
		}
		key := it.Number + it.Prefix
		if f, dup := first[key]; dup {
			if f.kind != it.Kind {
				bad = append(bad, RowError{line, fmt.Errorf("%w: %s is %s here and %s on line %d", ErrConflict, it, it.Kind, f.kind, f.line)})
			} else {
				bad = append(bad, RowError{line, fmt.Errorf("%w: %s is already on line %d", ErrDuplicate, it, f.line)})
			}
			continue
		}
		first[key] = seen{line, it.Kind}
		items = append(items, it)
	}
	if len(bad) > 0 {
		return nil, &CSVError{bad}
	}
	return items, nil
}

func parseRow(rec []string, plan dialplan.Plan) (Item, error) {
	if len(rec) < 2 || len(rec) > 3 {
		return Item{}, fmt.Errorf("%d columns, want number,kind[,label]", len(rec))
	}
	var it Item
	kind, err := ParseKind(strings.TrimSpace(rec[1]))
	if err != nil {
		return it, err
	}
	it.Kind = kind
	if len(rec) == 3 {
		it.Label = strings.TrimSpace(rec[2])
		if len(it.Label) > maxLabel || !utf8Valid(it.Label) {
			return it, fmt.Errorf("label not UTF-8 of at most %d bytes", maxLabel)
		}
	}
	n := strings.TrimSpace(rec[0])
	if p, ok := strings.CutSuffix(n, "*"); ok {
		p = strings.NewReplacer(" ", "", "-", "", ".", "").Replace(p)
		if !isE164(p, true) {
			return it, fmt.Errorf("%w: prefix %q: write a prefix as + and 3 to 15 digits, then *", ErrNumber, n)
		}
		it.Prefix = p
		return it, nil
	}
	if it.Number, err = plan.Written(n); err != nil {
		return it, err
	}
	return it, nil
}
