package audio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseCatalog(t *testing.T) {
	const h = catalogHeader + "\n"
	for _, tc := range []struct {
		name string
		in   string
		want []CatalogEntry
	}{
		{"header only", h, nil},
		{"comments and blanks", "# about\n\n" + h + "# more\n\nbusy\ten\tBusy.\n", []CatalogEntry{
			{ID: "busy", Lang: English, SSML: "Busy.", Text: "Busy."},
		}},
		{"no final newline", h + "busy\tes\tOcupado.", []CatalogEntry{
			{ID: "busy", Lang: Spanish, SSML: "Ocupado.", Text: "Ocupado."},
		}},
		{"markup", h + "greeting\ten\t<s xml:lang=\"en-us\">Press 1.</s>  <s xml:lang=\"es-419\">Oprima 2.</s>\n", []CatalogEntry{
			{ID: "greeting", Lang: English, SSML: `<s xml:lang="en-us">Press 1.</s>  <s xml:lang="es-419">Oprima 2.</s>`, Text: "Press 1. Oprima 2."},
		}},
		{"same id two languages", h + "x\ten\tA.\nx\tes\tB.\n", []CatalogEntry{
			{ID: "x", Lang: English, SSML: "A.", Text: "A."},
			{ID: "x", Lang: Spanish, SSML: "B.", Text: "B."},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCatalog(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseCatalogErrors(t *testing.T) {
	const h = catalogHeader + "\n"
	for _, tc := range []struct {
		name string
		in   string
		line int
		msg  string
		is   error
	}{
		{"empty", "", 0, "no header", nil},
		{"comments only", "# x\n", 0, "no header", nil},
		{"wrong header", "# x\nid\ttext\tlang\n", 2, "want the header", nil},
		{"two fields", h + "busy\tBusy.\n", 2, "want 3 tab-separated fields, got 2", nil},
		{"four fields", h + "busy\ten\tBusy.\textra\n", 2, "got 4", nil},
		{"empty text", h + "busy\ten\t\n", 2, "busy/en: empty text", nil},
		{"markup only", h + "busy\ten\t<s></s>\n", 2, "no words", nil},
		{"padded text", h + "busy\ten\tBusy. \n", 2, "white space", nil},
		{"unknown language", h + "busy\tfr\tOccupé.\n", 2, `"fr"`, ErrUnknownLang},
		{"upper-case language", h + "busy\tEN\tBusy.\n", 2, `"EN"`, ErrUnknownLang},
		{"path in id", h + "../busy\ten\tBusy.\n", 2, "bad id", nil},
		{"empty id", h + "\ten\tBusy.\n", 2, "bad id", nil},
		{"duplicate", h + "busy\ten\tBusy.\n\nbusy\ten\tEngaged.\n", 4, "busy/en repeats line 2", nil},
		{"carriage return", h + "busy\ten\tBusy.\r\n", 2, "carriage return", nil},
		{"ampersand", h + "busy\ten\tBusy &amp; gone.\n", 2, `"&"`, nil},
		{"unclosed tag", h + "busy\ten\t<s Busy.\n", 2, `"<" without ">"`, nil},
		{"nested tag", h + "busy\ten\t<s <b>> Busy.\n", 2, `"<" without ">"`, nil},
		{"stray close", h + "busy\ten\tBusy >.\n", 2, `">" without "<"`, nil},
		{"control character", h + "busy\ten\tBu\x00sy.\n", 2, "control character", nil},
		{"not UTF-8", h + "busy\ten\tBu\xffsy.\n", 2, "UTF-8", nil},
		{"line too long", h + "busy\ten\t" + strings.Repeat("a", 70000) + "\n", 2, "too long", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalog(strings.NewReader(tc.in))
			var ce *CatalogError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *CatalogError", err)
			}
			if ce.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q (line %d), want line %d and %q", err, ce.Line, tc.line, tc.msg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func TestParseLang(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Lang
	}{
		{"en", English}, {"es", Spanish}, {"EN", English}, {"en-US", English}, {"es-419", Spanish},
		{"es_MX", Spanish}, {" es ", Spanish},
	} {
		if got, err := ParseLang(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseLang(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "fr", "english", "e", "-es"} {
		if got, err := ParseLang(in); !errors.Is(err, ErrUnknownLang) {
			t.Errorf("ParseLang(%q) = %q, %v; want ErrUnknownLang", in, got, err)
		}
	}
}

func formatCatalog(entries []CatalogEntry) []byte {
	var b bytes.Buffer
	b.WriteString(catalogHeader + "\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", e.ID, e.Lang, e.SSML)
	}
	return b.Bytes()
}

func FuzzParseCatalog(f *testing.F) {
	// Seeds: the real catalogue, whole and row by row, so that the fuzzer starts from the
	// markup and the accents the prompts really use.
	real, err := os.ReadFile("prompts/catalog.tsv")
	if err != nil {
		f.Fatal(err)
	}
	seeds := 0
	f.Add(real)
	seeds++
	for row := range strings.SplitSeq(string(real), "\n") {
		if row == "" || strings.HasPrefix(row, "#") || row == catalogHeader {
			continue
		}
		f.Add([]byte(catalogHeader + "\n" + row + "\n"))
		seeds++
	}
	if seeds < len(required) {
		f.Fatalf("%d seeds: the catalogue lost its rows", seeds)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseCatalog(bytes.NewReader(data))
		if err != nil {
			var ce *CatalogError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CatalogError", err)
			}
			if lines := bytes.Count(data, []byte("\n")) + 1; ce.Line < 0 || ce.Line > lines {
				t.Fatalf("error on line %d of %d: %v", ce.Line, lines, err)
			}
			return
		}
		for _, e := range entries {
			if !validID(string(e.ID)) || (e.Lang != English && e.Lang != Spanish) {
				t.Fatalf("accepted %+v", e)
			}
			if e.Text == "" || strings.ContainsAny(e.Text, "<>&\t\n") || strings.TrimSpace(e.Text) != e.Text {
				t.Fatalf("plain text %q of %+v", e.Text, e)
			}
		}
		again, err := ParseCatalog(bytes.NewReader(formatCatalog(entries)))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !slices.Equal(entries, again) {
			t.Fatalf("round trip changed the entries:\n%+v\n%+v", entries, again)
		}
	})
}
