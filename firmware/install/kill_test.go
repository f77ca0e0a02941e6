package install_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/wallphone/wallphone/firmware/install"
	"github.com/wallphone/wallphone/firmware/slot"
	"github.com/wallphone/wallphone/tufclient"
)

// childEnv carries a childConfig to the test binary run again as the process to kill.
const childEnv = "WALLPHONE_INSTALL_KILL_CHILD"

// childConfig is what the child needs to install the release as the parent's own installs
// do: the same server, slot, progress record and index directory.
type childConfig struct {
	URL, RootPath, TUFDir   string
	Image, Index            string
	IndexSHA256             [32]byte
	Slot, Progress, FirmDir string
	BlockSize               int
	// Cut is how many bytes of the image the server sends before it stalls.
	Cut int64
}

// TestInstallChild is not a test of its own: run by killInstall as a child process, it
// installs the release described in childEnv and kills itself with SIGKILL when the
// installer, having been handed all the Cut bytes the server sends (see cutAfter), asks
// the connection for more.
func TestInstallChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("the process TestResumeAfterKill kills; it runs only as that test's child")
	}
	var c childConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile(c.RootPath)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tufclient.New(tufclient.Options{Dir: c.TUFDir, Root: root, URL: c.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	image, err := client.Target(c.Image)
	if err != nil {
		t.Fatal(err)
	}
	index, err := client.Target(c.Index)
	if err != nil {
		t.Fatal(err)
	}
	s, err := slot.OpenFile(c.Slot, c.BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	_, err = install.Install(ctx, install.Options{
		Fetcher: &killingFetcher{Fetcher: client, left: c.Cut}, Image: image, Index: index, IndexSHA256: c.IndexSHA256,
		Slot: s, Progress: install.FileStore{Path: c.Progress}, Dir: c.FirmDir,
	})
	t.Fatalf("the install ended without being killed: %v", err)
}

// killingFetcher hands the response bodies to the installer through killReader. Only the
// installer's goroutine that fetches uses it.
type killingFetcher struct {
	install.Fetcher
	left int64 // bytes of the image still to come before the stall
}

func (f *killingFetcher) FetchRange(ctx context.Context, t tufclient.Target, off, n int64, w io.Writer) error {
	return f.Fetcher.FetchRange(ctx, t, off, n, &killWriter{f: f, w: w})
}

// killWriter passes the body on as the installer reads it, through killReader, or what is
// written to it if the fetcher writes.
type killWriter struct {
	f *killingFetcher
	w io.Writer
}

func (k *killWriter) Write(p []byte) (int, error) {
	k.f.take(len(p))
	return k.w.Write(p)
}

func (k *killWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := k.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(&killReader{f: k.f, r: r})
	}
	return io.Copy(struct{ io.Writer }{k}, r)
}

// killReader reads the body; once the server has sent all it will, the next read kills the
// process instead. The kill lands where the installer waits
// for the network, with whatever its other goroutine was doing meanwhile under way.
type killReader struct {
	f *killingFetcher
	r io.Reader
}

func (k *killReader) Read(p []byte) (int, error) {
	k.f.take(0)
	n, err := k.r.Read(p)
	k.f.left -= int64(n)
	return n, err
}

// take kills the process if all the server sends has come and n more are wanted or given.
func (f *killingFetcher) take(n int) {
	if f.left <= 0 {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	f.left -= int64(n)
}

// cutAfter sends left more bytes of the image, flushes them, and ends the response there,
// short: the client gets every byte the server counted as sent, so none is lost in flight
// when it is killed, and the child kills itself before it reads the response's end.
type cutAfter struct {
	http.ResponseWriter
	left int64
}

func (w *cutAfter) Write(p []byte) (int, error) {
	n := int(min(int64(len(p)), max(w.left, 0)))
	w.left -= int64(n)
	m, err := w.ResponseWriter.Write(p[:n])
	if n < len(p) {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
	return m, err
}

// killInstall runs an install of r in a child process (this test binary again), lets the
// server send cut more bytes of the image, and returns once the child has killed itself with
// SIGKILL while waiting for more.
func (r *bigRelease) killInstall(tb testing.TB, cut int64) {
	tb.Helper()
	rootPath := filepath.Join(r.state, "root.json")
	if err := os.WriteFile(rootPath, r.repo.RootJSON(), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := json.Marshal(childConfig{
		URL: r.repo.Srv.URL, RootPath: rootPath, TUFDir: filepath.Join(tb.TempDir(), "tuf"),
		Image: r.image.Name, Index: r.index.Name, IndexSHA256: r.indexSum,
		Slot: r.slotPath, Progress: filepath.Join(r.state, "progress.json"), FirmDir: filepath.Join(r.state, "firmware"),
		BlockSize: bs, Cut: cut,
	})
	if err != nil {
		tb.Fatal(err)
	}
	start := r.served.sent()
	r.served.setFault(func(w http.ResponseWriter, req *http.Request) http.ResponseWriter {
		if !strings.HasSuffix(req.URL.Path, ".img") {
			return w
		}
		return &cutAfter{ResponseWriter: w, left: start + cut - r.served.sent()}
	})
	defer r.served.setFault(nil)
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstallChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		tb.Fatalf("the child was to kill itself with SIGKILL: %v\n%s", err, out)
	}
	r.served.idle()
}

// TestResumeAfterKill: an install killed with SIGKILL (a real kill -9 of a real process, at a
// random byte of the image, while it waits for more of it from a real HTTP server) and then
// resumed by another process fetches again at most one block of what the killed one was
// sent, and ends with the image in the slot: blocks are written into the slot as soon as
// they have come and matched, and the page cache keeps them when the process dies.
func TestResumeAfterKill(t *testing.T) {
	size, kills := int64(32<<20), 12
	if testing.Short() {
		size, kills = 8<<20, 4
	}
	r := newBigRelease(t, size)
	img, err := os.ReadFile(r.imgPath)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 17))
	var worst int64
	for k := range kills {
		cut := rng.Int64N(size)
		again, res := r.killAndResume(t, cut)
		t.Logf("kill %d at byte %d: the resume found %d bytes done, fetched %d again", k, cut, res.Resumed, again)
		worst = max(worst, again)
		if again > bs {
			t.Errorf("kill %d at byte %d: the resume fetched %d bytes again, more than a block (%d)", k, cut, again, bs)
		}
		got, err := os.ReadFile(r.slotPath)
		if err != nil {
			t.Fatal(err)
		}
		if string(got[:size]) != string(img) {
			t.Fatalf("kill %d: the slot does not hold the image", k)
		}
	}
	t.Logf("%d kills: the most a resume fetched again was %d bytes (a block is %d)", kills, worst, bs)
}

// killAndResume starts over with an empty slot, has a child process install until the
// server has sent it cut bytes of the image and kill itself, then resumes the install here.
// It returns the bytes of the image the server sent twice, and what the resume did.
func (r *bigRelease) killAndResume(tb testing.TB, cut int64) (int64, install.Result) {
	tb.Helper()
	r.fresh(tb)
	r.wipeSlot(tb)
	r.served.reset()
	r.killInstall(tb, cut)
	mid := r.served.snapshot(r.imagePath())
	if sent := sum(mid); sent != cut {
		tb.Fatalf("the server sent %d bytes to the child, want %d", sent, cut)
	}
	res, err := r.install(tb, context.Background(), nil, 0)
	if err != nil {
		tb.Fatalf("kill at %d: resume: %v", cut, err)
	}
	return refetched(mid, r.served.snapshot(r.imagePath())), res
}

// wipeSlot makes the slot hold zeros: nothing of the image.
func (r *bigRelease) wipeSlot(tb testing.TB) {
	tb.Helper()
	if err := os.Truncate(r.slotPath, 0); err != nil {
		tb.Fatal(err)
	}
	s, err := slot.CreateFile(r.slotPath, r.size, bs)
	if err != nil {
		tb.Fatal(err)
	}
	s.Close()
}

func sum(blocks []int) (n int64) {
	for _, b := range blocks {
		n += int64(b)
	}
	return n
}

// imagePath is the URL path the image is served under (consistent snapshots).
func (r *bigRelease) imagePath() string {
	return fmt.Sprintf("/targets/firmware/%x.phone_2.img", r.image.Hashes["sha256"])
}
