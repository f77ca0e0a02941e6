package recording

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audio/g711"
	"github.com/wallphone/wallphone/spool"
)

// memSpool keeps sealed files in memory.
type memSpool struct {
	mu        sync.Mutex // guards everything below
	segments  map[string]map[int][]byte
	manifests map[string][][]byte // every version written, in order
	full      error
	failSeg   int   // fail CommitSegment for this seq (-1: never)
	room      error // what Room says
}

func newMemSpool() *memSpool {
	return &memSpool{segments: map[string]map[int][]byte{}, manifests: map[string][][]byte{}, failSeg: -1}
}

func (s *memSpool) CanRecord() error { return s.full }
func (s *memSpool) Room(int64) error { return s.room }

func (s *memSpool) CommitSegment(id string, seq int, data []byte) (spool.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == s.failSeg {
		return spool.Entry{}, spool.ErrFull
	}
	if s.segments[id] == nil {
		s.segments[id] = map[int][]byte{}
	}
	s.segments[id][seq] = bytes.Clone(data)
	return spool.Entry{CallID: id, Seq: seq, Size: int64(len(data)), SHA256: sha256.Sum256(data)}, nil
}

func (s *memSpool) CommitManifest(id string, data []byte) (spool.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.manifests[id] = append(s.manifests[id], bytes.Clone(data))
	return spool.Entry{CallID: id, Seq: -1}, nil
}

type keys struct {
	ids  []*age.X25519Identity
	rcps []string
}

func newKeys(t testing.TB) keys {
	var k keys
	for range 2 {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		k.ids = append(k.ids, id)
		k.rcps = append(k.rcps, id.Recipient().String())
	}
	return k
}

func open(t testing.TB, sealed []byte, id age.Identity) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testDeviceKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var info = CallInfo{
	CallID: "20260101T090000Z-abcdef012345", CallerID: "1001", E164: "+15125550123",
	Decision: "recorded", Reason: "default_recorded", RegistryVersion: 3, PolicyVersion: 2,
	Started: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC),
}

// frames makes n frames of each direction, every one different.
func frames(n int) (caller, called []audio.Frame) {
	caller, called = make([]audio.Frame, n), make([]audio.Frame, n)
	for i := range n {
		for j := range audio.FrameSamples {
			caller[i][j] = int16((i*audio.FrameSamples + j) * 37 % 20000)
			called[i][j] = int16(-((i*audio.FrameSamples + j) * 53 % 20000))
		}
	}
	return caller, called
}

func TestRecordAndOpen(t *testing.T) {
	k := newKeys(t)
	sp := newMemSpool()
	r, err := New(Options{Spool: sp, Recipients: k.rcps, Segment: time.Second, DeviceID: "wp-1", DeviceKey: testDeviceKey})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec, err := r.Start(info)
	if err != nil {
		t.Fatal(err)
	}
	// The provisional manifest exists before any audio.
	if len(sp.manifests[info.CallID]) != 1 {
		t.Fatalf("%d manifests after Start", len(sp.manifests[info.CallID]))
	}
	const n = 125 // two whole 1 s segments and a half
	caller, called := frames(n)
	for i := range n {
		if err := rec.Write(&caller[i], &called[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	r.Flush()
	segs := sp.segments[info.CallID]
	if len(segs) != 3 {
		t.Fatalf("%d segments", len(segs))
	}
	versions := sp.manifests[info.CallID]
	// Start, after each segment, and the final one.
	if len(versions) != 1+3 {
		t.Fatalf("%d manifest versions", len(versions))
	}
	for _, id := range k.ids { // either recipient opens everything
		m, pub, err := OpenManifest(open(t, versions[len(versions)-1], id))
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal(testDeviceKey.Public()) {
			t.Fatal("manifest not signed with the device key")
		}
		if !m.Complete || m.CallID != info.CallID || m.Number != info.E164 || m.CallerID != "1001" ||
			m.Decision != "recorded" || m.RegistryVersion != 3 || len(m.Segments) != 3 ||
			!m.Ended.Equal(info.Started.Add(n*audio.FrameDuration)) {
			t.Fatalf("manifest %+v", m)
		}
		frame := 0
		for seq := range 3 {
			sum := sha256.Sum256(segs[seq])
			if m.Segments[seq].SHA256 != hex.EncodeToString(sum[:]) || m.Segments[seq].Size != int64(len(segs[seq])) {
				t.Fatalf("segment %d hash or size not as the manifest says", seq)
			}
			meta, data, err := ParseSegment(open(t, segs[seq], id))
			if err != nil {
				t.Fatal(err)
			}
			want := []int{50, 50, 25}[seq]
			if meta.Seq != seq || meta.Frames != want || meta.FirstFrame != frame || meta.CallID != info.CallID {
				t.Fatalf("segment %d meta %+v", seq, meta)
			}
			for f := range want {
				for j := range audio.FrameSamples {
					got := data[(f*audio.FrameSamples+j)*2 : (f*audio.FrameSamples+j)*2+2]
					if got[0] != g711.EncodeUlaw(caller[frame][j]) || got[1] != g711.EncodeUlaw(called[frame][j]) {
						t.Fatalf("segment %d frame %d sample %d differs", seq, f, j)
					}
				}
				frame++
			}
		}
	}
	// The earlier manifests were not complete, and listed the segments as they came.
	for v, b := range versions[:len(versions)-1] {
		m, _, err := OpenManifest(open(t, b, k.ids[0]))
		if err != nil || m.Complete || len(m.Segments) != v {
			t.Fatalf("manifest version %d: %+v %v", v, m, err)
		}
	}
}

func TestNothingPlaintext(t *testing.T) {
	k := newKeys(t)
	sp := newMemSpool()
	r, err := New(Options{Spool: sp, Recipients: k.rcps, Segment: time.Second, DeviceKey: testDeviceKey})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := r.Start(info)
	caller, called := frames(60)
	var plain []byte
	for i := range caller {
		rec.Write(&caller[i], &called[i])
		for j := range audio.FrameSamples {
			plain = append(plain, g711.EncodeUlaw(caller[i][j]), g711.EncodeUlaw(called[i][j]))
		}
	}
	rec.Close()
	r.Close()
	probe := plain[1000:1032]
	for seq, b := range sp.segments[info.CallID] {
		if bytes.Contains(b, probe) {
			t.Fatalf("segment %d holds plaintext audio", seq)
		}
	}
	for _, b := range sp.manifests[info.CallID] {
		if bytes.Contains(b, []byte("5550123")) || bytes.Contains(b, []byte(`"1001"`)) {
			t.Fatal("a manifest holds the number or caller in the clear")
		}
	}
}

func TestFullSpoolRefuses(t *testing.T) {
	k := newKeys(t)
	sp := newMemSpool()
	sp.full = fmt.Errorf("used 99 of 100: %w", spool.ErrFull)
	r, _ := New(Options{Spool: sp, Recipients: k.rcps, Segment: time.Second, DeviceKey: testDeviceKey})
	defer r.Close()
	if _, err := r.Start(info); !errors.Is(err, spool.ErrFull) {
		t.Fatalf("err %v", err)
	}
	if len(sp.manifests) != 0 {
		t.Fatal("a refused call left a manifest")
	}
}

func TestLostSegmentFailsTheCall(t *testing.T) {
	k := newKeys(t)
	sp := newMemSpool()
	sp.failSeg = 1
	r, _ := New(Options{Spool: sp, Recipients: k.rcps, Segment: time.Second, DeviceKey: testDeviceKey})
	defer r.Close()
	rec, _ := r.Start(info)
	caller, called := frames(1)
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		err = rec.Write(&caller[0], &called[0])
		r.Flush()
	}
	// The call loop learns of it at the next frame and ends the call.
	if !errors.Is(err, spool.ErrFull) {
		t.Fatalf("err %v", err)
	}
	if rec.Close() == nil {
		t.Fatal("Close hid the failure")
	}
	r.Flush()
	// The lost segment is in the manifest, with its length and why: an investigator hears
	// silence in its place and reads that the phone lost it, rather than a shorter call.
	ms := sp.manifests[info.CallID]
	rep, wav := assembleRec(t, ms[len(ms)-1], sp.segments[info.CallID], k.ids[0])
	if !rep.Complete || len(rep.Lost) != 1 || rep.Lost[0] != 1 || rep.OK() {
		t.Fatalf("report %+v: want segment 1 lost, the manifest complete, not OK", rep)
	}
	if !strings.Contains(rep.LostReasons[1], "spool is full") {
		t.Errorf("lost segment 1 for %q, want the spool's error", rep.LostReasons[1])
	}
	// Segment 0 (1 s), segment 1 lost (1 s of silence), then what was written after it.
	if rep.Frames < 100 || len(wav) != int(WAVSize(rep.Frames)) {
		t.Errorf("%d frames, %d bytes", rep.Frames, len(wav))
	}
}

// TestStopsWhileTheLastSegmentFits: when the flash has room for no more than the segment
// being recorded, the call is told to stop at once (Write fails) and what it recorded until
// then is kept whole: nothing talked goes unrecorded, and nothing is lost.
func TestStopsWhileTheLastSegmentFits(t *testing.T) {
	k := newKeys(t)
	sp := newMemSpool()
	sp.room = fmt.Errorf("file system almost full: %w", spool.ErrFull)
	r, _ := New(Options{Spool: sp, Recipients: k.rcps, Segment: time.Second, DeviceKey: testDeviceKey})
	defer r.Close()
	rec, _ := r.Start(info)
	caller, called := frames(1)
	written := 0
	var err error
	for ; written < 500; written++ {
		if err = rec.Write(&caller[0], &called[0]); err != nil {
			break
		}
		r.Flush()
	}
	if !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Write went on with no room for the next segment: err %v after %d frames", err, written)
	}
	if err := rec.Close(); err != nil {
		t.Fatalf("Close: %v: nothing was lost", err)
	}
	r.Flush()
	ms := sp.manifests[info.CallID]
	rep, _ := assembleRec(t, ms[len(ms)-1], sp.segments[info.CallID], k.ids[0])
	if !rep.OK() || !rep.Complete || rep.Frames != written {
		t.Fatalf("report %+v: want every one of the %d frames written, complete", rep, written)
	}
}

func assembleRec(t *testing.T, manifest []byte, segs map[int][]byte, id age.Identity) (Report, []byte) {
	t.Helper()
	var out bytes.Buffer
	rep, err := Assemble(manifest, segs, []age.Identity{id}, &out)
	if err != nil {
		t.Fatal(err)
	}
	return rep, out.Bytes()
}

func TestOptions(t *testing.T) {
	k := newKeys(t)
	for _, o := range []Options{
		{Recipients: k.rcps, Segment: time.Second},
		{Spool: newMemSpool(), Recipients: k.rcps, Segment: 30 * time.Millisecond},
		{Spool: newMemSpool(), Segment: time.Second},
		{Spool: newMemSpool(), Recipients: []string{"age1nope"}, Segment: time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	r, _ := New(Options{Spool: newMemSpool(), Recipients: k.rcps, Segment: time.Second, DeviceKey: testDeviceKey})
	r.Close()
	if _, err := r.Start(info); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// BenchmarkSeal compares sealing a 5 s segment through the recorder with age alone on the
// same bytes, and reports the sealed bytes per call-minute.
func BenchmarkSeal(b *testing.B) {
	k := newKeys(b)
	rcps := make([]age.Recipient, len(k.ids))
	for i, id := range k.ids {
		rcps[i] = id.Recipient()
	}
	plain := make([]byte, 250*bytesPerFrame)
	b.Run("baseline=age", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for range b.N {
			var out bytes.Buffer
			w, _ := age.Encrypt(&out, rcps...)
			w.Write(plain)
			w.Close()
		}
	})
	b.Run("recorder", func(b *testing.B) {
		sp := newMemSpool()
		r, _ := New(Options{Spool: sp, Recipients: k.rcps, Segment: 5 * time.Second, DeviceKey: testDeviceKey})
		b.SetBytes(int64(len(plain)))
		j := job{c: &Call{r: r, info: info}, frames: 250, buf: plain}
		for range b.N {
			if err := r.sealSegment(j); err != nil {
				b.Fatal(err)
			}
		}
		sealed := len(sp.segments[info.CallID][0])
		b.ReportMetric(float64(sealed*12), "sealed-B/call-min")
		r.Close()
	})
}

// BenchmarkRecordCall is the recorder's whole cost for one minute of a call: the encoding on
// the call loop and the sealing on its own goroutine.
func BenchmarkRecordCall(b *testing.B) {
	k := newKeys(b)
	caller, called := frames(1)
	for range b.N {
		sp := newMemSpool()
		r, _ := New(Options{Spool: sp, Recipients: k.rcps, Segment: 5 * time.Second, DeviceKey: testDeviceKey})
		rec, _ := r.Start(info)
		for range 3000 {
			rec.Write(&caller[0], &called[0])
		}
		rec.Close()
		r.Close()
	}
	perMinute := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perMinute/float64(time.Minute.Nanoseconds())*100, "%core")
}

// BenchmarkMemoryPerCall reports the heap that one active recorded call keeps live: its
// segment buffer, the one being sealed, and the sealing goroutine's working set.
func BenchmarkMemoryPerCall(b *testing.B) {
	k := newKeys(b)
	caller, called := frames(1)
	var live uint64
	for range b.N {
		sp := newMemSpool()
		r, _ := New(Options{Spool: sp, Recipients: k.rcps, Segment: 5 * time.Second, DeviceKey: testDeviceKey})
		var before, during runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rec, _ := r.Start(info)
		// Past the first segment, so that a buffer has been sealed and one is being filled.
		for range 400 {
			rec.Write(&caller[0], &called[0])
		}
		r.Flush()
		sp.segments = map[string]map[int][]byte{} // the spool's copies are not the call's
		sp.manifests = map[string][][]byte{}
		runtime.GC()
		runtime.ReadMemStats(&during)
		if during.HeapAlloc > before.HeapAlloc {
			live += during.HeapAlloc - before.HeapAlloc
		}
		rec.Close()
		r.Close()
	}
	b.ReportMetric(float64(live)/float64(b.N), "live-B/call")
}

// TestRefusesUnrecordedDecisions: the recorder does not trust its caller. Whatever the call
// machine does, a call not decided "recorded" is never recorded: no manifest, no segment.
func TestRefusesUnrecordedDecisions(t *testing.T) {
	k := newKeys(t)
	sp := newMemSpool()
	r, _ := New(Options{Spool: sp, Recipients: k.rcps, Segment: time.Second, DeviceKey: testDeviceKey})
	defer r.Close()
	for _, d := range []string{"privileged", "free", "blocked", "", "Recorded", "unavailable"} {
		ci := info
		ci.Decision = d
		if c, err := r.Start(ci); !errors.Is(err, ErrNotRecorded) || c != nil {
			t.Errorf("decision %q: Start gave %v, %v; want ErrNotRecorded", d, c, err)
		}
	}
	if len(sp.manifests) != 0 {
		t.Fatalf("a refused call left %d manifests", len(sp.manifests))
	}
}
