package audio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CatalogEntry is one row of a prompt catalogue: the words of one prompt in one language.
type CatalogEntry struct {
	ID   PromptID
	Lang Lang
	// SSML is the text as the catalogue has it, which the speech synthesiser reads: plain
	// words, possibly with <s xml:lang="..."> spans that switch voice.
	SSML string
	// Text is the same words without markup, for logs and transcripts.
	Text string
}

// catalogHeader is the first line that is not a comment. Requiring it catches a file whose
// columns were reordered, which would otherwise parse into nonsense.
const catalogHeader = "id\tlang\ttext"

// ParseCatalog reads a prompt catalogue: a header line "id<TAB>lang<TAB>text", then one row
// per prompt and language; blank lines and lines starting with # are ignored. The rules are
// the ones scripts/gen-prompts.sh applies, so a catalogue that parses here can be spoken
// there. Errors are *CatalogError with the line number.
func ParseCatalog(r io.Reader) ([]CatalogEntry, error) {
	var (
		entries []CatalogEntry
		seen    = map[catalogKey]int{} // row -> line it was first on
		header  bool
		line    int
	)
	sc := bufio.NewScanner(r)
	sc.Split(scanLines)
	for sc.Scan() {
		line++
		s := sc.Text()
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if strings.ContainsRune(s, '\r') {
			return nil, &CatalogError{line, errors.New("carriage return (save the file with Unix line endings)")}
		}
		if !header {
			if s != catalogHeader {
				return nil, &CatalogError{line, fmt.Errorf("want the header %q, got %q", catalogHeader, s)}
			}
			header = true
			continue
		}
		e, err := parseCatalogRow(s)
		if err != nil {
			return nil, &CatalogError{line, err}
		}
		k := catalogKey{e.ID, e.Lang}
		if first, dup := seen[k]; dup {
			return nil, &CatalogError{line, fmt.Errorf("%s/%s repeats line %d", e.ID, e.Lang, first)}
		}
		seen[k] = line
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, &CatalogError{line + 1, err}
	}
	if !header {
		return nil, &CatalogError{0, errors.New("no header line")}
	}
	return entries, nil
}

// scanLines splits at newlines like bufio.ScanLines but keeps a carriage return, which the
// script would read as part of the text, so that the catalogue is refused here too.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

type catalogKey struct {
	id   PromptID
	lang Lang
}

func parseCatalogRow(s string) (CatalogEntry, error) {
	f := strings.Split(s, "\t")
	if len(f) != 3 {
		return CatalogEntry{}, fmt.Errorf("want 3 tab-separated fields, got %d", len(f))
	}
	id, lang, ssml := f[0], f[1], f[2]
	if !validID(id) {
		// The id names a file, so it must not be able to reach outside its directory.
		return CatalogEntry{}, fmt.Errorf("bad id %q: want lower-case letters, digits and _", id)
	}
	l := Lang(lang)
	if l != English && l != Spanish {
		return CatalogEntry{}, fmt.Errorf("%w %q", ErrUnknownLang, lang)
	}
	text, err := plainText(ssml)
	if err != nil {
		return CatalogEntry{}, fmt.Errorf("%s/%s: %w", id, lang, err)
	}
	return CatalogEntry{ID: PromptID(id), Lang: l, SSML: ssml, Text: text}, nil
}

func validID(id string) bool {
	if id == "" {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// plainText checks a catalogue text and returns its words without markup. It is strict about
// what espeak-ng would read differently from what we log: an ampersand starts an SSML entity,
// and an unbalanced angle bracket swallows words.
func plainText(ssml string) (string, error) {
	switch {
	case ssml == "":
		return "", errors.New("empty text")
	case !utf8.ValidString(ssml):
		return "", errors.New("text is not UTF-8")
	case strings.TrimSpace(ssml) != ssml:
		// The script hashes the text as is; trimmed and untrimmed would look alike here.
		return "", errors.New("text starts or ends with white space")
	case strings.ContainsRune(ssml, '&'):
		return "", errors.New(`"&" in text (write "and")`)
	}
	var b strings.Builder
	space := false // a space is owed before the next word
	for rest := ssml; rest != ""; {
		r, n := utf8.DecodeRuneInString(rest)
		switch {
		case r == '<':
			end := strings.IndexAny(rest[1:], "<>")
			if end < 0 || rest[1+end] != '>' {
				return "", errors.New(`"<" without ">"`)
			}
			rest = rest[end+2:]
			continue
		case r == '>':
			return "", errors.New(`">" without "<"`)
		case unicode.IsControl(r):
			return "", fmt.Errorf("control character %U in text", r)
		case unicode.IsSpace(r):
			space = b.Len() > 0
		default:
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteRune(r)
		}
		rest = rest[n:]
	}
	if b.Len() == 0 {
		return "", errors.New("no words in text")
	}
	return b.String(), nil
}
