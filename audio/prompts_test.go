package audio

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math"
	"os"
	"path"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/wallphone/wallphone/audio/g711"
)

func loadTestPrompts(t testing.TB) *Prompts {
	t.Helper()
	p, err := LoadPrompts()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A prompt longer than this is one a caller stops listening to, or a sign that the speech
// synthesiser read markup aloud.
const maxPrompt = 15 * time.Second

func TestEveryPromptInEveryLanguage(t *testing.T) {
	p := loadTestPrompts(t)
	if len(PromptIDs()) != 24 {
		t.Fatalf("%d required prompts, want 24", len(PromptIDs()))
	}
	for _, l := range []Lang{English, Spanish} {
		for _, id := range PromptIDs() {
			c := p.Clip(id, l)
			if c == nil {
				t.Fatalf("%s/%s missing", id, l)
			}
			if c.ID() != id || c.Lang() != l {
				t.Errorf("%s/%s: clip says %s/%s", id, l, c.ID(), c.Lang())
			}
			if c.Text() == "" || strings.ContainsAny(c.Text(), "<>") {
				t.Errorf("%s/%s: text %q", id, l, c.Text())
			}
			if d := c.Duration(); d <= 0 || d > maxPrompt {
				t.Errorf("%s/%s: %v long", id, l, d)
			}
			if c.Duration() != time.Duration(c.Frames())*FrameDuration {
				t.Errorf("%s/%s: %v for %d frames", id, l, c.Duration(), c.Frames())
			}
		}
	}
}

func TestPromptTextsAreTranslated(t *testing.T) {
	p := loadTestPrompts(t)
	for _, id := range PromptIDs() {
		en, es := p.Clip(id, English), p.Clip(id, Spanish)
		same := string(en.ulaw) == string(es.ulaw)
		if id == PromptGreeting {
			// One bilingual greeting, played before the caller has chosen.
			if !same || en.Text() != es.Text() {
				t.Errorf("greeting differs between languages")
			}
			continue
		}
		if same || en.Text() == es.Text() {
			t.Errorf("%s: Spanish is the English prompt", id)
		}
	}
}

func TestClipPlaysItsFile(t *testing.T) {
	p := loadTestPrompts(t)
	for _, l := range []Lang{English, Spanish} {
		for _, id := range PromptIDs() {
			// The file as committed, read independently of the embedding.
			raw, err := os.ReadFile(path.Join("prompts", string(l), string(id)+".ul"))
			if err != nil {
				t.Fatal(err)
			}
			c := p.Clip(id, l)
			var got []int16
			var f Frame
			for src := c.Source(); src.Next(&f); {
				got = append(got, f[:]...)
			}
			if len(got) != c.Frames()*FrameSamples || len(got) < len(raw) || len(got)-len(raw) >= FrameSamples {
				t.Fatalf("%s/%s: %d samples from %d bytes in %d frames", id, l, len(got), len(raw), c.Frames())
			}
			for i, s := range got {
				want := int16(0) // padding of the last frame
				if i < len(raw) {
					want = g711.DecodeUlaw(raw[i])
				}
				if s != want {
					t.Fatalf("%s/%s: sample %d = %d, want %d", id, l, i, s, want)
				}
			}
		}
	}
}

// TestPromptAudioIsSpeech guards against a generator that wrote silence, clipped, or failed
// to trim: the script normalises peaks to -3 dBFS and trims both ends.
func TestPromptAudioIsSpeech(t *testing.T) {
	p := loadTestPrompts(t)
	for _, l := range []Lang{English, Spanish} {
		for _, id := range PromptIDs() {
			c := p.Clip(id, l)
			var peak, sum float64
			for _, b := range c.ulaw {
				s := math.Abs(float64(g711.DecodeUlaw(b)))
				peak = max(peak, s)
				sum += s * s
			}
			peakDB := 20 * math.Log10(peak/math.MaxInt16)
			rmsDB := 20 * math.Log10(math.Sqrt(sum/float64(len(c.ulaw)))/math.MaxInt16)
			if peakDB < -4.5 || peakDB > -2 {
				t.Errorf("%s/%s: peak %.1f dBFS, want about -3", id, l, peakDB)
			}
			if rmsDB < -35 {
				t.Errorf("%s/%s: RMS %.1f dBFS: too quiet to be speech", id, l, rmsDB)
			}
			// Trimmed: sound within the first and last 50 ms.
			const edge = SampleRate / 20
			if quiet(c.ulaw[:edge]) || quiet(c.ulaw[len(c.ulaw)-edge:]) {
				t.Errorf("%s/%s: silence left at an end", id, l)
			}
		}
	}
}

func quiet(ulaw []byte) bool {
	for _, b := range ulaw {
		if math.Abs(float64(g711.DecodeUlaw(b))) > 100 {
			return false
		}
	}
	return true
}

// TestPromptAudioIsCurrent fails when catalog.tsv was edited but scripts/gen-prompts.sh was
// not run: the phone would say one thing and log another.
func TestPromptAudioIsCurrent(t *testing.T) {
	cat, err := os.Open("prompts/catalog.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	entries, err := ParseCatalog(cat)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := os.Open("prompts/generated.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	spoken := map[string]string{} // id/lang -> hash of the text it was spoken from
	sc := bufio.NewScanner(gen)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if strings.HasPrefix(sc.Text(), "#") || f[0] == "id" {
			continue
		}
		if len(f) != 3 {
			t.Fatalf("generated.tsv: %q", sc.Text())
		}
		spoken[f[0]+"/"+f[1]] = f[2]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(spoken) != len(entries) {
		t.Errorf("generated.tsv has %d rows, catalog.tsv %d: run scripts/gen-prompts.sh", len(spoken), len(entries))
	}
	for _, e := range entries {
		sum := sha256.Sum256([]byte(e.SSML))
		if spoken[string(e.ID)+"/"+string(e.Lang)] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s/%s: the audio was not made from this text: run scripts/gen-prompts.sh", e.ID, e.Lang)
		}
	}
}

func TestClipFallsBackToEnglish(t *testing.T) {
	fsys := realPromptFS(t)
	fsys["catalog.tsv"].Data = append(fsys["catalog.tsv"].Data, "only_en\ten\tEnglish only.\n"...)
	fsys["en/only_en.ul"] = &fstest.MapFile{Data: []byte{0xFF, 0xFE}}
	p, err := loadPrompts(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Clip("only_en", Spanish); c == nil || c.Lang() != English || c.Text() != "English only." {
		t.Errorf("only_en in Spanish = %+v, want the English clip", c)
	}
	if c := p.Clip(PromptBusy, "fr"); c == nil || c.Lang() != English {
		t.Errorf("busy in French = %+v, want the English clip", c)
	}
	if c := p.Clip(PromptBusy, Spanish); c == nil || c.Lang() != Spanish {
		t.Errorf("busy in Spanish = %+v", c)
	}
	if c := p.Clip("no_such_prompt", English); c != nil {
		t.Errorf("unknown prompt = %+v, want nil", c)
	}
}

// realPromptFS copies the embedded prompts into a map a test may break.
func realPromptFS(t *testing.T) fstest.MapFS {
	t.Helper()
	sub, err := fs.Sub(promptFiles, "prompts")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, name)
		m[name] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadPromptsErrors(t *testing.T) {
	replaceRow := func(m fstest.MapFS, old, new string) {
		cat := string(m["catalog.tsv"].Data)
		if !strings.Contains(cat, old) {
			t.Fatalf("catalog has no %q", old)
		}
		m["catalog.tsv"].Data = []byte(strings.Replace(cat, old, new, 1))
	}
	for _, tc := range []struct {
		name   string
		mutate func(fstest.MapFS)
		is     error
		msg    string
	}{
		{"no catalog", func(m fstest.MapFS) { delete(m, "catalog.tsv") }, fs.ErrNotExist, "catalog"},
		{"bad catalog", func(m fstest.MapFS) { replaceRow(m, "busy\tes\t", "busy\tfr\t") }, ErrUnknownLang, "catalog line"},
		{"empty text", func(m fstest.MapFS) {
			replaceRow(m, "busy\tes\tLa línea está ocupada. Intente más tarde, por favor.\n", "busy\tes\t\n")
		}, nil, "busy/es: empty text"},
		{"no audio", func(m fstest.MapFS) { delete(m, "es/busy.ul") }, ErrMissingAudio, "busy/es"},
		{"empty audio", func(m fstest.MapFS) { m["es/busy.ul"].Data = nil }, ErrMissingAudio, "es/busy.ul is empty"},
		{"missing prompt", func(m fstest.MapFS) {
			replaceRow(m, "notice_callee\tes\t", "# notice_callee\tes\t")
			delete(m, "es/notice_callee.ul")
		}, ErrMissingPrompt, "notice_callee has no es row"},
		{"orphan audio", func(m fstest.MapFS) { m["es/extra.ul"] = &fstest.MapFile{Data: []byte{0xFF}} }, ErrOrphanAudio, "es/extra.ul"},
		{"unknown language dir", func(m fstest.MapFS) { m["fr/busy.ul"] = &fstest.MapFile{Data: []byte{0xFF}} }, ErrOrphanAudio, "fr/busy.ul"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := realPromptFS(t)
			tc.mutate(m)
			_, err := loadPrompts(m)
			if err == nil {
				t.Fatal("loaded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %q, want it to say %q", err, tc.msg)
			}
		})
	}
	// The unbroken copy loads, so each case above fails for its own reason.
	if _, err := loadPrompts(realPromptFS(t)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkClipFrame(b *testing.B) {
	c := loadTestPrompts(b).Clip(PromptNoticeCallee, English)
	b.Run("decode", func(b *testing.B) {
		src := c.Source()
		var f Frame
		b.SetBytes(int64(FrameSamples))
		b.ReportAllocs()
		for b.Loop() {
			if !src.Next(&f) {
				src = c.Source()
			}
		}
	})
	// The baseline holds the clip as linear samples and copies them out: twice the memory,
	// which decoding as it plays avoids.
	b.Run("baseline=copy-linear", func(b *testing.B) {
		linear := make([]int16, c.Frames()*FrameSamples)
		g711.DecodeUlawFrame(linear, c.ulaw)
		var f Frame
		b.SetBytes(int64(FrameSamples))
		pos := 0
		for b.Loop() {
			if pos == len(linear) {
				pos = 0
			}
			pos += copy(f[:], linear[pos:])
		}
	})
}
