package tufclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rangeRepo serves a firmware image of 100 KiB (not a whole number of 4 KiB blocks) as a
// target of the delegated firmware role, and returns a refreshed client and the target.
func rangeRepo(t *testing.T, consistent bool) (*keepers, *Client, Target, []byte) {
	t.Helper()
	k := newKeepers(t, consistent)
	img := make([]byte, 100<<10+123)
	rand.NewChaCha8([32]byte{1}).Read(img)
	k.AddTarget("firmware", "firmware/phone_2.img", img, map[string]int{"version": 2})
	k.Publish()
	c := k.client(t)
	tg, err := c.Target("firmware/phone_2.img")
	if err != nil {
		t.Fatal(err)
	}
	return k, c, tg, img
}

// TestFetchRange: any range inside the signed length comes byte for byte, from a repository
// with consistent snapshots (the target under its hash) or without, with one request each.
func TestFetchRange(t *testing.T) {
	for _, consistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("consistent snapshots %v", consistent), func(t *testing.T) {
			k, c, tg, img := rangeRepo(t, consistent)
			n := int64(len(img))
			before := len(k.Requests())
			ranges := [][2]int64{{0, 1}, {0, n}, {n - 1, 1}, {4096, 8192}, {n - 123, 123}, {12345, 54321}}
			for _, r := range ranges {
				var buf bytes.Buffer
				if err := c.FetchRange(context.Background(), tg, r[0], r[1], &buf); err != nil {
					t.Fatalf("%v: %v", r, err)
				}
				if !bytes.Equal(buf.Bytes(), img[r[0]:r[0]+r[1]]) {
					t.Fatalf("%v: wrong bytes", r)
				}
			}
			if got := len(k.Requests()) - before; got != len(ranges) {
				t.Fatalf("%d requests for %d ranges", got, len(ranges))
			}
		})
	}
}

// TestFetchRangeOutside: a range reaching outside the signed length is refused before any
// request.
func TestFetchRangeOutside(t *testing.T) {
	k, c, tg, img := rangeRepo(t, true)
	n := int64(len(img))
	before := len(k.Requests())
	for _, r := range [][2]int64{{-1, 10}, {0, 0}, {0, n + 1}, {n, 1}, {n - 1, 2}, {1, -1}, {1 << 62, 1 << 62}} {
		if err := c.FetchRange(context.Background(), tg, r[0], r[1], io.Discard); !errors.Is(err, ErrRange) {
			t.Fatalf("%v: %v, want ErrRange", r, err)
		}
	}
	if got := len(k.Requests()) - before; got != 0 {
		t.Fatalf("%d requests made for refused ranges", got)
	}
}

// TestFetchRangeServerFaults: a server that ignores Range, answers another range, or holds a
// target of another length is refused; one that drops the connection mid-range gives
// io.ErrUnexpectedEOF; none passes as success.
func TestFetchRangeServerFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter, req *http.Request, serve http.Handler)
		want  error
	}{
		{"ignores Range", func(w http.ResponseWriter, req *http.Request, serve http.Handler) {
			req.Header.Del("Range")
			serve.ServeHTTP(w, req)
		}, ErrNoRange},
		{"serves another range", func(w http.ResponseWriter, req *http.Request, serve http.Handler) {
			req.Header.Set("Range", "bytes=0-99")
			serve.ServeHTTP(w, req)
		}, ErrNoRange},
		{"holds a longer target", func(w http.ResponseWriter, req *http.Request, serve http.Handler) {
			rec := &headerRewriter{ResponseWriter: w, rewrite: func(h http.Header) {
				cr := h.Get("Content-Range")
				h.Set("Content-Range", cr[:strings.LastIndexByte(cr, '/')+1]+"999999999")
			}}
			serve.ServeHTTP(rec, req)
		}, ErrNoRange},
		{"drops the connection mid-range", func(w http.ResponseWriter, req *http.Request, serve http.Handler) {
			serve.ServeHTTP(&cutWriter{ResponseWriter: w, left: 1000}, req)
			panic(http.ErrAbortHandler)
		}, io.ErrUnexpectedEOF},
		{"answers 404", func(w http.ResponseWriter, req *http.Request, serve http.Handler) {
			http.NotFound(w, req)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, c, tg, _ := rangeRepo(t, true)
			k.Intercept(tc.serve)
			var buf bytes.Buffer
			err := c.FetchRange(context.Background(), tg, 4096, 8192, &buf)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestFetchRangeCancelled: a cancelled context stops the request.
func TestFetchRangeCancelled(t *testing.T) {
	_, c, tg, _ := rangeRepo(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.FetchRange(ctx, tg, 0, 10, io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestFetchRangeFile: a file:// repository (a USB stick, the simulated phone's demo) serves
// ranges by reading the file, which must be exactly the signed length.
func TestFetchRangeFile(t *testing.T) {
	dir := t.TempDir()
	img := make([]byte, 10000)
	rand.NewChaCha8([32]byte{2}).Read(img)
	if err := os.MkdirAll(filepath.Join(dir, "targets", "firmware"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "targets", "firmware", "phone_2.img")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Dir: t.TempDir(), Root: []byte("{}"), URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Name: "firmware/phone_2.img", Length: int64(len(img)), Hashes: map[string][]byte{"sha256": make([]byte, 32)}}
	var buf bytes.Buffer
	if err := c.FetchRange(context.Background(), tg, 5000, 4000, &buf); err != nil || !bytes.Equal(buf.Bytes(), img[5000:9000]) {
		t.Fatalf("err = %v, %d bytes", err, buf.Len())
	}
	if err := os.WriteFile(file, append(img, "trailing"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.FetchRange(context.Background(), tg, 0, 10, io.Discard); !errors.Is(err, ErrMismatch) {
		t.Fatalf("trailing bytes: %v", err)
	}
}

// cutWriter passes on the first left bytes of the body and drops the rest.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (w *cutWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.left)
	w.left -= n
	if _, err := w.ResponseWriter.Write(p[:n]); err != nil {
		return 0, err
	}
	// Out on the wire before the connection drops, so that the client sees a range begun.
	if err := http.NewResponseController(w.ResponseWriter).Flush(); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.ErrShortWrite
	}
	return n, nil
}

// headerRewriter changes the response's headers just before they are sent.
type headerRewriter struct {
	http.ResponseWriter
	rewrite func(http.Header)
	done    bool
}

func (w *headerRewriter) WriteHeader(code int) {
	if !w.done {
		w.done = true
		w.rewrite(w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerRewriter) Write(p []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}
