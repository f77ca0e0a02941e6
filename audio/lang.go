package audio

import (
	"fmt"
	"strings"
)

// Lang is a language the prompts are spoken in, as its ISO 639-1 code.
type Lang string

const (
	English Lang = "en"
	Spanish Lang = "es"
)

// langs are the languages every required prompt exists in.
var langs = [...]Lang{English, Spanish}

// ParseLang accepts a language as configuration and caller records spell it: "es",
// "ES", "es-MX", "es_419". The region is ignored because one Spanish voice serves the
// whole facility.
func ParseLang(s string) (Lang, error) {
	primary, _, _ := strings.Cut(s, "-")
	primary, _, _ = strings.Cut(primary, "_")
	l := Lang(strings.ToLower(strings.TrimSpace(primary)))
	for _, known := range langs {
		if l == known {
			return l, nil
		}
	}
	return "", fmt.Errorf("audio: %w %q", ErrUnknownLang, s)
}
