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

// Note is something ReadCSV did to a row that whoever keeps the list must be shown: an
// extension dropped, letters read on the keypad, one cell read as two numbers, a row merged
// with an earlier one. A row without a note gave exactly one entry, so a list is never
// silently shorter (or longer) than its CSV.
type Note struct {
	Line int
	Text string
}

func (n Note) String() string { return fmt.Sprintf("line %d: %s", n.Line, n.Text) }

// ReadCSV reads the back office's list of privileged numbers: rows of number, kind and an
// optional label, with an optional header row (number,kind,label) and # comment lines;
// empty columns after the label (a spreadsheet's padding) are ignored. A number may be
// written as people write them (see written.go: vanity letters, extensions, two numbers in
// one cell, stray punctuation), as long as what is left is a number the dial plan's
// Written accepts; a prefix is written as "+" and digits ending in "*" ("+1512854*").
// Every bad row is reported with its line number in a *CSVError, and then no row is
// returned: a list that silently lost rows is what this exists to prevent. For the same
// reason, whatever was read other than as written is returned as a note, for the caller to
// show.
func ReadCSV(r io.Reader, plan dialplan.Plan) ([]Item, []Note, error) {
	if err := plan.Validate(); err != nil {
		return nil, nil, err
	}
	cr := newCSVReader(r)
	type seen struct {
		line  int
		kind  Kind
		label string
	}
	first := map[string]seen{}
	var items []Item
	var notes []Note
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
			return nil, nil, fmt.Errorf("registry CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if row == 0 && isHeader(rec) {
			continue
		}
		its, rowNotes, err := parseRow(rec, plan)
		if err != nil {
			bad = append(bad, RowError{line, err})
			continue
		}
		for _, n := range rowNotes {
			notes = append(notes, Note{line, n})
		}
		for _, it := range its {
			key := it.Number + it.Prefix
			f, dup := first[key]
			switch {
			case dup && f.kind != it.Kind:
				bad = append(bad, RowError{line, fmt.Errorf("%w: %s is %s here and %s on line %d", ErrConflict, it, it.Kind, f.kind, f.line)})
			case dup && f.label != it.Label && it.Label != "":
				notes = append(notes, Note{line, fmt.Sprintf("%s is already on line %d: one entry, labelled %q, not %q", it, f.line, f.label, it.Label)})
			case dup:
				notes = append(notes, Note{line, fmt.Sprintf("%s is already on line %d: one entry", it, f.line)})
			default:
				first[key] = seen{line, it.Kind, it.Label}
				items = append(items, it)
			}
		}
	}
	if len(bad) > 0 {
		return nil, nil, &CSVError{bad}
	}
	return items, notes, nil
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	return cr
}

// isHeader reports whether the first row is the header. A spreadsheet may start the file
// with a byte order mark.
func isHeader(rec []string) bool {
	return strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff")), "number")
}

// parseRow reads one row: one item, or more when its cell names more than one number,
// with notes on what was read other than as written.
func parseRow(rec []string, plan dialplan.Plan) ([]Item, []string, error) {
	for len(rec) > 3 && strings.TrimSpace(rec[len(rec)-1]) == "" {
		rec = rec[:len(rec)-1]
	}
	if len(rec) < 2 || len(rec) > 3 {
		return nil, nil, fmt.Errorf("%d columns, want number,kind[,label]", len(rec))
	}
	var it Item
	kind, err := ParseKind(strings.TrimSpace(rec[1]))
	if err != nil {
		return nil, nil, err
	}
	it.Kind = kind
	if len(rec) == 3 {
		it.Label = strings.TrimSpace(rec[2])
		if len(it.Label) > maxLabel || !utf8Valid(it.Label) {
			return nil, nil, fmt.Errorf("label not UTF-8 of at most %d bytes", maxLabel)
		}
	}
	n := strings.TrimSpace(rec[0])
	if p, ok := strings.CutSuffix(tidy(n), "*"); ok {
		p = strings.NewReplacer(" ", "", "-", "", ".", "").Replace(p)
		if !isE164(p, true) {
			return nil, nil, fmt.Errorf("%w: prefix %q: write a prefix as + and 3 to 15 digits, then *", ErrNumber, n)
		}
		it.Prefix = p
		return []Item{it}, nil, nil
	}
	nums, notes, err := readNumbers(n, plan)
	if err != nil {
		return nil, nil, err
	}
	items := make([]Item, len(nums))
	for i, num := range nums {
		items[i] = it
		items[i].Number = num
	}
	if len(nums) > 1 {
		notes = append(notes, fmt.Sprintf("%d numbers in one cell: %s, each an entry of kind %s", len(nums), strings.Join(nums, ", "), it.Kind))
	}
	return items, notes, nil
}
