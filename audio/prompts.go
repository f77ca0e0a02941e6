package audio

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/wallphone/wallphone/audio/g711"
)

// The prompts ship inside the binary so that a phone can never be without its recording
// notice, whatever happens to its flash. They are µ-law already, as the trunk and the
// recordings want them: nothing converts them on the phone.
//
//go:embed prompts/catalog.tsv prompts/*/*.ul
var promptFiles embed.FS

// Clip is one spoken prompt in one language. It is immutable and safe for concurrent use;
// each Source it makes plays it once from the start.
type Clip struct {
	id   PromptID
	lang Lang
	text string
	ulaw []byte // 8 kHz mono G.711 µ-law
}

// ID returns the prompt this clip speaks.
func (c *Clip) ID() PromptID { return c.id }

// Lang returns the language the clip is spoken in, which differs from the one asked for
// when Prompts.Clip fell back to English.
func (c *Clip) Lang() Lang { return c.lang }

// Text returns the words the clip speaks, for the call log.
func (c *Clip) Text() string { return c.text }

// Frames returns the number of frames the clip plays, the last one padded with silence.
func (c *Clip) Frames() int { return (len(c.ulaw) + FrameSamples - 1) / FrameSamples }

// Duration returns how long the clip plays: whole frames, since that is what the caller
// hears before the next thing starts.
func (c *Clip) Duration() time.Duration { return time.Duration(c.Frames()) * FrameDuration }

// Source returns a new player of the clip, for one listener.
func (c *Clip) Source() Source { return &clipPlayer{ulaw: c.ulaw} }

// clipPlayer decodes as it plays rather than holding linear samples, which would double the
// memory the prompts take.
type clipPlayer struct {
	ulaw []byte // what is still to play
}

func (p *clipPlayer) Next(f *Frame) bool {
	if len(p.ulaw) == 0 {
		return false
	}
	n := g711.DecodeUlawFrame(f[:], p.ulaw)
	clear(f[n:])
	p.ulaw = p.ulaw[n:]
	return true
}

// Prompts holds every prompt in every language. It is immutable and safe for concurrent use.
type Prompts struct {
	clips map[catalogKey]*Clip
}

// LoadPrompts loads the prompts built into the binary. It fails, naming the prompt and
// language, if the catalogue and the audio disagree or a required prompt is missing in any
// language, so that a phone with a broken build refuses to start rather than connect a
// recorded call without its notice.
func LoadPrompts() (*Prompts, error) {
	sub, err := fs.Sub(promptFiles, "prompts")
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	return loadPrompts(sub)
}

// loadPrompts reads catalog.tsv and <lang>/<id>.ul from fsys.
func loadPrompts(fsys fs.FS) (*Prompts, error) {
	cat, err := fs.ReadFile(fsys, "catalog.tsv")
	if err != nil {
		return nil, fmt.Errorf("audio: read prompt catalog: %w", err)
	}
	entries, err := ParseCatalog(bytes.NewReader(cat))
	if err != nil {
		return nil, err
	}
	p := &Prompts{clips: make(map[catalogKey]*Clip, len(entries))}
	for _, e := range entries {
		name := clipFile(e.ID, e.Lang)
		data, err := fs.ReadFile(fsys, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%w: %s/%s: no file %s (run scripts/gen-prompts.sh)", ErrMissingAudio, e.ID, e.Lang, name)
		case err != nil:
			return nil, fmt.Errorf("audio: prompt %s/%s: %w", e.ID, e.Lang, err)
		case len(data) == 0:
			return nil, fmt.Errorf("%w: %s/%s: %s is empty", ErrMissingAudio, e.ID, e.Lang, name)
		}
		p.clips[catalogKey{e.ID, e.Lang}] = &Clip{id: e.ID, lang: e.Lang, text: e.Text, ulaw: data}
	}
	for _, l := range langs {
		for _, id := range required {
			if p.clips[catalogKey{id, l}] == nil {
				return nil, fmt.Errorf("%w: %s has no %s row in the catalog", ErrMissingPrompt, id, l)
			}
		}
	}
	files, err := fs.Glob(fsys, "*/*.ul")
	if err != nil {
		return nil, fmt.Errorf("audio: list prompt audio: %w", err)
	}
	for _, name := range files {
		l := Lang(path.Dir(name))
		id := PromptID(path.Base(name[:len(name)-len(".ul")]))
		if p.clips[catalogKey{id, l}] == nil {
			return nil, fmt.Errorf("%w: %s", ErrOrphanAudio, name)
		}
	}
	return p, nil
}

func clipFile(id PromptID, l Lang) string { return string(l) + "/" + string(id) + ".ul" }

// Clip returns prompt id in lang, or in English if lang lacks it (or is not a language the
// phone speaks), so that a caller always hears something they may understand. It returns nil
// only for an id that is in no catalogue row.
func (p *Prompts) Clip(id PromptID, lang Lang) *Clip {
	if c := p.clips[catalogKey{id, lang}]; c != nil {
		return c
	}
	return p.clips[catalogKey{id, English}]
}
