package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/dialplan"
)

var usPlan = dialplan.Plan{Country: "US", AreaCode: "512"}

func TestReadCSV(t *testing.T) {
	in := `number,kind,label
# a comment
(512) 555-0100,public-defender,Demo County Public Defender
+1 512 555 0142,attorney,"Doe, Jane (mobile)"
1-800-555-0199,hotline
+1512854*,court,Court direct lines
+44 20 7946 0000,consulate,UK
`
	got, notes, err := ReadCSV(strings.NewReader(in), usPlan)
	if err != nil || len(notes) != 0 {
		t.Fatal(err, notes)
	}
	want := []Item{
		{Number: "+15125550100", Kind: PublicDefender, Label: "Demo County Public Defender"},
		{Number: "+15125550142", Kind: Attorney, Label: "Doe, Jane (mobile)"},
		{Number: "+18005550199", Kind: Hotline},
		{Prefix: "+1512854", Kind: Court, Label: "Court direct lines"},
		{Number: "+442079460000", Kind: Consulate, Label: "UK"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// No header is fine too.
	if got, _, err := ReadCSV(strings.NewReader("5125550100,court\n"), usPlan); err != nil || len(got) != 1 {
		t.Errorf("no header: %v %v", got, err)
	}
}

func TestReadCSVReportsEveryBadRow(t *testing.T) {
	in := `number,kind,label
(512) 555-0100,attorney,ok
5550100,attorney,seven digits
+15125550100,court,same number as line 2 in another form and kind
512.555.0100,court,duplicate in another form and kind
1-800-FLOWER,hotline,vanity letters one short
+1512854*,judge,bad kind
1512854*,court,prefix without plus
+15125550177
"unclosed,court
`
	_, _, err := ReadCSV(strings.NewReader(in), usPlan)
	var ce *CSVError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	var lines []int
	for _, r := range ce.Rows {
		lines = append(lines, r.Line)
	}
	if want := []int{3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(lines, want) {
		t.Errorf("bad lines %v, want %v\n%v", lines, want, err)
	}
	for _, tt := range []struct {
		i    int
		want error
		msg  string
	}{
		{0, dialplan.ErrTooShort, ""},
		{1, ErrConflict, "court here and attorney on line 2"},
		{2, ErrConflict, "court here and attorney on line 2"},
		{3, dialplan.ErrInvalid, "keypad letters"},
		{4, ErrKind, "judge"},
		{5, ErrNumber, "prefix"},
		{6, nil, "1 columns"},
	} {
		r := ce.Rows[tt.i]
		if tt.want != nil && !errors.Is(r, tt.want) || !strings.Contains(r.Error(), tt.msg) {
			t.Errorf("line %d: %v, want %v %q", r.Line, r, tt.want, tt.msg)
		}
	}
	if !errors.Is(err, ErrConflict) {
		t.Error("errors.Is does not see the rows")
	}
	if _, _, err := ReadCSV(strings.NewReader(""), dialplan.Plan{Country: "FR"}); !errors.Is(err, dialplan.ErrPlan) {
		t.Errorf("bad plan: %v", err)
	}
}
