package recording

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audio/g711"
	"github.com/wallphone/wallphone/spool"
)

const testDevice = "dev-test"

// testCall is a call sealed the way the Recorder seals one: segments of known audio, each a
// complete age file, and the SegmentInfo a manifest lists for each.
type testCall struct {
	id     string
	audio  [][]byte // plaintext µ-law of each segment
	sealed map[int][]byte
	infos  []SegmentInfo
}

// newTestCall seals segments of the given frame counts to recips.
func newTestCall(t testing.TB, id string, frames []int, recips ...age.Recipient) *testCall {
	t.Helper()
	c := &testCall{id: id, sealed: make(map[int][]byte)}
	rng := rand.New(rand.NewPCG(uint64(len(id)), uint64(id[len(id)-1])))
	first := 0
	for seq, n := range frames {
		data := make([]byte, n*bytesPerFrame)
		for i := range data {
			data[i] = byte(rng.IntN(0xFF)) // never µ-law silence (0xFF), so that silence shows
		}
		meta := SegmentMeta{Format: SegmentFormat, CallID: id, DeviceID: testDevice, Seq: seq,
			FirstFrame: first, Frames: n}
		sealed := sealSegmentBytes(t, meta, data, recips...)
		sum := sha256.Sum256(sealed)
		c.audio = append(c.audio, data)
		c.sealed[seq] = sealed
		c.infos = append(c.infos, SegmentInfo{Seq: seq, Frames: n, Size: int64(len(sealed)),
			SHA256: hex.EncodeToString(sum[:])})
		first += n
	}
	return c
}

func sealSegmentBytes(t testing.TB, meta SegmentMeta, data []byte, recips ...age.Recipient) []byte {
	t.Helper()
	hdr, err := appendSegmentHeader(nil, meta)
	if err != nil {
		t.Fatal(err)
	}
	return seal(t, append(hdr, data...), recips...)
}

func seal(t testing.TB, plain []byte, recips ...age.Recipient) []byte {
	t.Helper()
	var ct bytes.Buffer
	w, err := age.Encrypt(&ct, recips...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return ct.Bytes()
}

// manifest seals a manifest listing the first listed segments.
func (c *testCall) manifest(t testing.TB, listed int, complete bool, recips ...age.Recipient) []byte {
	t.Helper()
	return sealManifest(t, c.id, c.infos[:listed], complete, recips...)
}

func sealManifest(t testing.TB, id string, infos []SegmentInfo, complete bool, recips ...age.Recipient) []byte {
	t.Helper()
	m := Manifest{Format: ManifestFormat, CallID: id, DeviceID: testDevice, CallerID: "1001",
		Number: "+15125550123", Started: time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC), Complete: complete,
		Decision: "recorded", Reason: "default_recorded", RegistryVersion: 7, PolicyVersion: 3,
		Segments: append([]SegmentInfo{}, infos...)}
	b, err := SignManifest(m, testDeviceKey)
	if err != nil {
		t.Fatal(err)
	}
	return seal(t, b, recips...)
}

// segments returns a copy of the sealed segments that a test may change.
func (c *testCall) segments() map[int][]byte {
	m := make(map[int][]byte, len(c.sealed))
	for k, v := range c.sealed {
		m[k] = bytes.Clone(v)
	}
	return m
}

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// invKeys are the two investigators' identities every test call is sealed to.
type invKeys struct{ a, b *age.X25519Identity }

func newInvKeys(t testing.TB) invKeys { return invKeys{newIdentity(t), newIdentity(t)} }

func (k invKeys) recips() []age.Recipient { return []age.Recipient{k.a.Recipient(), k.b.Recipient()} }

// readWAV checks that b is the WAV file Assemble promises (µ-law, 8 kHz, two channels, sizes
// consistent) and returns its audio.
func readWAV(t *testing.T, b []byte) []byte {
	t.Helper()
	le := binary.LittleEndian
	if len(b) < wavHeaderLen {
		t.Fatalf("output is %d bytes, shorter than a WAV header", len(b))
	}
	h := b[:wavHeaderLen]
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("WAV %s = %v, want %v", what, got, want)
		}
	}
	check("RIFF", string(h[0:4]), "RIFF")
	check("RIFF size", int(le.Uint32(h[4:])), len(b)-8)
	check("WAVE", string(h[8:12]), "WAVE")
	check("fmt id", string(h[12:16]), "fmt ")
	check("fmt size", le.Uint32(h[16:]), uint32(18))
	check("format", le.Uint16(h[20:]), uint16(7))
	check("channels", le.Uint16(h[22:]), uint16(2))
	check("rate", le.Uint32(h[24:]), uint32(8000))
	check("byte rate", le.Uint32(h[28:]), uint32(16000))
	check("block align", le.Uint16(h[32:]), uint16(2))
	check("bits", le.Uint16(h[34:]), uint16(8))
	check("fact id", string(h[38:42]), "fact")
	check("fact samples", int(le.Uint32(h[46:])), (len(b)-wavHeaderLen)/2)
	check("data id", string(h[50:54]), "data")
	check("data size", int(le.Uint32(h[54:])), len(b)-wavHeaderLen)
	return b[wavHeaderLen:]
}

// silenceOf is µ-law zero, both channels.
func silenceOf(frames int) []byte { return bytes.Repeat([]byte{0xFF}, frames*bytesPerFrame) }

func assemble(t *testing.T, manifest []byte, segs map[int][]byte, ids ...age.Identity) (Report, []byte) {
	t.Helper()
	var out bytes.Buffer
	rep, err := Assemble(manifest, segs, ids, &out)
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	if got, want := int64(out.Len()), WAVSize(rep.Frames); got != want {
		t.Errorf("output is %d bytes, WAVSize(%d) = %d", got, rep.Frames, want)
	}
	return rep, readWAV(t, out.Bytes())
}

func equalAudio(t *testing.T, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("audio is %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("audio differs first at byte %d (frame %d): %#x, want %#x", i, i/bytesPerFrame, got[i], want[i])
		}
	}
}

func TestAssembleClean(t *testing.T) {
	k := newInvKeys(t)
	c := newTestCall(t, "20260102T090000Z-aa", []int{50, 50, 17}, k.recips()...)
	man := c.manifest(t, 3, true, k.recips()...)
	want := slices.Concat(c.audio...)
	// Each of the two recipients' identities opens the call on its own, and together.
	for name, ids := range map[string][]age.Identity{
		"first": {k.a}, "second": {k.b}, "both": {newIdentity(t), k.b, k.a},
	} {
		t.Run(name, func(t *testing.T) {
			rep, got := assemble(t, man, c.segments(), ids...)
			wantRep := Report{CallID: c.id, Complete: true, Listed: 3, Frames: 117}
			if !reportEqual(rep, wantRep) || !rep.OK() {
				t.Errorf("report = %+v, want %+v", rep, wantRep)
			}
			equalAudio(t, got, want)
		})
	}
}

func reportEqual(a, b Report) bool {
	return a.CallID == b.CallID && a.Complete == b.Complete && a.Listed == b.Listed && a.Frames == b.Frames &&
		slices.Equal(a.Missing, b.Missing) && slices.Equal(a.Altered, b.Altered) &&
		slices.Equal(a.Unlisted, b.Unlisted) && len(a.Reasons) == len(a.Altered)
}

func TestAssembleMissing(t *testing.T) {
	k := newInvKeys(t)
	c := newTestCall(t, "20260102T090000Z-ab", []int{50, 40, 50, 10}, k.recips()...)
	segs := c.segments()
	delete(segs, 1)
	rep, got := assemble(t, c.manifest(t, 4, true, k.recips()...), segs, k.a)
	if !slices.Equal(rep.Missing, []int{1}) || rep.Altered != nil || rep.Unlisted != nil || rep.OK() || rep.Frames != 150 {
		t.Errorf("report = %+v, want segment 1 missing and 150 frames", rep)
	}
	equalAudio(t, got, slices.Concat(c.audio[0], silenceOf(40), c.audio[2], c.audio[3]))
}

func TestAssembleAltered(t *testing.T) {
	k := newInvKeys(t)
	frames := []int{30, 30, 30}
	c := newTestCall(t, "20260102T090000Z-ac", frames, k.recips()...)
	other := newTestCall(t, "20260102T093000Z-zz", frames, k.recips()...)
	man := c.manifest(t, 3, true, k.recips()...)
	wantAudio := slices.Concat(c.audio[0], silenceOf(30), c.audio[2])

	flipped := c.segments()
	flipped[1][len(flipped[1])/2] ^= 0x01
	swapped := c.segments()
	swapped[1] = other.sealed[1]
	truncated := c.segments()
	truncated[1] = truncated[1][:len(truncated[1])-10]

	for _, tc := range []struct {
		name string
		segs map[int][]byte
	}{
		{"flipped byte", flipped},
		{"swapped from another call", swapped},
		{"truncated", truncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, got := assemble(t, man, tc.segs, k.a)
			if !slices.Equal(rep.Altered, []int{1}) || rep.Missing != nil || rep.OK() || rep.Frames != 90 {
				t.Fatalf("report = %+v, want segment 1 altered", rep)
			}
			if err := rep.Reasons[1]; !errors.Is(err, ErrHash) {
				t.Errorf("reason = %v, want ErrHash", err)
			}
			equalAudio(t, got, wantAudio)
		})
	}
}

// A manifest that vouches for bytes it should not (anyone holding the public recipient can
// seal one) is still caught by what the segments say about themselves.
func TestAssembleMetadataChecks(t *testing.T) {
	k := newInvKeys(t)
	frames := []int{30, 30, 30}
	c := newTestCall(t, "20260102T090000Z-ad", frames, k.recips()...)
	other := newTestCall(t, "20260102T093000Z-zy", frames, k.recips()...)

	// Seq 2 of the same call, sealed as seq 2 but filed and listed as seq 1.
	misplaced := func() ([]SegmentInfo, map[int][]byte) {
		infos := slices.Clone(c.infos)
		segs := c.segments()
		infos[1] = c.infos[2]
		infos[1].Seq = 1
		segs[1] = c.sealed[2]
		return infos, segs
	}
	// Segment 1 listed with more frames than it has.
	longer := func() ([]SegmentInfo, map[int][]byte) {
		infos := slices.Clone(c.infos)
		infos[1].Frames = 35
		return infos, c.segments()
	}
	// A segment 1 whose first frame is not where the manifest puts it.
	shifted := func() ([]SegmentInfo, map[int][]byte) {
		infos := slices.Clone(c.infos)
		segs := c.segments()
		meta := SegmentMeta{Format: SegmentFormat, CallID: c.id, DeviceID: testDevice, Seq: 1, FirstFrame: 29, Frames: 30}
		segs[1] = sealSegmentBytes(t, meta, c.audio[1], k.recips()...)
		sum := sha256.Sum256(segs[1])
		infos[1].SHA256, infos[1].Size = hex.EncodeToString(sum[:]), int64(len(segs[1]))
		return infos, segs
	}
	// Segment 1 of the same call id, recorded by another phone.
	otherPhone := func() ([]SegmentInfo, map[int][]byte) {
		infos := slices.Clone(c.infos)
		segs := c.segments()
		meta := SegmentMeta{Format: SegmentFormat, CallID: c.id, DeviceID: "dev-other", Seq: 1, FirstFrame: 30, Frames: 30}
		segs[1] = sealSegmentBytes(t, meta, c.audio[1], k.recips()...)
		sum := sha256.Sum256(segs[1])
		infos[1].SHA256, infos[1].Size = hex.EncodeToString(sum[:]), int64(len(segs[1]))
		return infos, segs
	}
	// Listed and hashed right, but sealed to someone else.
	foreignKey := func() ([]SegmentInfo, map[int][]byte) {
		infos := slices.Clone(c.infos)
		segs := c.segments()
		meta := SegmentMeta{Format: SegmentFormat, CallID: c.id, DeviceID: testDevice, Seq: 1, FirstFrame: 30, Frames: 30}
		segs[1] = sealSegmentBytes(t, meta, c.audio[1], newIdentity(t).Recipient())
		sum := sha256.Sum256(segs[1])
		infos[1].SHA256, infos[1].Size = hex.EncodeToString(sum[:]), int64(len(segs[1]))
		return infos, segs
	}
	// Listed and hashed right, but not a segment.
	notSegment := func() ([]SegmentInfo, map[int][]byte) {
		infos := slices.Clone(c.infos)
		segs := c.segments()
		segs[1] = seal(t, bytes.Repeat([]byte("x"), 100), k.recips()...)
		sum := sha256.Sum256(segs[1])
		infos[1].SHA256, infos[1].Size = hex.EncodeToString(sum[:]), int64(len(segs[1]))
		return infos, segs
	}

	for _, tc := range []struct {
		name   string
		make   func() ([]SegmentInfo, map[int][]byte)
		want   error
		frames int  // of segment 1 in the output
		also2  bool // segment 2 is refused too
	}{
		{"another call's segment", func() ([]SegmentInfo, map[int][]byte) {
			infos := slices.Clone(c.infos)
			segs := c.segments()
			infos[1], segs[1] = other.infos[1], other.sealed[1]
			return infos, segs
		}, ErrMismatch, 30, false},
		{"another segment of the call", misplaced, ErrMismatch, 30, false},
		// The manifest's timeline moves on by 35 frames: segment 2 no longer fits either.
		{"frame count", longer, ErrMismatch, 35, true},
		{"first frame", shifted, ErrMismatch, 30, false},
		{"another phone", otherPhone, ErrMismatch, 30, false},
		{"sealed to someone else", foreignKey, ErrNoIdentity, 30, false},
		{"not a segment", notSegment, ErrFormat, 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			infos, segs := tc.make()
			man := sealManifest(t, c.id, infos, true, k.recips()...)
			rep, got := assemble(t, man, segs, k.a)
			altered, last := []int{1}, c.audio[2]
			if tc.also2 {
				altered, last = []int{1, 2}, silenceOf(30)
			}
			if !slices.Equal(rep.Altered, altered) || rep.OK() {
				t.Fatalf("report = %+v, want %v altered", rep, altered)
			}
			if err := rep.Reasons[1]; !errors.Is(err, tc.want) {
				t.Errorf("reason = %v, want %v", err, tc.want)
			}
			equalAudio(t, got, slices.Concat(c.audio[0], silenceOf(tc.frames), last))
		})
	}
}

func TestAssembleUnlisted(t *testing.T) {
	k := newInvKeys(t)
	c := newTestCall(t, "20260102T090000Z-ae", []int{50, 50, 50, 20}, k.recips()...)
	other := newTestCall(t, "20260102T093000Z-zx", []int{50, 50, 50, 20}, k.recips()...)

	t.Run("incomplete manifest: used", func(t *testing.T) {
		// The phone stopped after sealing segments 2 and 3, before listing them.
		rep, got := assemble(t, c.manifest(t, 2, false, k.recips()...), c.segments(), k.b)
		if !slices.Equal(rep.Unlisted, []int{2, 3}) || rep.Missing != nil || rep.Altered != nil ||
			!rep.OK() || !rep.UnlistedUsed() || rep.Complete || rep.Listed != 2 || rep.Frames != 170 {
			t.Errorf("report = %+v, want 2 and 3 unlisted and used", rep)
		}
		equalAudio(t, got, slices.Concat(c.audio...))
	})
	t.Run("complete manifest: not used", func(t *testing.T) {
		rep, got := assemble(t, c.manifest(t, 2, true, k.recips()...), c.segments(), k.b)
		if !slices.Equal(rep.Unlisted, []int{2, 3}) || rep.OK() || rep.UnlistedUsed() || rep.Frames != 100 {
			t.Errorf("report = %+v, want 2 and 3 unlisted, not used", rep)
		}
		equalAudio(t, got, slices.Concat(c.audio[0], c.audio[1]))
	})
	t.Run("incomplete manifest: a gap", func(t *testing.T) {
		segs := c.segments()
		delete(segs, 2)
		rep, got := assemble(t, c.manifest(t, 1, false, k.recips()...), segs, k.a)
		if !slices.Equal(rep.Unlisted, []int{1, 3}) || !slices.Equal(rep.Missing, []int{2}) || rep.Frames != 170 {
			t.Errorf("report = %+v, want 1 and 3 unlisted, 2 missing", rep)
		}
		equalAudio(t, got, slices.Concat(c.audio[0], c.audio[1], silenceOf(50), c.audio[3]))
	})
	t.Run("incomplete manifest: an altered unlisted segment", func(t *testing.T) {
		segs := c.segments()
		segs[2][len(segs[2])-5] ^= 0x80
		rep, got := assemble(t, c.manifest(t, 2, false, k.recips()...), segs, k.a)
		if !slices.Equal(rep.Unlisted, []int{3}) || !slices.Equal(rep.Altered, []int{2}) || rep.Missing != nil {
			t.Errorf("report = %+v, want 3 unlisted, 2 altered", rep)
		}
		if !errors.Is(rep.Reasons[2], ErrTampered) {
			t.Errorf("reason = %v, want ErrTampered", rep.Reasons[2])
		}
		equalAudio(t, got, slices.Concat(c.audio[0], c.audio[1], silenceOf(50), c.audio[3]))
	})
	t.Run("incomplete manifest: another call's segment", func(t *testing.T) {
		segs := c.segments()
		delete(segs, 3)
		segs[2] = other.sealed[2]
		rep, got := assemble(t, c.manifest(t, 2, false, k.recips()...), segs, k.a)
		if rep.Unlisted != nil || !slices.Equal(rep.Altered, []int{2}) || rep.OK() || rep.Frames != 100 {
			t.Errorf("report = %+v, want 2 altered and not used", rep)
		}
		if !errors.Is(rep.Reasons[2], ErrMismatch) {
			t.Errorf("reason = %v, want ErrMismatch", rep.Reasons[2])
		}
		equalAudio(t, got, slices.Concat(c.audio[0], c.audio[1]))
	})
	// Unlisted segments that do not fit where they say they belong are refused.
	for _, tc := range []struct {
		name              string
		seq, first, count int
	}{
		{"starts inside segment 1", 2, 60, 50},
		{"skips no segment but frames", 2, 120, 50},
		{"skips a segment but no frames", 3, 100, 50},
		{"skips two segments but one frame", 4, 101, 50},
	} {
		t.Run("incomplete manifest: "+tc.name, func(t *testing.T) {
			segs := c.segments()
			delete(segs, 2)
			delete(segs, 3)
			meta := SegmentMeta{Format: SegmentFormat, CallID: c.id, DeviceID: testDevice, Seq: tc.seq,
				FirstFrame: tc.first, Frames: tc.count}
			segs[tc.seq] = sealSegmentBytes(t, meta, silenceOf(tc.count), k.recips()...)
			rep, _ := assemble(t, c.manifest(t, 2, false, k.recips()...), segs, k.a)
			if rep.Unlisted != nil || !slices.Equal(rep.Altered, []int{tc.seq}) || rep.Frames != 100 {
				t.Errorf("report = %+v, want %d altered and not used", rep, tc.seq)
			}
			if !errors.Is(rep.Reasons[tc.seq], ErrMismatch) {
				t.Errorf("reason = %v, want ErrMismatch", rep.Reasons[tc.seq])
			}
		})
	}
	t.Run("wrong number", func(t *testing.T) {
		segs := c.segments()
		segs[-1] = c.sealed[0]
		// Says it is segment 1 where it starts, but is filed as 2.
		meta := SegmentMeta{Format: SegmentFormat, CallID: c.id, DeviceID: testDevice, Seq: 1, FirstFrame: 100, Frames: 50}
		segs[2] = sealSegmentBytes(t, meta, c.audio[2], k.recips()...)
		rep, _ := assemble(t, c.manifest(t, 2, false, k.recips()...), segs, k.a)
		if !slices.Equal(rep.Altered, []int{-1, 2}) || !slices.Equal(rep.Unlisted, []int{3}) || rep.Frames != 170 {
			t.Errorf("report = %+v, want -1 and 2 altered", rep)
		}
		for _, seq := range rep.Altered {
			if !errors.Is(rep.Reasons[seq], ErrMismatch) {
				t.Errorf("reason %d = %v, want ErrMismatch", seq, rep.Reasons[seq])
			}
		}
	})
	t.Run("beyond six digits", func(t *testing.T) {
		segs := c.segments()
		meta := SegmentMeta{Format: SegmentFormat, CallID: c.id, DeviceID: testDevice, Seq: maxSeq + 1, FirstFrame: 170, Frames: 1}
		segs[maxSeq+1] = sealSegmentBytes(t, meta, silenceOf(1), k.recips()...)
		rep, _ := assemble(t, c.manifest(t, 4, true, k.recips()...), segs, k.a)
		if !slices.Equal(rep.Altered, []int{maxSeq + 1}) || rep.Unlisted != nil {
			t.Errorf("report = %+v, want %d altered", rep, maxSeq+1)
		}
	})
}

// ParseSegment compares lengths as products, which a huge frame count wraps around (on
// 64-bit, 345876451382054093 frames × 320 bytes is 64 bytes); openSegment refuses such a
// segment all the same.
func TestOpenSegmentFrameCountWraps(t *testing.T) {
	// frames × 5 ≡ 1 (mod 2^(IntSize-5)), so that frames × 160 ≡ 32 and frames × 320 ≡ 64.
	inv := uint64(1)
	for range 6 {
		inv *= 2 - 5*inv // Newton's iteration for the inverse of 5 modulo 2^64
	}
	frames := int(inv & (1<<(strconv.IntSize-5) - 1))
	meta := SegmentMeta{Format: SegmentFormat, CallID: "c", DeviceID: testDevice, Seq: 0, Frames: frames}
	hdr, err := appendSegmentHeader(nil, meta)
	if err != nil {
		t.Fatal(err)
	}
	plain := append(hdr, make([]byte, 64)...)
	if m, data, err := ParseSegment(plain); err == nil && len(data) != 64 {
		t.Fatalf("ParseSegment = %+v, %d bytes", m, len(data)) // the layout is not what this test assumes
	}
	k := newInvKeys(t)
	_, _, err = openSegment(seal(t, plain, k.recips()...), []age.Identity{k.a},
		Manifest{CallID: "c", DeviceID: testDevice}, 0)
	if !errors.Is(err, ErrFormat) {
		t.Errorf("openSegment: err = %v, want ErrFormat", err)
	}
}

func TestAssembleNoSegments(t *testing.T) {
	// The manifest written at Start, before the first segment: a call cut in its first seconds.
	k := newInvKeys(t)
	c := newTestCall(t, "20260102T090000Z-af", nil, k.recips()...)
	rep, got := assemble(t, c.manifest(t, 0, false, k.recips()...), nil, k.a)
	if len(got) != 0 || rep.Frames != 0 || !rep.OK() || rep.Listed != 0 {
		t.Errorf("report = %+v, audio %d bytes; want an empty WAV", rep, len(got))
	}
}

func TestAssembleManifestErrors(t *testing.T) {
	k := newInvKeys(t)
	c := newTestCall(t, "20260102T090000Z-ag", []int{10, 10}, k.recips()...)
	man := c.manifest(t, 2, true, k.recips()...)
	tampered := bytes.Clone(man)
	tampered[len(tampered)-3] ^= 0x01
	huge := slices.Clone(c.infos)
	huge[0].Frames, huge[1].Frames = maxFrames, 1
	notJSON := seal(t, []byte("not a manifest"), k.recips()...)

	for _, tc := range []struct {
		name     string
		manifest []byte
		ids      []age.Identity
		want     error
	}{
		{"wrong identity", man, []age.Identity{newIdentity(t)}, ErrNoIdentity},
		{"no identity", man, nil, ErrNoIdentity},
		{"tampered", tampered, []age.Identity{k.a}, ErrTampered},
		{"not age", []byte("age-encryption.org/v1\ngarbage"), []age.Identity{k.a}, ErrTampered},
		{"missing", nil, []age.Identity{k.a}, nil},
		{"not a manifest", notJSON, []age.Identity{k.a}, ErrFormat},
		{"more than a WAV holds", sealManifest(t, c.id, huge, true, k.recips()...), []age.Identity{k.a}, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Assemble(tc.manifest, c.segments(), tc.ids, &out)
			if err == nil {
				t.Fatal("Assemble succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %d bytes", out.Len())
			}
		})
	}
}

func TestDecrypt(t *testing.T) {
	k := newInvKeys(t)
	sealed := seal(t, []byte("hello"), k.recips()...)
	for _, id := range []age.Identity{k.a, k.b} {
		got, err := Decrypt(sealed, newIdentity(t), id)
		if err != nil || string(got) != "hello" {
			t.Errorf("Decrypt = %q, %v", got, err)
		}
	}
	_, err := Decrypt(sealed, newIdentity(t))
	if _, ok := errors.AsType[*age.NoIdentityMatchError](err); !ok || !errors.Is(err, ErrNoIdentity) {
		t.Errorf("wrong identity: err = %v, want ErrNoIdentity wrapping age's error", err)
	}
	// The last chunk of the payload, altered: the header opens, the payload does not.
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 0x01
	if _, err := Decrypt(bad, k.a); !errors.Is(err, ErrTampered) {
		t.Errorf("tampered: err = %v, want ErrTampered", err)
	}
	if _, err := Decrypt(sealed[:len(sealed)-20], k.a); !errors.Is(err, ErrTampered) {
		t.Errorf("truncated: err = %v, want ErrTampered", err)
	}
}

// maxWriter records the largest single write, to show that Assemble streams.
type maxWriter struct {
	n, max int
	fail   error
}

func (w *maxWriter) Write(p []byte) (int, error) {
	if w.fail != nil && w.n > 0 {
		return 0, w.fail
	}
	w.n += len(p)
	w.max = max(w.max, len(p))
	return len(p), nil
}

func TestAssembleStreams(t *testing.T) {
	k := newInvKeys(t)
	frames := []int{100, 100, 100, 100}
	c := newTestCall(t, "20260102T090000Z-ah", frames, k.recips()...)
	segs := c.segments()
	delete(segs, 2)
	w := &maxWriter{}
	rep, err := Assemble(c.manifest(t, 4, true, k.recips()...), segs, []age.Identity{k.a}, w)
	if err != nil {
		t.Fatal(err)
	}
	if int64(w.n) != WAVSize(rep.Frames) || w.max > 100*bytesPerFrame {
		t.Errorf("wrote %d bytes, at most %d at once; want %d, at most one segment (%d)",
			w.n, w.max, WAVSize(rep.Frames), 100*bytesPerFrame)
	}

	failing := &maxWriter{fail: errors.New("disk full")}
	if _, err := Assemble(c.manifest(t, 4, true, k.recips()...), segs, []age.Identity{k.a}, failing); !errors.Is(err, failing.fail) {
		t.Errorf("write error: err = %v, want it wrapped", err)
	}
}

// asmSpool is the Recorder's Spool in memory.
type asmSpool struct {
	mu       sync.Mutex // guards the maps
	segs     map[string]map[int][]byte
	manifest map[string][]byte
}

func (s *asmSpool) CanRecord() error { return nil }
func (s *asmSpool) Room(int64) error { return nil }

func (s *asmSpool) CommitSegment(callID string, seq int, data []byte) (spool.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.segs[callID] == nil {
		s.segs[callID] = make(map[int][]byte)
	}
	s.segs[callID][seq] = bytes.Clone(data)
	var e spool.Entry
	return e, nil
}

func (s *asmSpool) CommitManifest(callID string, data []byte) (spool.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.manifest[callID] = bytes.Clone(data)
	var e spool.Entry
	return e, nil
}

// The Recorder's own output opens, with either recipient's identity, to the audio it was given.
func TestAssembleRecorderOutput(t *testing.T) {
	k := newInvKeys(t)
	sp := &asmSpool{segs: map[string]map[int][]byte{}, manifest: map[string][]byte{}}
	rec, err := New(Options{Spool: sp, Recipients: []string{k.a.Recipient().String(), k.b.Recipient().String()},
		Segment: time.Second, DeviceID: "dev-rec", DeviceKey: testDeviceKey})
	if err != nil {
		t.Fatal(err)
	}
	const id = "20260102T100000Z-rr"
	r, err := rec.Start(CallInfo{CallID: id, CallerID: "1001", E164: "+15125550123",
		Decision: "recorded", Started: time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	const frames = 50*2 + 13 // two whole segments and a short last one
	var want []byte
	for n := range frames {
		var caller, called audio.Frame
		for i := range caller {
			caller[i] = int16((n*audio.FrameSamples + i) * 37)
			called[i] = int16(-(n*audio.FrameSamples + i) * 11)
		}
		for i := range caller {
			want = append(want, g711.EncodeUlaw(caller[i]), g711.EncodeUlaw(called[i]))
		}
		if err := r.Write(&caller, &called); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ids := range [][]age.Identity{{k.a}, {k.b}} {
		rep, got := assemble(t, sp.manifest[id], sp.segs[id], ids...)
		if !rep.OK() || !rep.Complete || rep.Listed != 3 || rep.Frames != frames {
			t.Errorf("report = %+v, want 3 segments, complete, %d frames", rep, frames)
		}
		equalAudio(t, got, want)
	}
}

// Debian's stock age decrypts a segment on its own, with an identity file as age-keygen
// writes it, to a WAV file that ParseSegment reads.
func TestStockAgeDecryptsSegment(t *testing.T) {
	bin, err := exec.LookPath("age")
	if err != nil {
		t.Skip("no age command on PATH (Debian package age)")
	}
	k := newInvKeys(t)
	c := newTestCall(t, "20260102T090000Z-ai", []int{25, 25}, k.recips()...)
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	keyFile := "# created: 2026-01-02T09:00:00Z\n# public key: " + k.b.Recipient().String() + "\n" + k.b.String() + "\n"
	if err := os.WriteFile(key, []byte(keyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "000001.age")
	if err := os.WriteFile(seg, c.sealed[1], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-d", "-i", key, seg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("age -d: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	meta, data, err := ParseSegment(out)
	if err != nil {
		t.Fatal(err)
	}
	if meta.CallID != c.id || meta.Seq != 1 || meta.FirstFrame != 25 || !bytes.Equal(data, c.audio[1]) {
		t.Errorf("age -d gave %+v and %d bytes of audio; want segment 1 of %s", meta, len(data), c.id)
	}
	// The same file with the wrong key is refused.
	other := filepath.Join(dir, "other.txt")
	if err := os.WriteFile(other, []byte(newIdentity(t).String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-i", other, seg)
	cmd.Stdout = io.Discard
	if cmd.Run() == nil {
		t.Error("age -d with another identity succeeded")
	}
}
