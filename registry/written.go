package registry

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wallphone/wallphone/dialplan"
)

// This file reads the number column of the back office's CSV as people write it: vanity
// letters, extensions, two numbers in one cell, stray punctuation from word processors and
// spreadsheets. The dial plan's Written stays strict because the phone reads its policy
// file with it; the leniency here is for lists that a person reviews, and everything it
// does beyond tidying is reported as a note. Whatever is read ends in Written, so every
// number still meets the same rules (no seven-digit numbers, valid in its region).
//
// Only the standard library and packages the phone already links are imported here, so
// that the phone binary's dependencies do not grow with the back office's leniency.

// keypad maps A-Z to the digit on the same key of a phone's keypad (ITU E.161).
const keypad = "22233344455566677778889999"

// nanpDigits is the length of a NANP number after its country code 1.
const nanpDigits = 10

type tokenKind int

const (
	tDigits  tokenKind = iota
	tLetters           // ASCII letters only
	tSpace
	tPunct // . - and the slash of "512/555-0100"; kept as written
	tPlus
	tOpen
	tClose
	tSep   // between two numbers: / ; | & , and a line break
	tHash  // an extension mark
	tColon // ends a word before the number ("Office:")
	tOther
)

type token struct {
	kind tokenKind
	text string
}

// tidy undoes what word processors, spreadsheets and copying from web pages do to a
// number: other scripts' and full-width digits, non-breaking and other spaces, typographic
// dashes, invisible direction marks, quotes, a spreadsheet's ="..." and text marker ',
// and punctuation after the number. None of it changes which number is meant.
func tidy(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII
			r -= 0xFEE0
		}
		switch {
		case r == '\n' || r == '\r' || r == 0x2028 || r == 0x2029:
			return '\n'
		case r < 0x80 && r != '"' && r != '\'' && r != '`':
			return r
		case unicode.IsDigit(r):
			return asciiDigit(r)
		case unicode.IsSpace(r):
			return ' '
		case unicode.Is(unicode.Pd, r) || r == '\u2212':
			return '-'
		case unicode.Is(unicode.Cf, r), r == '"', r == '\'', r == '`',
			unicode.Is(unicode.Pi, r), unicode.Is(unicode.Pf, r):
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "=") // ="0100..." keeps a spreadsheet from eating the digits
	return strings.TrimRight(s, " \n,;.:")
}

// asciiDigit maps a decimal digit of any script to its ASCII digit. Unicode keeps every
// script's digits 0-9 in consecutive code points, starting with 0.
func asciiDigit(r rune) rune {
	z := r
	for unicode.IsDigit(z - 1) {
		z--
	}
	return '0' + (r-z)%10
}

func tokenize(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		kind, n := tOther, 1
		switch {
		case c >= '0' && c <= '9':
			kind, n = tDigits, run(s[i:], func(c byte) bool { return c >= '0' && c <= '9' })
		case isLetter(c):
			kind, n = tLetters, run(s[i:], isLetter)
		case c == ' ' || c == '\t':
			kind, n = tSpace, run(s[i:], func(c byte) bool { return c == ' ' || c == '\t' })
		case c == '.' || c == '-':
			kind = tPunct
		case c == '+':
			kind = tPlus
		case c == '(':
			kind = tOpen
		case c == ')':
			kind = tClose
		case c == '/' || c == ';' || c == '|' || c == '&' || c == ',' || c == '\n':
			kind = tSep
		case c == '#':
			kind = tHash
		case c == ':':
			kind = tColon
		case c >= 0x80:
			_, n = utf8.DecodeRuneInString(s[i:])
		}
		out = append(out, token{kind, s[i : i+n]})
		i += n
	}
	return out
}

func run(s string, in func(byte) bool) int {
	n := 0
	for n < len(s) && in(s[n]) {
		n++
	}
	return n
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func text(ts []token) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.text)
	}
	return strings.TrimSpace(b.String())
}

// trimSpace drops space tokens at both ends.
func trimSpace(ts []token) []token {
	for len(ts) > 0 && ts[0].kind == tSpace {
		ts = ts[1:]
	}
	for len(ts) > 0 && ts[len(ts)-1].kind == tSpace {
		ts = ts[:len(ts)-1]
	}
	return ts
}

// readNumbers reads the number column of one row: the E.164 numbers it names and a note
// for each thing done beyond tidying. A prefix ("+1512854*") is not read here.
func readNumbers(cell string, plan dialplan.Plan) ([]string, []string, error) {
	s := tidy(cell)
	if s == "" {
		return nil, nil, fmt.Errorf("%w: %q", dialplan.ErrEmpty, cell)
	}
	s, err := telURI(s)
	if err != nil {
		return nil, nil, err
	}
	parts, seps := split(tokenize(s))
	switch len(parts) {
	case 0:
		return nil, nil, fmt.Errorf("%w: %q", dialplan.ErrEmpty, cell)
	case 1:
		n, notes, err := readOne(parts[0], plan)
		if err != nil {
			return nil, nil, err
		}
		return []string{n}, notes, nil
	}
	var nums, notes []string
	for i, p := range parts {
		n, pn, err := readOne(p, plan)
		if err != nil {
			// "512/555-0100" is one number, written with a slash after the area code.
			if seps == "/" {
				if n, notes, err2 := readOne(slashAsPunct(tokenize(s)), plan); err2 == nil {
					return []string{n}, notes, nil
				}
			}
			return nil, nil, fmt.Errorf("number %d of %d in the cell, %q: %w", i+1, len(parts), text(p), err)
		}
		nums = append(nums, n)
		notes = append(notes, pn...)
	}
	return nums, notes, nil
}

// telURI reads an RFC 3966 link ("tel:+1-512-555-0100;ext=12"); its only parameter
// understood is the extension, written back the way people write it.
func telURI(s string) (string, error) {
	if len(s) < 4 || !strings.EqualFold(s[:4], "tel:") {
		return s, nil
	}
	num, params, _ := strings.Cut(s[4:], ";")
	for p := range strings.SplitSeq(params, ";") {
		switch name, v, _ := strings.Cut(p, "="); {
		case p == "":
		case strings.EqualFold(name, "ext"):
			num += " ext " + v
		default:
			return "", fmt.Errorf("%w: tel: parameter %q", dialplan.ErrCharacter, p)
		}
	}
	return num, nil
}

// split cuts a cell's tokens at the separators between numbers and at a lone "or" or
// "and"; a part that is only an extension ("512-555-0100, ext. 12") stays with the number
// before it. seps is the separators that cut, as written.
func split(ts []token) (parts [][]token, seps string) {
	var cur []token
	cut := func(sep string) {
		if p := trimSpace(cur); len(p) > 0 {
			if len(parts) > 0 && isExtMark(p, 0) {
				parts[len(parts)-1] = append(append(parts[len(parts)-1], token{tSpace, " "}), p...)
			} else {
				parts = append(parts, p)
				if len(parts) > 1 {
					seps += sep
				}
			}
		}
		cur = nil
	}
	prevSep := ""
	for i, t := range ts {
		word := t.kind == tLetters && (strings.EqualFold(t.text, "or") || strings.EqualFold(t.text, "and")) &&
			i > 0 && ts[i-1].kind == tSpace && i+1 < len(ts) && ts[i+1].kind == tSpace
		if t.kind == tSep || word {
			cut(prevSep)
			prevSep = t.text
			continue
		}
		cur = append(cur, t)
	}
	cut(prevSep)
	return parts, seps
}

func slashAsPunct(ts []token) []token {
	for i, t := range ts {
		if t.kind == tSep && t.text == "/" {
			ts[i] = token{tSpace, " "}
		}
	}
	return ts
}

// isExtMark reports whether an extension mark starts at ts[i]: #, x, ext, extn, extension.
func isExtMark(ts []token, i int) bool {
	switch t := ts[i]; t.kind {
	case tHash:
		return true
	case tLetters:
		switch strings.ToLower(t.text) {
		case "x", "ext", "extn", "extension":
			return true
		}
	}
	return false
}

// readOne reads one number: words before a colon and words in parentheses at the end are
// dropped, an extension is dropped, letters are read on the keypad, and what is left must
// be a number Written accepts.
func readOne(ts []token, plan dialplan.Plan) (string, []string, error) {
	whole := text(ts)
	var notes []string
	if spreadsheetExponent(ts) {
		return "", nil, fmt.Errorf("%w: %q is a spreadsheet's rounded number, its digits are lost: format the column as text", dialplan.ErrCharacter, whole)
	}
	// "Office: 512-555-0100"
	if i := leadingWords(ts); i > 0 {
		notes = append(notes, fmt.Sprintf("words dropped: %q", text(ts[:i])))
		ts = trimSpace(ts[i:])
	}
	// "512-555-0100 (mobile)"
	if i := trailingWords(ts); i < len(ts) {
		notes = append(notes, fmt.Sprintf("words dropped: %q", text(ts[i:])))
		ts = trimSpace(ts[:i])
	}
	ext := ""
	for i := 1; i < len(ts); i++ {
		if !isExtMark(ts, i) || !extAllowedAfter(ts[:i]) {
			continue
		}
		rest := ts[i+1:]
		j := 0
		for j < len(rest) && (rest[j].kind == tSpace || rest[j].kind == tPunct || rest[j].kind == tColon || rest[j].kind == tHash) {
			j++
		}
		if j == len(rest) || rest[j].kind != tDigits || len(trimSpace(rest[j+1:])) != 0 {
			return "", nil, fmt.Errorf("%w: %q: an extension is written as ext. and digits after the number", dialplan.ErrCharacter, whole)
		}
		ext = rest[j].text
		ts = trimSpace(ts[:i])
		break
	}
	written, letters, trailing, err := keyed(ts)
	if err != nil {
		return "", nil, fmt.Errorf("%q: %w", whole, err)
	}
	n, dropped, err := writtenNumber(written, trailing, plan)
	if err != nil {
		if letters {
			return "", nil, fmt.Errorf("keypad letters: %w", err)
		}
		return "", nil, err
	}
	if letters {
		notes = append(notes, fmt.Sprintf("keypad letters: %s is %s", text(ts), n))
	}
	if dropped != "" {
		notes = append(notes, fmt.Sprintf("letters beyond the number dropped: %q", dropped))
	}
	if ext != "" {
		notes = append(notes, fmt.Sprintf("extension %s dropped: the entry is the main number %s", ext, n))
	}
	return n, notes, nil
}

// spreadsheetExponent reports the shape 5.12555E+09, which a spreadsheet shows for a
// number column it read as a quantity.
func spreadsheetExponent(ts []token) bool {
	want := []tokenKind{tDigits, tPunct, tDigits, tLetters, tPlus, tDigits}
	if len(ts) != len(want) {
		return false
	}
	for i, k := range want {
		if ts[i].kind != k {
			return false
		}
	}
	return ts[1].text == "." && strings.EqualFold(ts[3].text, "e")
}

// leadingWords returns the length of "Word word:" at the start, or 0.
func leadingWords(ts []token) int {
	for i, t := range ts {
		switch t.kind {
		case tLetters, tSpace:
		case tColon:
			if i > 0 {
				return i + 1
			}
			return 0
		default:
			return 0
		}
	}
	return 0
}

// trailingWords returns where "(word word)" at the end starts, or len(ts).
func trailingWords(ts []token) int {
	if len(ts) == 0 || ts[len(ts)-1].kind != tClose {
		return len(ts)
	}
	for i := len(ts) - 2; i >= 0; i-- {
		switch ts[i].kind {
		case tLetters, tSpace, tPunct:
		case tOpen:
			if i > 0 && i < len(ts)-2 {
				return i
			}
			return len(ts)
		default:
			return len(ts)
		}
	}
	return len(ts)
}

// extAllowedAfter says whether an extension mark may follow these tokens: the number's
// last digits or letters, with at most spaces, dots and dashes between. Letters glued to
// an x ("FAX") never reach here: they are one token.
func extAllowedAfter(ts []token) bool {
	for i := len(ts) - 1; i >= 0; i-- {
		switch ts[i].kind {
		case tDigits, tLetters:
			return true
		case tSpace, tPunct:
		default:
			return false
		}
	}
	return false
}

// keyed returns the number with its letters replaced by their keypad digits, in a form
// Written reads; whether it had letters; and the letters after its last written digit
// (those that could run beyond its length).
func keyed(ts []token) (written string, letters bool, trailing string, err error) {
	var b, after strings.Builder
	for i, t := range ts {
		switch t.kind {
		case tDigits:
			after.Reset()
			b.WriteString(t.text)
		case tLetters:
			if err := lookalike(ts, i); err != nil {
				return "", false, "", err
			}
			if i == 0 {
				return "", false, "", fmt.Errorf("%w: words before the number: %q", dialplan.ErrCharacter, t.text)
			}
			for j := 0; j < len(t.text); j++ {
				b.WriteByte(keypad[t.text[j]|0x20-'a'])
			}
			letters = true
			after.WriteString(t.text)
		case tSpace:
			b.WriteByte(' ')
		case tPunct, tPlus, tOpen, tClose:
			b.WriteString(t.text)
		default:
			return "", false, "", fmt.Errorf("%w: %q", dialplan.ErrCharacter, t.text)
		}
	}
	return b.String(), letters, after.String(), nil
}

// lookalike refuses letters that are more likely digits mistyped than a vanity word: a word
// of only O, I and L (0, 1, 1), or one or two letters glued to digits ("5I2", "01OO").
func lookalike(ts []token, i int) error {
	w := ts[i].text
	if strings.Trim(strings.ToUpper(w), "OIL") == "" {
		return fmt.Errorf("%w: %q where digits belong? write 0 for O, 1 for I and l", dialplan.ErrCharacter, w)
	}
	glued := i > 0 && ts[i-1].kind == tDigits || i+1 < len(ts) && ts[i+1].kind == tDigits
	if glued && len(w) < 3 {
		return fmt.Errorf("%w: %q next to digits: a typo? vanity letters are whole words", dialplan.ErrCharacter, w)
	}
	return nil
}

// writtenNumber reads the keyed form with Written. A vanity number may be written with
// more letters than the number has digits (1-800-FLOWERS-NOW): the switch ignores what is
// dialed beyond a NANP number's ten digits, so the letters beyond them are dropped, and
// returned so that the row gets a note. Digits beyond the number are never dropped: they
// are a typo more likely than a word.
func writtenNumber(written, letters string, plan dialplan.Plan) (string, string, error) {
	n, err := plan.Written(written)
	if err == nil || letters == "" {
		return n, "", err
	}
	var d strings.Builder
	for i := 0; i < len(written); i++ {
		if c := written[i]; c >= '0' && c <= '9' {
			d.WriteByte(c)
		}
	}
	digits := d.String()
	plus := strings.HasPrefix(strings.TrimSpace(written), "+")
	national := strings.TrimPrefix(digits, "1")
	if plus && national == digits || !plus && strings.HasPrefix(digits, "011") {
		return "", "", err // not a NANP number: no length to cut to
	}
	extra := len(national) - nanpDigits
	if extra <= 0 || extra > len(letters) {
		return "", "", err
	}
	cut := digits[:len(digits)-extra]
	if plus {
		cut = "+" + cut
	}
	n, err2 := plan.Written(cut)
	if err2 != nil {
		return "", "", err
	}
	return n, letters[len(letters)-extra:], nil
}
