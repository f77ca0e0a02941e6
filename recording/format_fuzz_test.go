package recording

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// segmentSeeds are valid segment plaintexts as appendSegmentHeader writes them, and broken
// variants of them.
func segmentSeeds(t testing.TB) (valid, broken [][]byte) {
	t.Helper()
	for _, m := range []SegmentMeta{
		{Format: SegmentFormat, CallID: "20260102T090000Z-aa", DeviceID: "dev-1", Seq: 0, FirstFrame: 0, Frames: 1},
		{Format: SegmentFormat, CallID: "c", DeviceID: "d", Seq: 3, FirstFrame: 150, Frames: 3}, // odd JSON: padded
		{Format: SegmentFormat, CallID: "x<&>\u00e9", Seq: 1, FirstFrame: 7, Frames: 2},
	} {
		hdr, err := appendSegmentHeader(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, m.Frames*bytesPerFrame)
		for i := range data {
			data[i] = byte(i)
		}
		valid = append(valid, append(hdr, data...))
	}
	v := valid[0]
	le := binary.LittleEndian
	edit := func(f func(b []byte) []byte) {
		broken = append(broken, f(bytes.Clone(v)))
	}
	edit(func(b []byte) []byte { return nil })
	edit(func(b []byte) []byte { return b[:12] })
	edit(func(b []byte) []byte { return b[:len(b)-1] })                                          // truncated audio
	edit(func(b []byte) []byte { return append(b, 0, 0) })                                       // data after the data chunk
	edit(func(b []byte) []byte { le.PutUint32(b[4:], uint32(len(b))); return b })                // RIFF size
	edit(func(b []byte) []byte { le.PutUint16(b[20:], 1); return b })                            // PCM, not µ-law
	edit(func(b []byte) []byte { le.PutUint32(b[46:], 1); return b })                            // fact samples
	edit(func(b []byte) []byte { copy(b[50:54], "wphx"); return b })                             // no metadata chunk
	edit(func(b []byte) []byte { le.PutUint32(b[54:], 0xFFFFFFF0); return b })                   // metadata longer than the file
	edit(func(b []byte) []byte { return bytes.Replace(b, []byte(`"seq"`), []byte(`"sek"`), 1) }) // unknown field
	edit(func(b []byte) []byte { return bytes.Replace(b, []byte(`/1"`), []byte(`/2"`), 1) })     // another format
	edit(func(b []byte) []byte { return bytes.Replace(b, []byte(`"frames":1`), []byte(`"frames":2`), 1) })
	edit(func(b []byte) []byte { return bytes.Replace(b, []byte(`"seq":0`), []byte(`"seq":-1`), 1) })
	return valid, broken
}

func FuzzParseSegment(f *testing.F) {
	valid, broken := segmentSeeds(f)
	if len(valid) == 0 || len(broken) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, b := range valid {
		if _, _, err := ParseSegment(b); err != nil {
			f.Fatalf("a valid seed does not parse: %v", err)
		}
		f.Add(b)
	}
	for i, b := range broken {
		if _, _, err := ParseSegment(b); err == nil {
			f.Fatalf("broken seed %d parses", i)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, data, err := ParseSegment(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		// Checked by division: a product could wrap around.
		if m.Frames <= 0 || len(data)%bytesPerFrame != 0 || len(data)/bytesPerFrame != m.Frames {
			t.Fatalf("%d bytes of audio for %d frames", len(data), m.Frames)
		}
		if len(data) > 0 && &data[len(data)-1] != &b[len(b)-1] {
			t.Fatal("the audio is not the end of the input")
		}
		if m.Format != SegmentFormat || m.CallID == "" || m.Seq < 0 || m.FirstFrame < 0 {
			t.Fatalf("accepted metadata %+v", m)
		}
		// What was accepted, written again, reads back the same.
		hdr, err := appendSegmentHeader(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		m2, data2, err := ParseSegment(append(hdr, data...))
		if err != nil || m2 != m || !bytes.Equal(data2, data) {
			t.Fatalf("rewritten segment reads back as %+v, %v", m2, err)
		}
	})
}

// manifestSeeds are valid manifests and broken variants of them.
func manifestSeeds(t testing.TB) (valid, broken [][]byte) {
	t.Helper()
	sha := strings.Repeat("ab", 32)
	start := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	for _, m := range []Manifest{
		{Format: ManifestFormat, CallID: "20260102T090000Z-aa", Segments: []SegmentInfo{}},
		{Format: ManifestFormat, CallID: "c", DeviceID: "dev-1", CallerID: "1001", Number: "+15125550123",
			Started: start, Ended: start.Add(95 * time.Second), Complete: true, Decision: "recorded",
			Reason: "default_recorded", RegistryVersion: 7, PolicyVersion: 3,
			Segments: []SegmentInfo{{Seq: 0, Frames: 250, Size: 80_400, SHA256: sha}, {Seq: 1, Frames: 3, Size: 1200, SHA256: sha}}},
	} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, b)
	}
	v := string(valid[1])
	for _, s := range []string{
		"",
		"null",
		"[]",
		v[:len(v)-1],
		v + "{}",
		strings.Replace(v, `"seq":1`, `"seq":2`, 1),
		strings.Replace(v, `"frames":3`, `"frames":0`, 1),
		strings.Replace(v, `"size":1200`, `"size":-1`, 1),
		strings.Replace(v, `"sha256":"`+sha+`"}]`, `"sha256":"ab"}]`, 1),
		strings.Replace(v, `"call_id":"c"`, `"call_id":""`, 1),
		strings.Replace(v, `/1"`, `/2"`, 1),
		strings.Replace(v, `"complete"`, `"completed"`, 1),
		strings.Replace(v, `"started":"2026-01-02T09:00:00Z"`, `"started":"yesterday"`, 1),
	} {
		broken = append(broken, []byte(s))
	}
	return valid, broken
}

func FuzzParseManifest(f *testing.F) {
	valid, broken := manifestSeeds(f)
	if len(valid) == 0 || len(broken) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, b := range valid {
		if _, err := ParseManifest(b); err != nil {
			f.Fatalf("a valid seed does not parse: %v", err)
		}
		f.Add(b)
	}
	for i, b := range broken {
		if _, err := ParseManifest(b); err == nil {
			f.Fatalf("broken seed %d parses", i)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		if m.Format != ManifestFormat || m.CallID == "" {
			t.Fatalf("accepted %+v", m)
		}
		for i, s := range m.Segments {
			if s.Seq != i || s.Frames <= 0 || s.Size <= 0 || len(s.SHA256) != 64 {
				t.Fatalf("accepted segment %d: %+v", i, s)
			}
		}
		// What was accepted, written again, reads back the same.
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("rewritten manifest does not parse: %v", err)
		}
		out2, err := json.Marshal(m2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("rewritten manifest reads back differently:\n%s\n%s", out, out2)
		}
	})
}

func TestManifestSignature(t *testing.T) {
	m := Manifest{Format: ManifestFormat, CallID: "c1", DeviceID: "wp-1", Complete: true, Segments: []SegmentInfo{}}
	b, err := SignManifest(m, testDeviceKey)
	if err != nil {
		t.Fatal(err)
	}
	got, pub, err := OpenManifest(b)
	if err != nil || got.CallID != "c1" || !pub.Equal(testDeviceKey.Public()) {
		t.Fatalf("%+v %v", got, err)
	}
	var s signedManifest
	json.Unmarshal(b, &s)
	s.Manifest = bytes.Replace(s.Manifest, []byte(`"c1"`), []byte(`"c2"`), 1)
	forged, _ := json.Marshal(s)
	if _, _, err := OpenManifest(forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("altered manifest: %v", err)
	}
	plain, _ := json.Marshal(m)
	if _, _, err := OpenManifest(plain); !errors.Is(err, ErrFormat) {
		t.Fatalf("unsigned manifest: %v", err)
	}
	if _, _, err := OpenManifest(append(b, '}')); !errors.Is(err, ErrFormat) {
		t.Fatalf("trailing data: %v", err)
	}
}

func FuzzOpenManifest(f *testing.F) {
	m := Manifest{Format: ManifestFormat, CallID: "c1", DeviceID: "wp-1", Segments: []SegmentInfo{
		{Seq: 0, Frames: 250, Size: 80526, SHA256: strings.Repeat("ab", 32)}}}
	good, _ := SignManifest(m, testDeviceKey)
	seeds := [][]byte{good, good[:len(good)-3], []byte(`{"format":"wallphone-signed-manifest/1"}`), []byte("{}")}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, pub, err := OpenManifest(b)
		if err != nil {
			return
		}
		if len(pub) != ed25519.PublicKeySize || m.Format != ManifestFormat {
			t.Fatalf("opened %+v", m)
		}
	})
}
