package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wallphone/wallphone/internal/tmpfs"
)

const call1 = "20260101T090000Z-0123456789ab"
const call2 = "20260101T091500Z-ba9876543210"

// sealedData is n bytes that begin like an age file and then follow from tag, so that a test
// can say exactly what a file must hold.
func sealedData(tag string, n int) []byte {
	b := []byte("age-encryption.org/v1\n")
	seed := sha256.Sum256([]byte(tag))
	var ctr [8]byte
	for i := uint64(0); len(b) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		block := sha256.Sum256(append(seed[:], ctr[:]...))
		b = append(b, block[:]...)
	}
	return b[:n]
}

// logBuf collects what a spool logs.
type logBuf struct {
	mu sync.Mutex // guards b: the spool may log from several goroutines
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

// lines returns the logged lines of a level ("WARN", "ERROR") that contain every one of subs.
func (l *logBuf) lines(level string, subs ...string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		if !strings.Contains(line, "level="+level+" ") {
			continue
		}
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// openSpool opens a spool in dir with a large bound, closed at the end of the test.
func openSpool(t testing.TB, dir string) (*Spool, *logBuf) {
	t.Helper()
	return openWith(t, Options{Dir: dir, MaxBytes: 1 << 30})
}

func openWith(t testing.TB, o Options) (*Spool, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	o.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, lb
}

// files lists every file and directory under dir, relative, with slashes, sorted.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func mustCommit(t testing.TB, s *Spool, call string, seq int, data []byte) Entry {
	t.Helper()
	e, err := s.CommitSegment(call, seq, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCommitReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)

	var want []Entry
	for seq := range 3 {
		data := sealedData(fmt.Sprint(call1, seq), 1000+seq*7919)
		e := mustCommit(t, s, call1, seq, data)
		if e.CallID != call1 || e.Seq != seq || e.Size != int64(len(data)) || e.SHA256 != sha256.Sum256(data) || e.Created.IsZero() {
			t.Fatalf("entry %+v does not describe segment %d", e, seq)
		}
		if got, want := s.Path(e), filepath.Join(dir, "segments", call1, fmt.Sprintf("%06d.age", seq)); got != want {
			t.Fatalf("Path = %s, want %s", got, want)
		}
		got, err := s.ReadFile(e)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadFile = %d bytes, %v; want the %d committed", len(got), err, len(data))
		}
		onDisk, err := os.ReadFile(s.Path(e))
		if err != nil || !bytes.Equal(onDisk, data) {
			t.Fatalf("the file on disk differs from what was committed: %v", err)
		}
		fi, _ := os.Stat(s.Path(e))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", s.Path(e), fi.Mode().Perm())
		}
		want = append(want, e)
	}
	mdata := sealedData("manifest", 300)
	me, err := s.CommitManifest(call1, mdata)
	if err != nil {
		t.Fatal(err)
	}
	if me.Seq != ManifestSeq || s.Path(me) != filepath.Join(dir, "manifests", call1+".age") {
		t.Fatalf("manifest entry %+v at %s", me, s.Path(me))
	}
	if got, err := s.ReadFile(me); err != nil || !bytes.Equal(got, mdata) {
		t.Fatalf("ReadFile(manifest) = %v", err)
	}

	segs, err := s.Segments(call1)
	if err != nil || !slices.EqualFunc(segs, want, sameEntry) {
		t.Fatalf("Segments = %+v, %v; want %+v", segs, err, want)
	}
	if m, ok, err := s.Manifest(call1); err != nil || !ok || !sameEntry(m, me) {
		t.Fatalf("Manifest = %+v, %v, %v", m, ok, err)
	}
	if _, ok, err := s.Manifest(call2); ok || err != nil {
		t.Fatalf("Manifest of a call without one = %v, %v", ok, err)
	}
	if calls, err := s.Calls(); err != nil || !slices.Equal(calls, []string{call1}) {
		t.Fatalf("Calls = %v, %v", calls, err)
	}
	u := s.Usage()
	wantBytes := me.Size
	for _, e := range want {
		wantBytes += e.Size
	}
	if u != (Usage{Bytes: wantBytes, Segments: 3, Manifests: 1, Calls: 1}) {
		t.Fatalf("Usage = %+v, want %d bytes in 3 segments and 1 manifest of 1 call", u, wantBytes)
	}
	if got := files(t, dir); slices.ContainsFunc(got, func(f string) bool { return strings.Contains(f, tmpPrefix) }) {
		t.Fatalf("temporary files left: %v", got)
	}
}

func sameEntry(a, b Entry) bool {
	return a.CallID == b.CallID && a.Seq == b.Seq && a.Size == b.Size && a.SHA256 == b.SHA256 && a.Created.Equal(b.Created)
}

func TestCommitSegmentExists(t *testing.T) {
	s, _ := openSpool(t, t.TempDir())
	first := sealedData("first", 500)
	e := mustCommit(t, s, call1, 0, first)
	if _, err := s.CommitSegment(call1, 0, sealedData("second", 600)); !errors.Is(err, ErrExists) {
		t.Fatalf("second commit of segment 0: %v, want ErrExists", err)
	}
	if got, err := s.ReadFile(e); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("segment 0 was changed by the refused commit: %v", err)
	}
	if u := s.Usage(); u.Segments != 1 || u.Bytes != 500 {
		t.Fatalf("Usage after a refused commit: %+v", u)
	}
}

func TestErrFullLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, _ := openWith(t, Options{Dir: dir, MaxBytes: 10_000})
	mustCommit(t, s, call1, 0, sealedData("a", 6000))
	before := files(t, dir)

	_, err := s.CommitSegment(call2, 0, sealedData("b", 4001))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("commit over the bound: %v, want ErrFull", err)
	}
	if !strings.Contains(err.Error(), "10000") {
		t.Errorf("the error does not say the bound: %v", err)
	}
	if _, err := s.CommitSegment(call1, 1, sealedData("b", 4001)); !errors.Is(err, ErrFull) {
		t.Fatalf("commit over the bound: %v, want ErrFull", err)
	}
	if _, err := s.CommitManifest(call1, sealedData("m", 4001)); !errors.Is(err, ErrFull) {
		t.Fatalf("manifest over the bound: %v, want ErrFull", err)
	}
	if after := files(t, dir); !slices.Equal(after, before) {
		t.Fatalf("a refused commit left files behind:\nbefore %v\nafter  %v", before, after)
	}
	if segs, _ := s.Segments(call2); len(segs) != 0 {
		t.Fatalf("a refused segment is listed: %v", segs)
	}
	if u := s.Usage(); u.Bytes != 6000 || u.Segments != 1 || u.Calls != 1 {
		t.Fatalf("Usage after refused commits: %+v", u)
	}

	// Exactly up to the bound fits; a manifest counts only its growth when replaced.
	mustCommit(t, s, call1, 1, sealedData("c", 3000))
	if _, err := s.CommitManifest(call1, sealedData("m1", 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitManifest(call1, sealedData("m2", 1000)); err != nil {
		t.Fatalf("replacing a manifest with one of the same size in a full spool: %v", err)
	}
	if _, err := s.CommitManifest(call1, sealedData("m3", 1001)); !errors.Is(err, ErrFull) {
		t.Fatalf("growing a manifest past the bound: %v, want ErrFull", err)
	}
	// Purge requests are never refused.
	if err := s.CommitPurge(call2, []byte(`{"purge":"`+call2+`"}`)); err != nil {
		t.Fatalf("purge request in a full spool: %v", err)
	}
	if u := s.Usage(); u.Bytes <= 10_000 || u.Purges != 1 {
		t.Fatalf("Usage does not count the purge request: %+v", u)
	}
}

func TestCanRecord(t *testing.T) {
	s, _ := openWith(t, Options{Dir: t.TempDir(), MaxBytes: 10_000, Reserve: 4000})
	if err := s.CanRecord(); err != nil {
		t.Fatalf("empty spool: %v", err)
	}
	mustCommit(t, s, call1, 0, sealedData("a", 6000)) // 4000 left: exactly the reserve
	if err := s.CanRecord(); err != nil {
		t.Fatalf("with exactly the reserve left: %v", err)
	}
	mustCommit(t, s, call1, 1, sealedData("b", 23)) // 1 byte short
	err := s.CanRecord()
	if !errors.Is(err, ErrFull) {
		t.Fatalf("with less than the reserve left: %v, want ErrFull", err)
	}
	for _, n := range []string{"6023", "10000", "4000"} {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("%q does not say %s", err, n)
		}
	}
	if _, err := s.DeleteCall(call1); err != nil {
		t.Fatal(err)
	}
	if err := s.CanRecord(); err != nil {
		t.Fatalf("after the call is deleted: %v", err)
	}
}

func TestDeleteCall(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	for seq := range 4 {
		mustCommit(t, s, call1, seq, sealedData(fmt.Sprint(seq), 700))
	}
	if _, err := s.CommitManifest(call1, sealedData("m", 200)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitPurge(call1, []byte("signed purge")); err != nil {
		t.Fatal(err)
	}
	other := mustCommit(t, s, call2, 0, sealedData("other", 900))

	removed, err := s.DeleteCall(call1)
	if err != nil || removed != 5 {
		t.Fatalf("DeleteCall = %d, %v; want 5 files removed", removed, err)
	}
	want := []string{"index.db", "manifests/", "purge/", "purge/" + call1 + ".json",
		"segments/", "segments/" + call2 + "/", "segments/" + call2 + "/000000.age"}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files after DeleteCall:\n got %v\nwant %v", got, want)
	}
	check := func(s *Spool) {
		t.Helper()
		if segs, err := s.Segments(call1); err != nil || len(segs) != 0 {
			t.Fatalf("Segments after DeleteCall = %v, %v", segs, err)
		}
		if _, ok, _ := s.Manifest(call1); ok {
			t.Fatal("the manifest is still listed")
		}
		if calls, _ := s.Calls(); !slices.Equal(calls, []string{call2}) {
			t.Fatalf("Calls = %v", calls)
		}
		if p, _ := s.Purges(); !slices.Equal(p, []string{call1}) {
			t.Fatalf("the purge request went with the call: Purges = %v", p)
		}
		if u := s.Usage(); u != (Usage{Bytes: 900 + 12, Segments: 1, Purges: 1, Calls: 1}) {
			t.Fatalf("Usage = %+v", u)
		}
		if _, err := s.ReadFile(other); err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	if n, err := s.DeleteCall(call1); n != 0 || err != nil {
		t.Fatalf("second DeleteCall = %d, %v; want 0, nil", n, err)
	}

	// The index agrees: a reopened spool neither resurrects nor complains.
	s.Close()
	s2, lb := openSpool(t, dir)
	check(s2)
	if l := lb.String(); l != "" {
		t.Fatalf("reopening after DeleteCall logged:\n%s", l)
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	e0 := mustCommit(t, s, call1, 0, sealedData("0", 100))
	e1 := mustCommit(t, s, call1, 1, sealedData("1", 100))
	if err := s.Remove(e0); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(e0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v, want ErrNotFound", err)
	}
	if _, err := s.ReadFile(e0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadFile of a removed entry: %v, want ErrNotFound", err)
	}
	if segs, _ := s.Segments(call1); len(segs) != 1 || segs[0].Seq != 1 {
		t.Fatalf("Segments = %v", segs)
	}
	if err := s.Remove(e1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "segments", call1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the call's directory outlived its last segment: %v", err)
	}
	// A later segment of the same call makes the directory again.
	mustCommit(t, s, call1, 2, sealedData("2", 100))

	// An older manifest's Entry never removes the newer manifest.
	old, err := s.CommitManifest(call1, sealedData("provisional", 100))
	if err != nil {
		t.Fatal(err)
	}
	final, err := s.CommitManifest(call1, sealedData("final", 120))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadFile(old); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadFile of a replaced manifest: %v, want ErrNotFound", err)
	}
	if err := s.Remove(old); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove of a replaced manifest: %v, want ErrNotFound", err)
	}
	if got, err := s.ReadFile(final); err != nil || !bytes.Equal(got, sealedData("final", 120)) {
		t.Fatalf("the final manifest: %v", err)
	}
	if err := s.Remove(final); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage(); u != (Usage{Bytes: 100, Segments: 1, Calls: 1}) {
		t.Fatalf("Usage = %+v", u)
	}
}

func TestManifestReplaced(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	if _, err := s.CommitManifest(call1, sealedData("provisional", 400)); err != nil {
		t.Fatal(err)
	}
	final, err := s.CommitManifest(call1, sealedData("final", 250))
	if err != nil {
		t.Fatal(err)
	}
	m, ok, err := s.Manifest(call1)
	if err != nil || !ok || !sameEntry(m, final) {
		t.Fatalf("Manifest = %+v, %v, %v; want the final one", m, ok, err)
	}
	if u := s.Usage(); u != (Usage{Bytes: 250, Manifests: 1, Calls: 1}) {
		t.Fatalf("Usage = %+v", u)
	}
	s.Close()
	s2, lb := openSpool(t, dir)
	if m, _, _ := s2.Manifest(call1); !sameEntry(m, final) {
		t.Fatalf("after reopening, Manifest = %+v", m)
	}
	if l := lb.String(); l != "" {
		t.Fatalf("reopening logged:\n%s", l)
	}
}

func TestPurges(t *testing.T) {
	s, _ := openSpool(t, t.TempDir())
	if err := s.CommitPurge(call2, []byte("b1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitPurge(call1, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitPurge(call1, []byte("a2, re-signed")); err != nil {
		t.Fatalf("replacing a purge request: %v", err)
	}
	if p, err := s.Purges(); err != nil || !slices.Equal(p, []string{call1, call2}) {
		t.Fatalf("Purges = %v, %v", p, err)
	}
	if b, err := s.ReadPurge(call1); err != nil || string(b) != "a2, re-signed" {
		t.Fatalf("ReadPurge = %q, %v", b, err)
	}
	if calls, _ := s.Calls(); len(calls) != 0 {
		t.Fatalf("purge requests are listed as calls: %v", calls)
	}
	if err := s.RemovePurge(call1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadPurge(call1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadPurge after RemovePurge: %v", err)
	}
	if err := s.RemovePurge(call1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second RemovePurge: %v", err)
	}
	if u := s.Usage(); u != (Usage{Bytes: 2, Purges: 1}) {
		t.Fatalf("Usage = %+v", u)
	}
}

func TestReadFileCorrupt(t *testing.T) {
	s, _ := openSpool(t, t.TempDir())
	data := sealedData("x", 5000)
	e := mustCommit(t, s, call1, 0, data)
	path := s.Path(e)

	damage := []struct {
		name string
		do   func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b = slices.Clone(b); b[2500] ^= 0x01; return b }},
		{"cut short", func(b []byte) []byte { return b[:4999] }},
		{"grown", func(b []byte) []byte { return append(slices.Clone(b), 0) }},
	}
	for _, d := range damage {
		if err := os.WriteFile(path, d.do(data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := s.ReadFile(e)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: ReadFile = %v, want ErrCorrupt naming %s", d.name, err, path)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadFile(e); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("file gone: ReadFile = %v, want ErrCorrupt naming %s", err, path)
	}

	if err := s.CommitPurge(call1, []byte("purge")); err != nil {
		t.Fatal(err)
	}
	ppath := filepath.Join(s.dir, "purge", call1+".json")
	if err := os.WriteFile(ppath, []byte("purgf"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadPurge(call1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadPurge of a changed purge request = %v, want ErrCorrupt", err)
	}
}

func TestBadID(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	data := sealedData("x", 100)
	for _, id := range []string{"../x", "", "a/b", strings.Repeat("a", 65), ".", "..", "a.b", `a\b`, "a b", "é", "x\x00"} {
		if _, err := s.CommitSegment(id, 0, data); !errors.Is(err, ErrBadID) {
			t.Errorf("CommitSegment(%q): %v, want ErrBadID", id, err)
		}
		if _, err := s.CommitManifest(id, data); !errors.Is(err, ErrBadID) {
			t.Errorf("CommitManifest(%q): %v, want ErrBadID", id, err)
		}
		if err := s.CommitPurge(id, data); !errors.Is(err, ErrBadID) {
			t.Errorf("CommitPurge(%q): %v, want ErrBadID", id, err)
		}
		if _, err := s.DeleteCall(id); !errors.Is(err, ErrBadID) {
			t.Errorf("DeleteCall(%q): %v, want ErrBadID", id, err)
		}
		if _, err := s.Segments(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Segments(%q): %v, want ErrBadID", id, err)
		}
		if _, _, err := s.Manifest(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Manifest(%q): %v, want ErrBadID", id, err)
		}
		if _, err := s.ReadFile(Entry{CallID: id}); !errors.Is(err, ErrBadID) {
			t.Errorf("ReadFile(%q): %v, want ErrBadID", id, err)
		}
		if err := s.Remove(Entry{CallID: id, Seq: ManifestSeq}); !errors.Is(err, ErrBadID) {
			t.Errorf("Remove(%q): %v, want ErrBadID", id, err)
		}
		if _, err := s.ReadPurge(id); !errors.Is(err, ErrBadID) {
			t.Errorf("ReadPurge(%q): %v, want ErrBadID", id, err)
		}
		if err := s.RemovePurge(id); !errors.Is(err, ErrBadID) {
			t.Errorf("RemovePurge(%q): %v, want ErrBadID", id, err)
		}
		if p := s.Path(Entry{CallID: id}); p != "" {
			t.Errorf("Path(%q) = %q, want none", id, p)
		}
	}
	for _, seq := range []int{-2, MaxSeq + 1} {
		if _, err := s.CommitSegment(call1, seq, data); !errors.Is(err, ErrBadID) {
			t.Errorf("CommitSegment seq %d: %v, want ErrBadID", seq, err)
		}
	}
	if _, err := s.CommitSegment(strings.Repeat("a", 64), MaxSeq, data); err != nil {
		t.Errorf("the longest id and highest seq: %v", err)
	}
	long := strings.Repeat("a", 64)
	want := []string{"index.db", "manifests/", "purge/", "segments/", "segments/" + long + "/", "segments/" + long + "/999999.age"}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files after bad ids:\n got %v\nwant %v", got, want)
	}
	if got := files(t, filepath.Dir(dir)); len(got) != len(want)+1 {
		t.Fatalf("a bad id made a file outside the spool: %v", got)
	}
}

func TestNotSealed(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	before := files(t, dir)
	for _, data := range [][]byte{nil, []byte("RIFF....WAVEfmt "), []byte("age-encryption.org/v2\n")} {
		if _, err := s.CommitSegment(call1, 0, data); !errors.Is(err, ErrNotSealed) {
			t.Errorf("CommitSegment(%q): %v, want ErrNotSealed", data, err)
		}
		if _, err := s.CommitManifest(call1, data); !errors.Is(err, ErrNotSealed) {
			t.Errorf("CommitManifest(%q): %v, want ErrNotSealed", data, err)
		}
	}
	if after := files(t, dir); !slices.Equal(after, before) {
		t.Fatalf("refused bytes reached the disk: %v", after)
	}
	armored := []byte("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n")
	if _, err := s.CommitSegment(call1, 0, armored); err != nil {
		t.Fatalf("armored age file: %v", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	var entries []Entry
	for _, c := range []string{call2, call1} {
		for seq := range 3 {
			entries = append(entries, mustCommit(t, s, c, seq, sealedData(c+fmt.Sprint(seq), 333*(seq+1))))
		}
		e, err := s.CommitManifest(c, sealedData(c+"m", 77))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	if err := s.CommitPurge(call1, []byte("p")); err != nil {
		t.Fatal(err)
	}
	usage := s.Usage()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitSegment(call1, 9, sealedData("late", 100)); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Calls(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Calls after Close: %v, want ErrClosed", err)
	}

	s2, lb := openSpool(t, dir)
	if l := lb.String(); l != "" {
		t.Fatalf("reopening a clean spool logged:\n%s", l)
	}
	if u := s2.Usage(); u != usage {
		t.Fatalf("Usage after reopening = %+v, want %+v", u, usage)
	}
	if calls, _ := s2.Calls(); !slices.Equal(calls, []string{call1, call2}) {
		t.Fatalf("Calls = %v (want sorted, oldest first)", calls)
	}
	for _, e := range entries {
		b, err := s2.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(b) != e.SHA256 {
			t.Fatalf("%s changed", s2.Path(e))
		}
	}
	if b, err := s2.ReadPurge(call1); err != nil || string(b) != "p" {
		t.Fatalf("ReadPurge = %q, %v", b, err)
	}
}

func TestOpenOptions(t *testing.T) {
	for _, o := range []Options{
		{MaxBytes: 1},
		{Dir: t.TempDir()},
		{Dir: t.TempDir(), MaxBytes: 10, Reserve: 11},
		{Dir: t.TempDir(), MaxBytes: 10, Reserve: -1},
	} {
		if s, err := Open(o); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}

func TestConcurrentCommits(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	const workers, perWorker = 8, 12
	calls := []string{call1, call2, "20260101T093000Z-aaaaaaaaaaaa", "20260101T094500Z-bbbbbbbbbbbb"}

	var (
		mu      sync.Mutex // guards won and exists
		won     = make(map[string]Entry)
		exists  int
		wg      sync.WaitGroup
		errs    = make(chan error, workers*perWorker*3)
		readers sync.WaitGroup
		stop    = make(chan struct{})
	)
	// Readers list, read and size the spool while it changes.
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, c := range calls {
					segs, err := s.Segments(c)
					if err != nil {
						errs <- err
						return
					}
					for _, e := range segs {
						if _, err := s.ReadFile(e); err != nil {
							errs <- err
							return
						}
					}
					if m, ok, err := s.Manifest(c); err == nil && ok {
						if _, err := s.ReadFile(m); err != nil && !errors.Is(err, ErrNotFound) {
							errs <- err // ErrNotFound: replaced since listed
							return
						}
					}
				}
				_ = s.Usage()
				_ = s.CanRecord()
			}
		})
	}
	for w := range workers {
		wg.Go(func() {
			c := calls[w%len(calls)]
			for i := range perWorker {
				// Two workers share each call and race for every segment number.
				seq := i
				data := sealedData(fmt.Sprint(c, seq, w), 2000+w*100+i)
				e, err := s.CommitSegment(c, seq, data)
				switch {
				case errors.Is(err, ErrExists):
					mu.Lock()
					exists++
					mu.Unlock()
				case err != nil:
					errs <- err
				default:
					mu.Lock()
					won[e.CallID+fmt.Sprint(e.Seq)] = e
					mu.Unlock()
				}
				if _, err := s.CommitManifest(c, sealedData(fmt.Sprint(c, "m", w, i), 100+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(won) != len(calls)*perWorker || exists != workers*perWorker-len(won) {
		t.Fatalf("%d segments committed and %d refused as existing; want %d and %d", len(won), exists, len(calls)*perWorker, workers*perWorker-len(calls)*perWorker)
	}
	var bytes int64
	for _, e := range won {
		b, err := s.ReadFile(e)
		if err != nil || sha256.Sum256(b) != e.SHA256 {
			t.Fatalf("%s: %v", s.Path(e), err)
		}
		bytes += e.Size
	}
	for _, c := range calls {
		m, ok, err := s.Manifest(c)
		if err != nil || !ok {
			t.Fatalf("manifest of %s: %v", c, err)
		}
		bytes += m.Size
	}
	u := s.Usage()
	if u != (Usage{Bytes: bytes, Segments: len(won), Manifests: len(calls), Calls: len(calls)}) {
		t.Fatalf("Usage = %+v, want %d bytes in %d segments", u, bytes, len(won))
	}
	s.Close()
	s2, lb := openSpool(t, dir)
	if u2 := s2.Usage(); u2 != u || lb.String() != "" {
		t.Fatalf("reopened: Usage %+v (want %+v), log:\n%s", u2, u, lb)
	}
}

// TestCanRecordFileSystemFull: the spool's own bound is not the only limit; a file system
// that has less than a call's room left refuses the call before it starts, however much of
// MaxBytes is unused.
func TestCanRecordFileSystemFull(t *testing.T) {
	dir := tmpfs.Mount(t, 1<<20)
	s, _ := openWith(t, Options{Dir: filepath.Join(dir, "spool"), MaxBytes: 100 << 20, Reserve: 256 << 10})
	if err := s.CanRecord(); err != nil {
		t.Fatalf("empty file system: %v", err)
	}
	tmpfs.Fill(t, dir, 128<<10)
	err := s.CanRecord()
	if !errors.Is(err, ErrFull) {
		t.Fatalf("file system with 128 KiB free, reserve 256 KiB: %v, want ErrFull", err)
	}
	if !strings.Contains(err.Error(), "file system") {
		t.Errorf("%q does not say that the file system is what is full", err)
	}
}
