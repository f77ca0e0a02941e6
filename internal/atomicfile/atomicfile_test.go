package atomicfile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wallphone/wallphone/internal/atomicfile"
)

// names lists a directory.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func wantFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s holds %q, want %q", filepath.Base(path), got, data)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != perm {
		t.Errorf("%s has mode %v, want a regular file with %v", filepath.Base(path), fi.Mode(), perm)
	}
}

func TestWriteNew(t *testing.T) {
	for _, perm := range []os.FileMode{0o600, 0o640, 0o644, 0o666} {
		t.Run(perm.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "policy.json")
			data := []byte("{\"version\":3}\n")
			if err := atomicfile.Write(path, data, perm); err != nil {
				t.Fatal(err)
			}
			// perm is the file's mode exactly, whatever the umask.
			wantFile(t, path, data, perm)
			if got := names(t, dir); !slices.Equal(got, []string{"policy.json"}) {
				t.Errorf("directory holds %v, want only the file", got)
			}
		})
	}
}

func TestWriteEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty")
	if err := atomicfile.Write(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, nil, 0o600)
}

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.json")
	if err := os.WriteFile(path, bytes.Repeat([]byte("old content "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("neighbour"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Shorter than the old content: nothing of it may remain.
	if err := atomicfile.Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, []byte("new"), 0o600)
	wantFile(t, other, []byte("neighbour"), 0o600)
	if got := names(t, dir); !slices.Equal(got, []string{"other", "registry.json"}) {
		t.Errorf("directory holds %v", got)
	}
	// And again, over the file it wrote itself.
	if err := atomicfile.Write(path, []byte("newer"), 0o640); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, []byte("newer"), 0o640)
	if got := names(t, dir); !slices.Equal(got, []string{"other", "registry.json"}) {
		t.Errorf("directory holds %v", got)
	}
}

func TestWriteFails(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		parent := t.TempDir()
		path := filepath.Join(parent, "missing", "state")
		err := atomicfile.Write(path, []byte("x"), 0o600)
		if err == nil {
			t.Fatal("Write succeeded")
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%q does not name %s", err, path)
		}
		if got := names(t, parent); len(got) != 0 {
			t.Errorf("left %v behind", got)
		}
	})
	t.Run("target is a directory", func(t *testing.T) {
		parent := t.TempDir()
		path := filepath.Join(parent, "state")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		kept := filepath.Join(path, "kept")
		if err := os.WriteFile(kept, []byte("old content"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := atomicfile.Write(path, []byte("new content"), 0o600)
		if err == nil {
			t.Fatal("Write over a directory succeeded")
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%q does not name %s", err, path)
		}
		// The temporary file is gone and what was there is as it was.
		if got := names(t, parent); !slices.Equal(got, []string{"state"}) {
			t.Errorf("parent holds %v, want only the directory", got)
		}
		if got := names(t, path); !slices.Equal(got, []string{"kept"}) {
			t.Errorf("directory holds %v", got)
		}
		wantFile(t, kept, []byte("old content"), 0o600)
	})
}
