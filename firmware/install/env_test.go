package install_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/wallphone/wallphone/firmware/blockindex"
	"github.com/wallphone/wallphone/firmware/install"
	"github.com/wallphone/wallphone/firmware/slot"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/tufclient/tuftest"
)

const (
	bs    = blockindex.DefaultBlockSize
	batch = 64 << 10 // small batches, so that small images have many
	// slotPattern fills a fresh slot: any other byte in it was written by an install.
	slotPattern = 0xEE
)

func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// phone is a release published in a TUF repository served over HTTP (the firmware role
// delegated as the vendor's repository delegates it), a phone's client of it, an inactive
// file slot and the phone's state directory.
type phone struct {
	t        *testing.T
	repo     *tuftest.Repo
	client   *tufclient.Client
	image    tufclient.Target
	index    tufclient.Target
	indexSum [sha256.Size]byte
	img      []byte
	slotPath string
	state    string
	served   *served
}

// newPhone publishes img (with its block index) and makes a phone whose inactive slot holds
// capacity bytes of slotPattern.
func newPhone(t *testing.T, consistent bool, img []byte, capacity int64) *phone {
	t.Helper()
	p := &phone{t: t, repo: tuftest.New(t, consistent), state: t.TempDir(), served: &served{}}
	p.repo.Delegate(metadata.TARGETS, "firmware", []tuftest.Key{tuftest.NewKey(t)}, 1, true, "firmware/*")
	p.repo.Intercept(p.served.count)
	p.publish("2", img)
	p.slotPath = filepath.Join(t.TempDir(), "b.img")
	if err := os.WriteFile(p.slotPath, bytes.Repeat([]byte{slotPattern}, int(capacity)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// publish adds a release of img as version v, with its index, and points the phone at it.
func (p *phone) publish(v string, img []byte) {
	p.t.Helper()
	x, err := blockindex.Build(bytes.NewReader(img), bs)
	if err != nil {
		p.t.Fatal(err)
	}
	var ib bytes.Buffer
	if _, err := x.WriteTo(&ib); err != nil {
		p.t.Fatal(err)
	}
	p.publishWith(v, img, ib.Bytes())
}

// publishWith publishes img with idx as its index, whatever idx says.
func (p *phone) publishWith(v string, img, idx []byte) {
	p.t.Helper()
	p.img = img
	p.indexSum = sha256.Sum256(idx)
	name := "firmware/phone_" + v
	p.repo.AddTarget("firmware", name+".bidx", idx, nil)
	p.repo.AddTarget("firmware", name+".img", img, map[string]any{"version": v, "index": name + ".bidx", "index_sha256": fmt.Sprintf("%x", p.indexSum)})
	p.repo.Publish()
	c, err := tufclient.New(tufclient.Options{Dir: filepath.Join(p.state, "tuf"), Root: p.repo.RootJSON(), URL: p.repo.Srv.URL, TopLevelOnlyDelegates: true})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	p.client = c
	if p.image, err = c.Target(name + ".img"); err != nil {
		p.t.Fatal(err)
	}
	if p.index, err = c.Target(name + ".bidx"); err != nil {
		p.t.Fatal(err)
	}
}

// options installs the current release into the slot (opened anew, as after a restart),
// reusing running, in batches of the test's size.
func (p *phone) options(running []byte) (install.Options, *slot.Slot) {
	p.t.Helper()
	s, err := slot.OpenFile(p.slotPath, bs)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { s.Close() })
	o := install.Options{
		Fetcher: p.client, Image: p.image, Index: p.index, IndexSHA256: p.indexSum,
		Slot: s, Progress: p.store(), Dir: filepath.Join(p.state, "firmware"), BatchSize: batch,
	}
	if running != nil {
		o.Running, o.RunningLen = bytes.NewReader(running), int64(len(running))
	}
	return o, s
}

// imagePath is the URL path the current image is served under.
func (p *phone) imagePath() string {
	dir, base := path.Split(p.image.Name)
	if p.repo.Consistent {
		base = fmt.Sprintf("%x.%s", p.image.Hashes["sha256"], base)
	}
	return "/targets/" + dir + base
}

func (p *phone) store() install.FileStore {
	return install.FileStore{Path: filepath.Join(p.state, "firmware-progress.json")}
}

func (p *phone) progress() install.Progress {
	p.t.Helper()
	pr, err := p.store().Load()
	if err != nil {
		p.t.Fatal(err)
	}
	return pr
}

// checkSlot says the slot holds the image, and slotPattern after it.
func (p *phone) checkSlot() {
	p.t.Helper()
	got, err := os.ReadFile(p.slotPath)
	if err != nil {
		p.t.Fatal(err)
	}
	if !bytes.Equal(got[:len(p.img)], p.img) {
		p.t.Fatal("the slot does not hold the image")
	}
	for i, c := range got[len(p.img):] {
		if c != slotPattern {
			p.t.Fatalf("the slot was written past the image, at %d", len(p.img)+i)
		}
	}
}

// checkNothingPast says the blocks the progress record says are done hold the image, and
// past them the slot holds nothing but further blocks of the image, whole and in order, up
// to where nothing was written: the blocks a resumed install finds done by checking them.
func (p *phone) checkNothingPast() {
	p.t.Helper()
	got, err := os.ReadFile(p.slotPath)
	if err != nil {
		p.t.Fatal(err)
	}
	done := int64(0)
	if pr := p.progress(); pr.Image == sha256.Sum256(p.img) {
		done = min(pr.Next*bs, int64(len(p.img)))
	}
	if !bytes.Equal(got[:done], p.img[:done]) {
		p.t.Fatalf("the blocks recorded as done (%d bytes) are not the image's", done)
	}
	written := done
	for written < int64(len(p.img)) {
		end := min(written+bs, int64(len(p.img)))
		if !bytes.Equal(got[written:end], p.img[written:end]) {
			break
		}
		written = end
	}
	for i, c := range got[written:] {
		if c != slotPattern {
			p.t.Fatalf("byte %d written, past the %d bytes recorded as done and the %d of the image after them", written+int64(i), done, written-done)
		}
	}
}

// served counts what the server sent of each image, block by block.
type served struct {
	mu     sync.Mutex
	total  int64            // bytes of .img targets sent
	blocks map[string][]int // image path -> bytes sent of each block
	fault  func(w http.ResponseWriter, req *http.Request) http.ResponseWriter
	// serving counts the requests being served, for idle.
	serving sync.WaitGroup
}

func (s *served) count(w http.ResponseWriter, req *http.Request, serve http.Handler) {
	s.serving.Add(1)
	defer s.serving.Done()
	s.mu.Lock()
	fault := s.fault
	s.mu.Unlock()
	if fault != nil {
		if w = fault(w, req); w == nil {
			return
		}
	}
	if !strings.HasSuffix(req.URL.Path, ".img") {
		serve.ServeHTTP(w, req)
		return
	}
	off := int64(0)
	if r := req.Header.Get("Range"); r != "" {
		off, _ = strconv.ParseInt(strings.TrimSuffix(strings.SplitN(strings.TrimPrefix(r, "bytes="), "-", 2)[0], "-"), 10, 64)
	}
	serve.ServeHTTP(&countingWriter{ResponseWriter: w, s: s, path: req.URL.Path, off: off}, req)
}

func (s *served) setFault(f func(w http.ResponseWriter, req *http.Request) http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// snapshot is the bytes sent of each block of the image at path so far.
func (s *served) snapshot(path string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.blocks[path]...)
}

// idle waits until no request is being served: what was sent is all counted.
func (s *served) idle() { s.serving.Wait() }

// reset forgets what was sent.
func (s *served) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total, s.blocks = 0, nil
}

func (s *served) sent() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

type countingWriter struct {
	http.ResponseWriter
	s    *served
	path string
	off  int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.blocks == nil {
		w.s.blocks = map[string][]int{}
	}
	bl := w.s.blocks[w.path]
	for i := w.off; i < w.off+int64(n); {
		b := int(i / bs)
		for len(bl) <= b {
			bl = append(bl, 0)
		}
		k := min(int64(n)-(i-w.off), int64(b+1)*bs-i)
		bl[b] += int(k)
		i += k
	}
	w.s.blocks[w.path] = bl
	w.s.total += int64(n)
	w.off += int64(n)
	return n, err
}

// Flush lets a fault flush what was counted.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
