package audio

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownLang is returned by ParseLang, and for a catalogue row, when a language has no
	// prompts.
	ErrUnknownLang = errors.New("unknown language")
	// ErrMissingAudio is returned by LoadPrompts when a catalogue row has no audio file or an
	// empty one: scripts/gen-prompts.sh was not run after the catalogue changed.
	ErrMissingAudio = errors.New("audio: prompt has no audio")
	// ErrOrphanAudio is returned by LoadPrompts when an audio file has no catalogue row, which
	// would leave its words unknown to the call log.
	ErrOrphanAudio = errors.New("audio: audio file has no catalogue row")
	// ErrMissingPrompt is returned by LoadPrompts when a prompt the call needs is missing for
	// a language. A phone that cannot play the recording notice must not start.
	ErrMissingPrompt = errors.New("audio: prompt missing")
)

// CatalogError reports what is wrong with a prompt catalogue and where.
type CatalogError struct {
	Line int // 1-based; 0 when the fault is the catalogue as a whole
	Err  error
}

func (e *CatalogError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("audio: catalog: %v", e.Err)
	}
	return fmt.Sprintf("audio: catalog line %d: %v", e.Line, e.Err)
}

func (e *CatalogError) Unwrap() error { return e.Err }
