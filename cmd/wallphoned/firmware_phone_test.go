package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wallphone/wallphone/firmware/bootenv"
	"github.com/wallphone/wallphone/firmware/release"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/tufclient"
)

// The parts of the firmware crash test that are not its schedule: the repository served over
// HTTP with a hand on its downloads, the slot images, and the checks made from outside the
// phone after every kill.

// repoServer serves the demo repository over HTTP on loopback. Downloads of firmware images
// (Range requests included, as http.FileServer answers them) are counted, and stall once the
// run's byte budget is spent: the handler stops writing, says so, and waits for the phone to
// go (its connection closes when it is killed). Each finished image response is reported too.
type repoServer struct {
	srv *httptest.Server
	// run numbers the phone's runs: an event of an earlier run is ignored.
	run atomic.Int64
	// limit is how many image bytes this run may be sent before the download stalls; < 0:
	// no limit. served is how many it was sent.
	limit, served atomic.Int64
	events        chan serverEvent
	stop          chan struct{}
}

type serverEvent struct {
	run     int64
	stalled bool  // the byte budget ran out mid-response
	end     int64 // a response ended whole: the end of its range
	size    int64 // the image's length
}

func newRepoServer(t *testing.T, repo string) *repoServer {
	s := &repoServer{events: make(chan serverEvent, 256), stop: make(chan struct{})}
	s.limit.Store(-1)
	files := http.FileServer(http.Dir(repo))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".img") {
			files.ServeHTTP(w, r)
			return
		}
		cw := &countingWriter{ResponseWriter: w, s: s, ctx: r.Context(), run: s.run.Load()}
		files.ServeHTTP(cw, r)
		if cw.stalled || cw.err != nil {
			return
		}
		fi, err := os.Stat(filepath.Join(repo, filepath.FromSlash(r.URL.Path)))
		if err != nil {
			return
		}
		end := fi.Size()
		if _, rng, ok := strings.Cut(r.Header.Get("Range"), "-"); ok && rng != "" {
			if n, err := strconv.ParseInt(rng, 10, 64); err == nil {
				end = n + 1
			}
		}
		s.send(serverEvent{run: cw.run, end: end, size: fi.Size()})
	}))
	t.Cleanup(func() { close(s.stop); s.srv.Close() })
	return s
}

func (s *repoServer) send(e serverEvent) {
	select {
	case s.events <- e:
	default: // nobody listens for so many: the run is over
	}
}

// startRun starts counting for a new run, with limit image bytes before a stall (< 0: none).
func (s *repoServer) startRun(limit int64) {
	s.run.Add(1)
	s.served.Store(0)
	s.limit.Store(limit)
}

var errStalled = errors.New("download stalled by the test")

type countingWriter struct {
	http.ResponseWriter
	s       *repoServer
	ctx     context.Context
	run     int64
	stalled bool
	err     error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := len(p)
		if lim := w.s.limit.Load(); lim >= 0 {
			left := lim - w.s.served.Load()
			if left <= 0 {
				if f, ok := w.ResponseWriter.(http.Flusher); ok {
					f.Flush()
				}
				w.stalled = true
				w.s.send(serverEvent{run: w.run, stalled: true})
				select {
				case <-w.ctx.Done():
				case <-w.s.stop:
				}
				return written, errStalled
			}
			n = int(min(int64(n), left))
		}
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		w.s.served.Add(int64(m))
		if err != nil {
			w.err = err
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// signedImages reads the firmware images' signed lengths and hashes from the repository as a
// phone does: through tufclient, from the enrolled root.
type signedImages struct {
	c *tufclient.Client
}

func newSignedImages(t *testing.T, keys, url string) *signedImages {
	root, err := os.ReadFile(filepath.Join(keys, "enrol", provisioning.RootFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tufclient.New(tufclient.Options{Dir: t.TempDir(), Root: root, URL: url, MaxTarget: 1 << 30, TopLevelOnlyDelegates: true})
	if err != nil {
		t.Fatal(err)
	}
	return &signedImages{c: c}
}

// image is what a slot must hold for one version: its length and SHA-256.
type image struct {
	version uint64
	length  int64
	sha256  []byte
}

// target is version v's image as signed in the repository now.
func (s *signedImages) target(t *testing.T, v uint64) image {
	t.Helper()
	if _, err := s.c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tg, err := s.c.Target(release.ImageTarget(simHardware, v))
	if err != nil {
		t.Fatal(err)
	}
	return image{version: v, length: tg.Length, sha256: tg.Hashes["sha256"]}
}

// holds reports whether the slot's file starts with the image.
func holds(t *testing.T, path string, img image) bool {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, img.length))
	if err != nil {
		t.Fatal(err)
	}
	return n == img.length && bytes.Equal(h.Sum(nil), img.sha256)
}

// scriptImage is a slot image of about size bytes: a script that starts bin (the slot's
// wallphoned) followed by comment lines of random hexadecimal, so that images are small and
// differ from each other in every block.
func scriptImage(bin string, size int, rng *rand.Rand) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#!/bin/sh\nexec '%s' \"$@\"\n", bin)
	const hexDigits = "0123456789abcdef"
	line := make([]byte, 64)
	line[0], line[63] = '#', '\n'
	for b.Len() < size {
		for i := 1; i < 63; i++ {
			line[i] = hexDigits[rng.IntN(16)]
		}
		b.Write(line)
	}
	return b.Bytes()[:size]
}

// brokenImage is a slot image of about size bytes that never comes up: it exits at once.
func brokenImage(size int, rng *rand.Rand) []byte {
	img := scriptImage("/nonexistent", size, rng)
	s := []byte("#!/bin/sh\nexit 3\n")
	return append(s, img[len(s):]...)
}

// changeBlock returns img with one block of blockSize bytes (not the first, which starts
// the script) changed in every hexadecimal digit, and the block's number.
func changeBlock(img []byte, blockSize int, rng *rand.Rand) ([]byte, int) {
	out := bytes.Clone(img)
	blocks := (len(img) + blockSize - 1) / blockSize
	k := 1 + rng.IntN(blocks-1)
	for i := k * blockSize; i < min((k+1)*blockSize, len(out)); i++ {
		if c := out[i]; c != '#' && c != '\n' {
			out[i] = "123456789abcdef0"[strings.IndexByte("0123456789abcdef", c)]
		}
	}
	return out, k
}

// envCopies checks each copy of the simulated phone's redundant environment as U-Boot reads
// it (CRC-32 over the data area, after the CRC and the flag byte) and returns how many are
// valid; an empty file is a new board's and has none.
func envCopies(t *testing.T, data string) int {
	t.Helper()
	b, err := os.ReadFile(simEnv(data).Copies[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	valid := 0
	for i := range 2 {
		if len(b) < (i+1)*envSize {
			continue
		}
		c := b[i*envSize : (i+1)*envSize]
		if binary.LittleEndian.Uint32(c) == crc32.ChecksumIEEE(c[5:]) && bytes.Contains(c[5:], []byte{0, 0}) {
			valid++
		}
	}
	return valid
}

// bootState is what the bootloader's environment says, read from outside the phone.
type bootState struct {
	good, boot string // good_slot, boot_slot
	trial      bool   // upgrade_available
	count      uint64 // bootcount
	limit      uint64 // bootlimit
	failed     string // failed_slot
	next       bootenv.Decision
}

func readBootEnv(t *testing.T, data string) (bootState, error) {
	t.Helper()
	env, err := bootenv.Open(simEnv(data))
	if err != nil {
		return bootState{}, err
	}
	get := func(n string) string { v, _ := env.Get(n); return v }
	count, _ := strconv.ParseUint(get("bootcount"), 16, 64)
	limit, err := strconv.ParseUint(get("bootlimit"), 16, 64)
	if err != nil {
		limit = 3
	}
	good := get("good_slot")
	if good != bootenv.SlotB {
		good = bootenv.SlotA
	}
	return bootState{good: good, boot: get("boot_slot"), trial: get("upgrade_available") == "1", count: count, limit: limit,
		failed: get("failed_slot"), next: bootenv.Decide(env.Get)}, nil
}

// otherSlot is the slot that is not s.
func otherSlot(s string) string {
	if s == bootenv.SlotA {
		return bootenv.SlotB
	}
	return bootenv.SlotA
}
