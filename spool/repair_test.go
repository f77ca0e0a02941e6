package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// editIndex changes the index of a closed spool directly, to make the states a crash leaves.
func editIndex(t *testing.T, dir string, fn func(b *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, indexName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketFiles)) }); err != nil {
		t.Fatal(err)
	}
}

// setRecord rewrites the index entry of n with change applied.
func setRecord(t *testing.T, dir string, n name, change func(*record)) {
	t.Helper()
	editIndex(t, dir, func(b *bolt.Bucket) error {
		r, err := decodeRecord(b.Get([]byte(n.rel())))
		if err != nil {
			return err
		}
		change(&r)
		return b.Put([]byte(n.rel()), r.encode())
	})
}

func seg(call string, seq int) name { return name{kind: kindSegment, call: call, seq: seq} }
func man(call string) name          { return name{kind: kindManifest, call: call, seq: ManifestSeq} }
func purge(call string) name        { return name{kind: kindPurge, call: call, seq: ManifestSeq} }

// spoolState is everything a spool says it holds, read back in full.
type spoolState struct {
	usage Usage
	files map[string][32]byte // index key → SHA-256 of the bytes read back
}

func stateOf(t *testing.T, s *Spool) spoolState {
	t.Helper()
	st := spoolState{usage: s.Usage(), files: make(map[string][32]byte)}
	calls, err := s.Calls()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		segs, err := s.Segments(c)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok, err := s.Manifest(c); err != nil {
			t.Fatal(err)
		} else if ok {
			segs = append(segs, m)
		}
		for _, e := range segs {
			b, err := s.ReadFile(e)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := entryName(e)
			st.files[n.rel()] = sha256.Sum256(b)
		}
	}
	purges, err := s.Purges()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range purges {
		b, err := s.ReadPurge(c)
		if err != nil {
			t.Fatal(err)
		}
		st.files[purge(c).rel()] = sha256.Sum256(b)
	}
	return st
}

func (a spoolState) equal(b spoolState) bool {
	if a.usage != b.usage || len(a.files) != len(b.files) {
		return false
	}
	for k, v := range a.files {
		if b.files[k] != v {
			return false
		}
	}
	return true
}

// fill commits a few segments of two calls, a manifest and a purge request.
func fill(t *testing.T, s *Spool) {
	t.Helper()
	for _, c := range []string{call1, call2} {
		for seq := range 5 {
			mustCommit(t, s, c, seq, sealedData(fmt.Sprint(c, seq), 500+seq*300))
		}
	}
	if _, err := s.CommitManifest(call1, sealedData("m1", 300)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitPurge(call2, []byte("purge "+call2)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	fill(t, s)
	want := stateOf(t, s)
	s.Close()

	temps := []string{
		filepath.Join(dir, "segments", call1, ".tmp-123456"),
		filepath.Join(dir, "manifests", ".tmp-77"),
		filepath.Join(dir, "purge", ".tmp-1"),
		// A call whose first segment never finished: its directory goes too.
		filepath.Join(dir, "segments", "20260101T100000Z-cccccccccccc", ".tmp-9"),
	}
	for _, p := range temps {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, sealedData(p, 4000)[:1234], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, lb := openSpool(t, dir)
	for _, p := range temps {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", p, err)
		}
		if len(lb.lines("WARN", "unfinished", p)) != 1 {
			t.Errorf("removing %s was not logged:\n%s", p, lb)
		}
	}
	if _, err := os.Stat(filepath.Dir(temps[3])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory of a call with only an unfinished segment stays: %v", err)
	}
	if got := stateOf(t, s2); !got.equal(want) {
		t.Fatalf("state changed:\n got %+v\nwant %+v", got, want)
	}
}

func TestOpenIndexesFileWithoutEntry(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	fill(t, s)
	want := stateOf(t, s)
	s.Close()

	// A stop between rename and index entry, for each kind of file.
	lost := []name{seg(call1, 4), seg(call2, 0), man(call1), purge(call2)}
	editIndex(t, dir, func(b *bolt.Bucket) error {
		for _, n := range lost {
			if err := b.Delete([]byte(n.rel())); err != nil {
				return err
			}
		}
		return nil
	})
	s2, lb := openSpool(t, dir)
	for _, n := range lost {
		if len(lb.lines("WARN", "no index entry", s2.path(n))) != 1 {
			t.Errorf("indexing %s was not logged:\n%s", s2.path(n), lb)
		}
	}
	if got := stateOf(t, s2); !got.equal(want) {
		t.Fatalf("state after indexing again:\n got %+v\nwant %+v", got, want)
	}
	if lines := lb.lines("ERROR"); len(lines) != 0 {
		t.Errorf("errors logged: %v", lines)
	}
	// The entries are in the index now: a second open is quiet.
	s2.Close()
	_, lb3 := openSpool(t, dir)
	if l := lb3.String(); l != "" {
		t.Fatalf("second open logged:\n%s", l)
	}
}

func TestOpenDropsEntryWithoutFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	e := mustCommit(t, s, call1, 0, sealedData("only", 1000))
	other := mustCommit(t, s, call2, 0, sealedData("other", 1000))
	s.Close()
	path := s.Path(e)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s2, lb := openSpool(t, dir)
	if len(lb.lines("ERROR", "behind the spool's back", path)) != 1 {
		t.Fatalf("the missing file was not logged as an error naming it:\n%s", lb)
	}
	if segs, _ := s2.Segments(call1); len(segs) != 0 {
		t.Fatalf("the entry of a missing file is still listed: %v", segs)
	}
	if _, err := s2.ReadFile(e); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadFile of the dropped entry: %v", err)
	}
	if u := s2.Usage(); u != (Usage{Bytes: other.Size, Segments: 1, Calls: 1}) {
		t.Fatalf("Usage = %+v", u)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the empty call directory stays: %v", err)
	}
}

func TestOpenKeepsFileOfChangedSize(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	data := sealedData("seg", 2000)
	e := mustCommit(t, s, call1, 0, data)
	s.Close()
	path := s.Path(e)
	if err := os.WriteFile(path, append(slices.Clone(data), "tail"...), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and again at the next start: the damage is not forgotten
		s2, lb := openSpool(t, dir)
		if len(lb.lines("ERROR", "changed size", path, "size=2004", "committed_size=2000")) != 1 {
			t.Fatalf("the changed size was not logged as an error naming the file and both sizes:\n%s", lb)
		}
		segs, _ := s2.Segments(call1)
		if len(segs) != 1 || !sameEntry(segs[0], e) {
			t.Fatalf("the committed entry was not kept: %+v", segs)
		}
		if _, err := s2.ReadFile(segs[0]); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Fatalf("ReadFile = %v, want ErrCorrupt naming the file", err)
		}
		if b, _ := os.ReadFile(path); len(b) != 2004 {
			t.Fatal("the file was not kept as it is")
		}
		s2.Close()
	}
}

func TestOpenFinishesRemoval(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	fill(t, s)
	s.Close()

	// DeleteCall of call1 stopped after marking its entries and removing some of its files;
	// Remove of segment 2 of call2 stopped after marking; RemovePurge after removing the file.
	editIndex(t, dir, func(b *bolt.Bucket) error {
		for _, n := range []name{seg(call1, 0), seg(call1, 1), seg(call1, 2), seg(call1, 3), seg(call1, 4), man(call1), seg(call2, 2), purge(call2)} {
			r, err := decodeRecord(b.Get([]byte(n.rel())))
			if err != nil {
				return err
			}
			r.removing = true
			if err := b.Put([]byte(n.rel()), r.encode()); err != nil {
				return err
			}
		}
		return nil
	})
	for _, n := range []name{seg(call1, 0), seg(call1, 3), purge(call2)} {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(n.rel()))); err != nil {
			t.Fatal(err)
		}
	}
	s2, lb := openSpool(t, dir)
	if lines := lb.lines("ERROR"); len(lines) != 0 {
		t.Errorf("an interrupted removal was taken for damage: %v", lines)
	}
	if n := len(lb.lines("WARN", "finished a removal")); n != 8 {
		t.Errorf("%d removals logged as finished, want 8:\n%s", n, lb)
	}
	want := []string{"index.db", "manifests/", "purge/", "segments/", "segments/" + call2 + "/"}
	for _, seq := range []int{0, 1, 3, 4} {
		want = append(want, fmt.Sprintf("segments/%s/%06d.age", call2, seq))
	}
	slices.Sort(want)
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files:\n got %v\nwant %v", got, want)
	}
	st := stateOf(t, s2)
	if len(st.files) != 4 || st.usage.Segments != 4 || st.usage.Calls != 1 || st.usage.Manifests != 0 || st.usage.Purges != 0 {
		t.Fatalf("state after finishing the removals: %+v", st)
	}
}

func TestOpenFinishesReplacement(t *testing.T) {
	older := sealedData("provisional", 700)
	newer := sealedData("final", 700) // the same size: only the hash tells them apart
	cases := []struct {
		name   string
		file   []byte // what the file holds at the stop
		want   []byte // the manifest afterwards
		level  string
		logged string
	}{
		{"stopped before the rename", older, older, "WARN", "older version"},
		{"stopped after the rename", newer, newer, "WARN", "new version"},
		{"file holds neither", sealedData("other", 700), nil, "ERROR", "neither"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openSpool(t, dir)
			committed, err := s.CommitManifest(call1, older)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			setRecord(t, dir, man(call1), func(r *record) {
				r.next = &version{size: int64(len(newer)), sum: sha256.Sum256(newer), created: r.created}
			})
			path := s.Path(committed)
			if err := os.WriteFile(path, c.file, 0o600); err != nil {
				t.Fatal(err)
			}
			s2, lb := openSpool(t, dir)
			if len(lb.lines(c.level, c.logged, path)) != 1 {
				t.Fatalf("want a %s line about %q naming %s:\n%s", c.level, c.logged, path, lb)
			}
			m, ok, err := s2.Manifest(call1)
			if err != nil || !ok {
				t.Fatalf("Manifest: %v, %v", ok, err)
			}
			got, err := s2.ReadFile(m)
			if c.want == nil {
				if !errors.Is(err, ErrCorrupt) || m.SHA256 != committed.SHA256 {
					t.Fatalf("ReadFile = %v with %x indexed, want ErrCorrupt against the committed version", err, m.SHA256)
				}
				return
			}
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("ReadFile = %v", err)
			}
			// The replacement note is gone: a second replacement works, and a reopen is quiet.
			if _, err := s2.CommitManifest(call1, sealedData("later", 100)); err != nil {
				t.Fatal(err)
			}
			s2.Close()
			if _, lb := openSpool(t, dir); lb.String() != "" {
				t.Fatalf("reopen logged:\n%s", lb)
			}
		})
	}
}

func TestOpenRemovesEmptyCallDirs(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	mustCommit(t, s, call1, 0, sealedData("x", 100))
	s.Close()
	empty := filepath.Join(dir, "segments", call2)
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	_, lb := openSpool(t, dir)
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s stays: %v", empty, err)
	}
	if len(lb.lines("WARN", "empty call directory", empty)) != 1 {
		t.Fatalf("not logged:\n%s", lb)
	}
	if _, err := os.Stat(filepath.Join(dir, "segments", call1)); err != nil {
		t.Fatalf("a call directory with a segment went: %v", err)
	}
}

func TestOpenLeavesUnknownFilesAlone(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	mustCommit(t, s, call1, 0, sealedData("x", 100))
	s.Close()
	unknown := []string{
		filepath.Join(dir, "segments", "notes.txt"),
		filepath.Join(dir, "segments", call1, "7.age"),
		filepath.Join(dir, "manifests", "a.b.age"),
		filepath.Join(dir, "purge", call1+".json.bak"),
	}
	for _, p := range unknown {
		if err := os.WriteFile(p, []byte("not the spool's"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// An index entry that names no spool file, and one that cannot be read.
	editIndex(t, dir, func(b *bolt.Bucket) error {
		if err := b.Put([]byte("segments/../../etc/passwd"), record{}.encode()); err != nil {
			return err
		}
		return b.Put([]byte(seg(call1, 0).rel()), []byte{9, 9, 9})
	})
	s2, lb := openSpool(t, dir)
	for _, p := range unknown {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if len(lb.lines("WARN", "did not make", p)) != 1 {
			t.Errorf("%s not logged:\n%s", p, lb)
		}
	}
	if len(lb.lines("WARN", "names no spool file")) != 1 || len(lb.lines("ERROR", "unreadable index entry")) != 1 {
		t.Errorf("bad index entries not logged:\n%s", lb)
	}
	st := stateOf(t, s2)
	if st.usage != (Usage{Bytes: 100, Segments: 1, Calls: 1}) || len(st.files) != 1 {
		t.Fatalf("state: %+v", st)
	}
}

var sealedTime = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// pageSize is bbolt's page size on the machines the tests run on.
var pageSize = os.Getpagesize()

// setMeta sets the 8-byte field at off in both meta pages of a bbolt file (16 is the root
// bucket's page, 40 the high-water mark) and fixes their checksums, so that bbolt accepts
// the file and meets the change only when it uses the field.
func setMeta(t *testing.T, path string, off int, val uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m := b[i*pageSize+16:] // after the page header
		binary.LittleEndian.PutUint64(m[off:], val)
		h := fnv.New64a()
		h.Write(m[:56])
		binary.LittleEndian.PutUint64(m[56:], h.Sum64())
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// highWater is the end of the pages a bbolt file uses.
func highWater(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

func TestOpenDamagedIndex(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the meta page surgery below assumes a little-endian machine")
	}
	garbage := func(n int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, sealedData("garbage", n), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	truncate := func(size func(hw int64) int64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.Truncate(path, size(highWater(t, path))); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		logged string
	}{
		{"short garbage", garbage(20), ""},
		{"garbage of three pages", garbage(3 * pageSize), ""},
		{"garbage of a megabyte", garbage(1 << 20), ""},
		{"cut to 3000 bytes", truncate(func(int64) int64 { return 3000 }), ""},
		{"cut inside its pages", truncate(func(hw int64) int64 { return hw - int64(pageSize) - 100 }), "faulted"},
		// Within the 1 MiB map but past the end of the file: reading it faults (SIGBUS).
		{"root page past the end of the file", func(t *testing.T, path string) {
			hw := highWater(t, path)
			if err := os.Truncate(path, hw); err != nil {
				t.Fatal(err)
			}
			setMeta(t, path, 16, uint64(hw)/uint64(pageSize)+20)
		}, "faulted"},
		// Inside the file, where the pages are zeros: bbolt panics on them.
		{"root page of zeros", func(t *testing.T, path string) {
			setMeta(t, path, 16, 200)
		}, ""},
		// Pages below the high-water mark that are neither used nor free: only bbolt's
		// consistency check sees it.
		{"pages leaked", func(t *testing.T, path string) {
			setMeta(t, path, 40, uint64(highWater(t, path))/uint64(pageSize)+3)
		}, "unreachable unfreed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openSpool(t, dir)
			fill(t, s)
			want := stateOf(t, s)
			s.Close()
			index := filepath.Join(dir, indexName)
			c.damage(t, index)
			damaged, err := os.ReadFile(index)
			if err != nil {
				t.Fatal(err)
			}

			s2, lb := openSpool(t, dir)
			asides, _ := filepath.Glob(index + ".damaged-*")
			if len(asides) != 1 {
				t.Fatalf("damaged index moved aside to %v, want one file", asides)
			}
			if kept, _ := os.ReadFile(asides[0]); !bytes.Equal(kept, damaged) {
				t.Fatal("the damaged index was not kept as it was")
			}
			if len(lb.lines("ERROR", "damaged", index, asides[0], c.logged)) != 1 {
				t.Fatalf("want an error naming %s and %s (%q):\n%s", index, asides[0], c.logged, lb)
			}
			if got := stateOf(t, s2); !got.equal(want) {
				t.Fatalf("rebuilt state:\n got %+v\nwant %+v", got, want)
			}
			// It keeps recording, and the rebuilt index holds.
			mustCommit(t, s2, call1, 5, sealedData("after", 100))
			want = stateOf(t, s2)
			s2.Close()
			s3, lb3 := openSpool(t, dir)
			if got := stateOf(t, s3); !got.equal(want) || lb3.String() != "" {
				t.Fatalf("after the rebuild: %+v, want %+v; log:\n%s", got, want, lb3)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	mustCommit(t, s, call1, 0, sealedData("x", 100))
	s2, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of the same spool succeeded")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error does not say the index is in use: %v", err)
	}
	if asides, _ := filepath.Glob(filepath.Join(dir, "index.db.damaged-*")); len(asides) != 0 {
		t.Fatalf("a locked index was moved aside: %v", asides)
	}
	if _, err := s.ReadFile(Entry{}); !errors.Is(err, ErrBadID) {
		t.Fatal(err)
	}
}

func TestOpenFutureSchema(t *testing.T) {
	dir := t.TempDir()
	s, _ := openSpool(t, dir)
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, indexName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte{schemaVersion + 1}) })
	db.Close()
	s2, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
	if err == nil {
		s2.Close()
		t.Fatal("an index of a newer schema was opened")
	}
	if !strings.Contains(err.Error(), "newer agent") {
		t.Errorf("error does not say what to do: %v", err)
	}
	if asides, _ := filepath.Glob(filepath.Join(dir, "index.db.damaged-*")); len(asides) != 0 {
		t.Fatalf("an index of a newer schema was moved aside: %v", asides)
	}
}

func TestRecordEncoding(t *testing.T) {
	v := version{size: 12345, sum: sha256.Sum256([]byte("x")), created: sealedTime}
	for _, r := range []record{
		{version: v},
		{version: v, removing: true},
		{version: v, next: &version{size: 1, sum: sha256.Sum256([]byte("y")), created: sealedTime}},
	} {
		got, err := decodeRecord(r.encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.size != r.size || got.sum != r.sum || !got.created.Equal(r.created) || got.removing != r.removing ||
			(got.next == nil) != (r.next == nil) || (r.next != nil && (got.next.size != r.next.size || got.next.sum != r.next.sum)) {
			t.Fatalf("round trip of %+v gave %+v", r, got)
		}
		enc := r.encode()
		for _, bad := range [][]byte{nil, enc[:len(enc)-1], append(slices.Clone(enc), 0), append([]byte{2}, enc[1:]...)} {
			if _, err := decodeRecord(bad); err == nil {
				t.Errorf("decoded a malformed entry %x", bad)
			}
		}
	}
}
