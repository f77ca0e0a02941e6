package tufclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
)

// mapTransport carries the test repository's files without HTTP, as the serial console
// does: URLs are "console:/metadata/...", "console:/targets/...".
type mapTransport struct {
	k     *keepers
	asked []string
}

func (m *mapTransport) file(url string) ([]byte, error) {
	m.asked = append(m.asked, url)
	path, ok := strings.CutPrefix(url, "console:")
	b := m.k.File(path)
	if !ok || b == nil {
		return nil, fmt.Errorf("%s: %w", url, fs.ErrNotExist)
	}
	return b, nil
}

func (m *mapTransport) Open(_ context.Context, url string) (io.ReadCloser, error) {
	b, err := m.file(url)
	return io.NopCloser(bytes.NewReader(b)), err
}

func (m *mapTransport) OpenRange(_ context.Context, url string, off, n, length int64) (io.ReadCloser, error) {
	b, err := m.file(url)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != length {
		return nil, fmt.Errorf("%s: %d bytes, want %d", url, len(b), length)
	}
	return io.NopCloser(bytes.NewReader(b[off : off+n])), nil
}

// TestTransport: with a Transport, the client asks it for every file, none of HTTP, and
// verifies what it carries exactly as a download: metadata, whole targets, ranges; a target
// whose bytes differ is refused.
func TestTransport(t *testing.T) {
	k, _, tg, img := rangeRepo(t, true)
	before := len(k.Requests())
	tr := &mapTransport{k: k}
	c, err := New(Options{Dir: t.TempDir(), Root: k.RootJSON(), URL: "console:", Transport: tr, TopLevelOnlyDelegates: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := c.Target(tg.Name)
	if err != nil || got.Length != tg.Length {
		t.Fatalf("%+v %v", got, err)
	}
	var whole, part bytes.Buffer
	if err := c.Fetch(context.Background(), got, &whole); err != nil || !bytes.Equal(whole.Bytes(), img) {
		t.Fatalf("fetch: %v", err)
	}
	if err := c.FetchRange(context.Background(), got, 4096, 8192, &part); err != nil || !bytes.Equal(part.Bytes(), img[4096:4096+8192]) {
		t.Fatalf("range: %v", err)
	}
	if n := len(k.Requests()) - before; n != 0 {
		t.Fatalf("%d HTTP requests with a transport", n)
	}
	if !strings.HasPrefix(tr.asked[0], "console:/metadata/") {
		t.Fatalf("asked %v", tr.asked)
	}
	// The same image with a byte changed: refused as over HTTP.
	bad := bytes.Clone(img)
	bad[5000] ^= 1
	k.Serve(strings.TrimPrefix(tr.asked[len(tr.asked)-1], "console:"), bad)
	if err := c.Fetch(context.Background(), got, io.Discard); !errors.Is(err, ErrMismatch) {
		t.Fatalf("tampered target: %v", err)
	}
}
