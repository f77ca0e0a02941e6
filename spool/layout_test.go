package spool

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// segmentNames are file names in a call's segment directory; the fuzz target starts from them.
var segmentNames = []struct {
	name string
	seq  int
	ok   bool
}{
	{"000000.age", 0, true},
	{"000042.age", 42, true},
	{"999999.age", MaxSeq, true},
	{"00042.age", 0, false},   // five digits
	{"0000042.age", 0, false}, // seven
	{"000042.AGE", 0, false},
	{"000042", 0, false},
	{"+00042.age", 0, false},
	{"-00001.age", 0, false},
	{" 00042.age", 0, false},
	{"00004٢.age", 0, false}, // a digit, but not 0-9
	{".tmp-123456", 0, false},
	{"manifest.age", 0, false},
	{"", 0, false},
}

func TestSegmentFile(t *testing.T) {
	for _, tc := range segmentNames {
		seq, ok := ParseSegmentFile(tc.name)
		if ok != tc.ok || seq != tc.seq {
			t.Errorf("ParseSegmentFile(%q) = %d, %v; want %d, %v", tc.name, seq, ok, tc.seq, tc.ok)
		}
		if tc.ok && SegmentFile(tc.seq) != tc.name {
			t.Errorf("SegmentFile(%d) = %q, want %q", tc.seq, SegmentFile(tc.seq), tc.name)
		}
	}
}

func FuzzParseSegmentFile(f *testing.F) {
	if len(segmentNames) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, tc := range segmentNames {
		f.Add(tc.name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		seq, ok := ParseSegmentFile(name)
		if ok && (seq < 0 || seq > MaxSeq || SegmentFile(seq) != name) {
			t.Fatalf("%q read as segment %d, whose file is %q", name, seq, SegmentFile(seq))
		}
	})
}

func TestCallPaths(t *testing.T) {
	dir := filepath.FromSlash("/data/spool")
	p, err := CallPaths(dir, call1)
	want := Paths{
		Manifest:   filepath.Join(dir, "manifests", call1+".age"),
		SegmentDir: filepath.Join(dir, "segments", call1),
	}
	if err != nil || p != want {
		t.Errorf("CallPaths = %+v, %v; want %+v", p, err, want)
	}
	for _, bad := range []string{"", "../x", "a/b", "a.b", string(make([]byte, 65))} {
		if _, err := CallPaths(dir, bad); !errors.Is(err, ErrBadID) {
			t.Errorf("CallPaths(%q): %v, want ErrBadID", bad, err)
		}
	}
	got := FetchedPaths(filepath.FromSlash("/inv/call"))
	wantF := Paths{
		Manifest:   filepath.FromSlash("/inv/call/manifest.age"),
		SegmentDir: filepath.FromSlash("/inv/call/segments"),
		Record:     filepath.FromSlash("/inv/call/record.age"),
	}
	if got != wantF {
		t.Errorf("FetchedPaths = %+v, want %+v", got, wantF)
	}
}

// List and CallPaths find what the spool wrote, where the spool wrote it, and nothing else.
func TestListReadsWhatTheSpoolWrote(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	seg0, seg1 := sealedData("s0", 100), sealedData("s1", 250)
	mustCommit(t, s, call1, 0, seg0)
	mustCommit(t, s, call1, 1, seg1)
	if _, err := s.CommitManifest(call1, sealedData("m1", 80)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitManifest(call2, sealedData("m2", 80)); err != nil { // no segment yet
		t.Fatal(err)
	}
	if err := s.CommitPurge("20260101T080000Z-purged", []byte(`{}`)); err != nil { // not a recording
		t.Fatal(err)
	}
	// What a reader must pass over: a file being written, a stray file, names that are not a
	// call's, and a call directory with no segment in it.
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("segments/" + call1 + "/.tmp-123")
	write("segments/" + call1 + "/notes.txt")
	write("segments/not.a.call/000000.age")
	write("manifests/not.a.call.age")
	write("manifests/.tmp-456")
	write("segments/stray.age")
	empty := "20260101T100000Z-empty"
	if err := os.Mkdir(filepath.Join(dir, "segments", empty), 0o700); err != nil {
		t.Fatal(err)
	}

	calls, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := CallPaths(dir, call1)
	p2, _ := CallPaths(dir, call2)
	want := []CallFiles{
		{CallID: call1, Manifest: p1.Manifest, Segments: []SegmentInfo{
			{Seq: 0, Path: filepath.Join(p1.SegmentDir, "000000.age"), Size: int64(len(seg0))},
			{Seq: 1, Path: filepath.Join(p1.SegmentDir, "000001.age"), Size: int64(len(seg1))},
		}},
		{CallID: call2, Manifest: p2.Manifest},
		{CallID: empty, Segments: []SegmentInfo{}},
	}
	if !slices.EqualFunc(calls, want, sameCallFiles) {
		t.Fatalf("List =\n%+v\nwant\n%+v", calls, want)
	}
	for _, c := range calls[:1] {
		es, err := s.Segments(c.CallID)
		if err != nil || len(es) != len(c.Segments) {
			t.Fatalf("Segments(%s) = %v, %v", c.CallID, es, err)
		}
		for i, e := range es {
			if s.Path(e) != c.Segments[i].Path {
				t.Errorf("segment %d: the spool wrote %s, List found %s", e.Seq, s.Path(e), c.Segments[i].Path)
			}
		}
		if m, ok, err := s.Manifest(c.CallID); err != nil || !ok || s.Path(m) != c.Manifest {
			t.Errorf("manifest: the spool wrote %s, List found %s (%v)", s.Path(m), c.Manifest, err)
		}
	}

	segs, other, err := ListSegments(p1.SegmentDir)
	if err != nil || len(segs) != 2 || !slices.Equal(other, []string{".tmp-123", "notes.txt"}) {
		t.Errorf("ListSegments = %+v, %q, %v; want two segments and the two other files", segs, other, err)
	}
	if _, _, err := ListSegments(filepath.Join(dir, "segments", "20260101T110000Z-none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ListSegments of a call with no directory: %v, want fs.ErrNotExist", err)
	}
}

func sameCallFiles(a, b CallFiles) bool {
	return a.CallID == b.CallID && a.Manifest == b.Manifest && slices.Equal(a.Segments, b.Segments)
}

func TestListNotASpool(t *testing.T) {
	dir := t.TempDir()
	if _, err := List(filepath.Join(dir, "nowhere")); !errors.Is(err, ErrNotSpool) {
		t.Errorf("List of a missing directory: %v, want ErrNotSpool", err)
	}
	if _, err := List(dir); !errors.Is(err, ErrNotSpool) {
		t.Errorf("List of an empty directory: %v, want ErrNotSpool", err)
	}
	// Either directory makes a spool, empty or not.
	if err := os.Mkdir(filepath.Join(dir, "manifests"), 0o700); err != nil {
		t.Fatal(err)
	}
	if calls, err := List(dir); err != nil || len(calls) != 0 {
		t.Errorf("List of a spool with an empty manifests/: %v, %v", calls, err)
	}
}
