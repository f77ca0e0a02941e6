package registry

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/dialplan"
)

// TestReadCSVCorpus reads lists shaped like the ones attorneys' offices, defenders and
// hotlines send (testdata/messy.csv: every row read, with notes) and rows that still
// cannot be read (testdata/unreadable.csv: every row refused, with its line and why),
// against golden files. go test ./registry -run TestReadCSVCorpus -update rewrites them;
// read the diff before committing it.
func TestReadCSVCorpus(t *testing.T) {
	for _, name := range []string{"messy", "unreadable"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".csv"))
			if err != nil {
				t.Fatal(err)
			}
			items, notes, err := ReadCSV(bytes.NewReader(in), usPlan)
			var got bytes.Buffer
			var ce *CSVError
			switch {
			case name == "messy" && err != nil:
				t.Fatal(err)
			case name == "unreadable" && !errors.As(err, &ce):
				t.Fatalf("every row should be refused: %v", err)
			case err != nil:
				fmt.Fprintln(&got, err)
			}
			for _, it := range items {
				fmt.Fprintf(&got, "%s\t%s\t%s\n", it, it.Kind, it.Label)
			}
			for _, n := range notes {
				fmt.Fprintf(&got, "note %s\n", n)
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from %s:\n%s", name, path, got.Bytes())
			}
			if ce != nil {
				// One error a data row: nothing that cannot be read goes unreported.
				if rows := dataRows(t, in); len(ce.Rows) != rows {
					t.Errorf("%d rows refused of %d", len(ce.Rows), rows)
				}
				return
			}
			checkNothingSilent(t, in, items, notes)
		})
	}
}

// dataRows counts the rows of a CSV other than comments and the header.
func dataRows(t *testing.T, in []byte) int {
	n := 0
	for _, l := range csvLines(t, in) {
		if !l.header {
			n++
		}
	}
	return n
}

type csvLine struct {
	line   int
	header bool
}

func csvLines(t testing.TB, in []byte) []csvLine {
	cr := newCSVReader(bytes.NewReader(in))
	var out []csvLine
	for {
		rec, err := cr.Read()
		if err != nil {
			return out
		}
		line, _ := cr.FieldPos(0)
		out = append(out, csvLine{line, len(out) == 0 && isHeader(rec)})
	}
}

// checkNothingSilent: every row gave one entry, or has a note that says why not.
func checkNothingSilent(t testing.TB, in []byte, items []Item, notes []Note) {
	noted := map[int]bool{}
	for _, n := range notes {
		noted[n.Line] = true
	}
	plain := 0
	for _, l := range csvLines(t, in) {
		if !l.header && !noted[l.line] {
			plain++
		}
	}
	if len(items) < plain {
		t.Fatalf("%d entries from %d rows without a note: a row was lost silently", len(items), plain)
	}
}

// TestReadNumbers: the number column as written, one behaviour a row. Each of these but
// the plain forms was refused before ReadCSV read numbers as people write them.
func TestReadNumbers(t *testing.T) {
	for _, tt := range []struct {
		in    string
		want  []string
		notes []string // substrings, one a note, in order
		err   error
	}{
		// Plain forms, as before.
		{"(512) 555-0100", []string{"+15125550100"}, nil, nil},
		{"+44 (0)20 7946 0000", []string{"+442079460000"}, nil, nil},
		{"1 (512) 555-0100", []string{"+15125550100"}, nil, nil},
		// Vanity letters, on the keypad.
		{"1-800-LAW-HELP", []string{"+18005294357"}, []string{"keypad letters: 1-800-LAW-HELP is +18005294357"}, nil},
		{"1-800-law-help", []string{"+18005294357"}, []string{"keypad letters"}, nil},
		{"+1 888 4LAWYER", []string{"+18884529937"}, []string{"keypad letters"}, nil},
		{"1-800-FLOWERS-NOW", []string{"+18003569377"}, []string{"keypad letters", `letters beyond the number dropped: "NOW"`}, nil},
		{"800-FLOWERS-NOW", []string{"+18003569377"}, []string{"keypad letters", `"NOW"`}, nil},
		{"1-800-FLOWERS-1", nil, nil, dialplan.ErrTooLong},
		{"+44 20 7946 0000 NOW", nil, nil, dialplan.ErrInvalid},
		{"1-800-LAW", nil, nil, dialplan.ErrTooShort},
		{"512-555-O100", nil, nil, dialplan.ErrCharacter},
		{"5I2-555-0100", nil, nil, dialplan.ErrCharacter},
		{"512-555-01OO", nil, nil, dialplan.ErrCharacter},
		{"55S-555-0100", nil, nil, dialplan.ErrCharacter},
		{"Phone 512-555-0100", nil, nil, dialplan.ErrCharacter},
		// Extensions: dropped, the main number kept.
		{"(512) 555-0199 ext. 12", []string{"+15125550199"}, []string{"extension 12 dropped: the entry is the main number +15125550199"}, nil},
		{"512-555-0199 x12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"512-555-0199x12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"512-555-0199 ext 12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"512-555-0199 #12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"512-555-0199 extension 12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"512-555-0199 Ext: 12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"512-555-0199, ext. 12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"1-800-LAW-HELP x7", []string{"+18005294357"}, []string{"keypad letters", "extension 7"}, nil},
		{"tel:+1-512-555-0199;ext=12", []string{"+15125550199"}, []string{"extension 12"}, nil},
		{"512-555-0199 ext.", nil, nil, dialplan.ErrCharacter},
		{"512-555-0199 ext. 12 Jane", nil, nil, dialplan.ErrCharacter},
		{"tel:5125550199;phone-context=example.com", nil, nil, dialplan.ErrCharacter},
		// Two numbers in one cell.
		{"512-555-0100 / 512-555-0101", []string{"+15125550100", "+15125550101"}, nil, nil},
		{"512-555-0100; 512-555-0101", []string{"+15125550100", "+15125550101"}, nil, nil},
		{"512-555-0100 or 512-555-0101", []string{"+15125550100", "+15125550101"}, nil, nil},
		{"512-555-0100 and (512) 555-0101", []string{"+15125550100", "+15125550101"}, nil, nil},
		{"512-555-0100\n512-555-0101", []string{"+15125550100", "+15125550101"}, nil, nil},
		{"512-555-0100 x1 / 512-555-0101 x2", []string{"+15125550100", "+15125550101"}, []string{"extension 1", "extension 2"}, nil},
		{"512/555-0100", []string{"+15125550100"}, nil, nil},
		{"512-555-0100/0101", nil, nil, dialplan.ErrTooShort},
		{"512-555-0100 / 555-0101", nil, nil, dialplan.ErrTooShort},
		// Stray punctuation and whitespace.
		{"+1\u00a0512\u00a0555\u00a00100", []string{"+15125550100"}, nil, nil},
		{"+1\u202f512\u2009555\u30000100", []string{"+15125550100"}, nil, nil},
		{"512\u2013555\u20140100", []string{"+15125550100"}, nil, nil},
		{"512\u2011555\u22120100", []string{"+15125550100"}, nil, nil},
		{"\u201c512-555-0100\u201d", []string{"+15125550100"}, nil, nil},
		{`"512-555-0100"`, []string{"+15125550100"}, nil, nil},
		{"512-555-0100,", []string{"+15125550100"}, nil, nil},
		{"512-555-0100.", []string{"+15125550100"}, nil, nil},
		{"'5125550100", []string{"+15125550100"}, nil, nil},
		{`="5125550100"`, []string{"+15125550100"}, nil, nil},
		{"\ufeff\u200b512-555-0100\u200e", []string{"+15125550100"}, nil, nil},
		{"\uff0b\uff11 \uff15\uff11\uff12 \uff15\uff15\uff15 \uff10\uff11\uff10\uff10", []string{"+15125550100"}, nil, nil},
		{"\u0665\u0661\u0662\u0665\u0665\u0665\u0660\u0661\u0660\u0660", []string{"+15125550100"}, nil, nil},
		{"512-555-0100 (mobile)", []string{"+15125550100"}, []string{`words dropped: "(mobile)"`}, nil},
		{"Office: 512-555-0100", []string{"+15125550100"}, []string{`words dropped: "Office:"`}, nil},
		{"Tel: 512-555-0100", []string{"+15125550100"}, nil, nil},
		{"5.12555E+09", nil, nil, dialplan.ErrCharacter},
		{"+1 512 555 0100 +1", nil, nil, dialplan.ErrCharacter},
		{"", nil, nil, dialplan.ErrEmpty},
		{"&", nil, nil, dialplan.ErrEmpty},
		{"\u00a0\u201c\u201d", nil, nil, dialplan.ErrEmpty},
	} {
		got, notes, err := readNumbers(tt.in, usPlan)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%q: %v %v, want %v", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%q: %v %v, want %v", tt.in, got, err, tt.want)
			continue
		}
		if len(notes) != len(tt.notes) {
			t.Errorf("%q: notes %q, want %q", tt.in, notes, tt.notes)
			continue
		}
		for i, n := range notes {
			if !strings.Contains(n, tt.notes[i]) {
				t.Errorf("%q: note %q, want %q", tt.in, n, tt.notes[i])
			}
		}
	}
}

// Two numbers in a cell, and a row merged into an earlier one, are notes of ReadCSV.
func TestReadCSVNotesSplitsAndMerges(t *testing.T) {
	in := "512-555-0100 / 512-555-0101,attorney,Doe\n(512) 555-0101,attorney,Doe\n5125550100,attorney,Roe\n"
	items, notes, err := ReadCSV(strings.NewReader(in), usPlan)
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{{Number: "+15125550100", Kind: Attorney, Label: "Doe"}, {Number: "+15125550101", Kind: Attorney, Label: "Doe"}}
	if !slices.Equal(items, want) {
		t.Errorf("items %v, want %v", items, want)
	}
	wantNotes := []Note{
		{1, "2 numbers in one cell: +15125550100, +15125550101, each an entry of kind attorney"},
		{2, "+15125550101 is already on line 1: one entry"},
		{3, `+15125550100 is already on line 1: one entry, labelled "Doe", not "Roe"`},
	}
	if !slices.Equal(notes, wantNotes) {
		t.Errorf("notes\n%q\nwant\n%q", notes, wantNotes)
	}
	checkNothingSilent(t, []byte(in), items, notes)
}
