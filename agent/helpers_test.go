package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/backoffice/demo"
	"github.com/wallphone/wallphone/device/sim"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/trunk/simtrunk"
)

// enrolled makes a demo facility and a data directory enrolled in it, as wallphonectl demo
// init and a technician would; it returns both.
func enrolled(t testing.TB) (data, keys string) {
	t.Helper()
	dir := t.TempDir()
	data, keys = filepath.Join(dir, "data"), filepath.Join(dir, "keys")
	if err := demo.Init(keys, nil); err != nil {
		t.Fatal(err)
	}
	items := map[string][]byte{}
	for _, name := range provisioning.EnrolmentFiles {
		b, err := os.ReadFile(filepath.Join(keys, demo.EnrolDir, name))
		if err != nil {
			t.Fatal(err)
		}
		items[name] = b
	}
	if err := provisioning.WriteEnrolment(data, items, demo.Facility, nil); err != nil {
		t.Fatal(err)
	}
	return data, keys
}

// syncBuffer is a log destination shared by the agent's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// testPhone is a simulated board and called party for an agent under test.
type testPhone struct {
	board  *sim.Board
	callee *simtrunk.Trunk
}

// newAgent opens an agent on data with a simulated board, a called party that answers and
// accepts by itself, JSON events at debug level into log, and no vault; mod changes the
// configuration before New. Drive, unless mod sets it, ends at once.
func newAgent(t testing.TB, data string, log io.Writer, mod func(*Config)) (*Agent, *testPhone) {
	t.Helper()
	p := &testPhone{board: sim.New(sim.Options{Mic: audio.Tone(0.1, 440)})}
	prompts, err := audio.LoadPrompts()
	if err != nil {
		t.Fatal(err)
	}
	voice := prompts.Clip(audio.PromptSimFarEnd, audio.English)
	p.callee = simtrunk.New(simtrunk.Options{Auto: true, Voice: voice.Source, VoiceText: voice.Text()})
	cfg := Config{
		DataDir: data, Devices: p.board.Device(), Trunk: p.callee, Vault: "none", Prompts: prompts,
		Drive:  func(context.Context, func(time.Time)) error { return nil },
		Logger: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, p
}
