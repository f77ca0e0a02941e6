package uplink_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/recording"
	"github.com/wallphone/wallphone/spool"
	"github.com/wallphone/wallphone/uplink"
)

const (
	facility = "fac1"
	device   = "dev-0001"
)

// keys are the facility's recording identities.
type keys struct {
	ids  []*age.X25519Identity
	rcps []age.Recipient
	strs []string
}

func newKeys(t testing.TB) keys {
	var k keys
	for range 2 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		k.ids = append(k.ids, id)
		k.rcps = append(k.rcps, id.Recipient())
		k.strs = append(k.strs, id.Recipient().String())
	}
	return k
}

func openSpool(t testing.TB, dir string) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir, MaxBytes: 4 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// record makes a real recording of a call of the given length with package recording, in
// segments of segment: sealed segments and a signed, sealed manifest in the spool.
func record(t testing.TB, sp *spool.Spool, k keys, callID string, length, segment time.Duration) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	rec, err := recording.New(recording.Options{Spool: sp, Recipients: k.strs, Segment: segment, DeviceID: device, DeviceKey: key})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rec.Start(recording.CallInfo{CallID: callID, CallerID: "1001", E164: "+15125550100", Decision: recording.DecisionRecorded, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var a, b audio.Frame
	for i := range int(length / audio.FrameDuration) {
		for j := range a {
			a[j] = int16((i*j*37)%20000 - 10000)
			b[j] = int16((i + j*53) % 15000)
		}
		if err := r.Write(&a, &b); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
}

// want is every spooled file as the vault should hold it: key → bytes.
func want(t testing.TB, sp *spool.Spool) map[string][]byte {
	t.Helper()
	es, err := sp.Oldest(1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, e := range es {
		b, err := sp.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		key := uplink.SegmentKey(facility, device, e.CallID, e.Seq)
		if e.Seq == spool.ManifestSeq {
			key = uplink.ManifestKey(facility, device, e.CallID)
		}
		out[key] = b
	}
	for _, id := range must(sp.Purges()) {
		out[uplink.PurgeKey(facility, device, id)] = must(sp.ReadPurge(id))
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// checkVault checks that the vault holds exactly the files of want (and, besides, only the
// status object and the records named in also), byte for byte, each once.
func checkVault(t testing.TB, got, want map[string][]byte, also ...string) {
	t.Helper()
	extra := map[string]bool{uplink.StatusKey(facility, device): true}
	for _, k := range also {
		extra[k] = true
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("vault lacks %s", k)
		case !bytes.Equal(g, w):
			t.Errorf("vault's %s differs: %d bytes, want %d", k, len(g), len(w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !extra[k] {
			t.Errorf("vault holds %s, which was never spooled", k)
		}
	}
}

func checkEmpty(t testing.TB, sp *spool.Spool) {
	t.Helper()
	if u := sp.Usage(); u != (spool.Usage{}) {
		t.Errorf("spool not empty after the drain: %+v", u)
	}
	if es := must(sp.Oldest(10, nil)); len(es) != 0 {
		t.Errorf("spool still lists %d files", len(es))
	}
}

// logBuf collects the uplink's log for a test to look at.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func callID(i int) string {
	return fmt.Sprintf("20260314T%02d%02d00Z-%012x", 10+i/60, i%60, i)
}

func decrypt(t testing.TB, b []byte, id age.Identity) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		t.Fatal(err)
	}
	return must(io.ReadAll(r))
}

var _ = filepath.Join
var _ = strings.Contains

func ageEncrypt(w io.Writer, k keys) (io.WriteCloser, error) { return age.Encrypt(w, k.rcps...) }
