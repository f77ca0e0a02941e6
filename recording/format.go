package recording

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/internal/strictjson"
)

// The plaintext of a segment is a WAV file that stock tools play: G.711 µ-law, 8 kHz, two
// channels (0: the caller, 1: the called party). Before the audio it carries a "wphn" chunk
// (which players skip) naming the call and the segment, so that a segment decrypted on its
// own still says where it belongs:
//
//	RIFF <size> WAVE
//	fmt  18: format 7 (µ-law), 2 channels, 8000 Hz, 16000 bytes/s, block 2, 8 bits, cbSize 0
//	fact 4: samples per channel
//	wphn <n>: JSON SegmentMeta, padded to an even length with a space
//	data <n>: interleaved µ-law bytes, caller first
const (
	channels      = 2
	bytesPerFrame = channels * audio.FrameSamples // one 20 ms frame of both directions
	wavFormatULaw = 7
	metaChunkID   = "wphn"
	// maxMetaLen bounds the metadata chunk a parser will accept.
	maxMetaLen = 4096
)

// SegmentMeta is what a segment says about itself.
type SegmentMeta struct {
	Format   string `json:"format"`
	CallID   string `json:"call_id"`
	DeviceID string `json:"device_id"`
	Seq      int    `json:"seq"`
	// FirstFrame is the number of 20 ms frames of the call before this segment.
	FirstFrame int `json:"first_frame"`
	Frames     int `json:"frames"`
}

// SegmentFormat names this layout; a parser refuses any other.
const SegmentFormat = "wallphone-segment/1"

// Errors from the parsers.
var (
	// ErrFormat: the bytes are not a segment or manifest of this format.
	ErrFormat = errors.New("recording: not a wallphone recording")
)

// appendSegmentHeader appends everything of a segment's plaintext before the audio.
func appendSegmentHeader(dst []byte, m SegmentMeta) ([]byte, error) {
	meta, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(meta)%2 == 1 {
		meta = append(meta, ' ')
	}
	dataLen := m.Frames * bytesPerFrame
	dst = appendWAVStart(dst, m.Frames, (8+len(meta))+(8+dataLen))
	le := binary.LittleEndian
	dst = append(dst, metaChunkID...)
	dst = le.AppendUint32(dst, uint32(len(meta)))
	dst = append(dst, meta...)
	dst = append(dst, "data"...)
	dst = le.AppendUint32(dst, uint32(dataLen))
	return dst, nil
}

// appendWAVStart appends the RIFF header and the fmt and fact chunks of a µ-law stereo WAV
// file of frames frames, whose chunks after fact take rest bytes.
func appendWAVStart(dst []byte, frames, rest int) []byte {
	le := binary.LittleEndian
	dst = append(dst, "RIFF"...)
	dst = le.AppendUint32(dst, uint32(4+(8+18)+(8+4)+rest))
	dst = append(dst, "WAVE"...)
	dst = append(dst, "fmt "...)
	dst = le.AppendUint32(dst, 18)
	dst = le.AppendUint16(dst, wavFormatULaw)
	dst = le.AppendUint16(dst, channels)
	dst = le.AppendUint32(dst, audio.SampleRate)
	dst = le.AppendUint32(dst, audio.SampleRate*channels)
	dst = le.AppendUint16(dst, channels)
	dst = le.AppendUint16(dst, 8)
	dst = le.AppendUint16(dst, 0)
	dst = append(dst, "fact"...)
	dst = le.AppendUint32(dst, 4)
	return le.AppendUint32(dst, uint32(frames*audio.FrameSamples))
}

// ParseSegment reads a decrypted segment: its metadata and its interleaved µ-law audio
// (a subslice of b). It accepts exactly the layout this package writes.
func ParseSegment(b []byte) (SegmentMeta, []byte, error) {
	var m SegmentMeta
	le := binary.LittleEndian
	bad := func(what string) (SegmentMeta, []byte, error) {
		return SegmentMeta{}, nil, fmt.Errorf("%w: segment %s", ErrFormat, what)
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return bad("is not a WAV file")
	}
	if int(le.Uint32(b[4:8])) != len(b)-8 {
		return bad("has a RIFF size that does not match its length")
	}
	rest := b[12:]
	next := func(id string) ([]byte, bool) {
		if len(rest) < 8 || string(rest[:4]) != id {
			return nil, false
		}
		n := int(le.Uint32(rest[4:8]))
		if n < 0 || n > len(rest)-8 {
			return nil, false
		}
		body := rest[8 : 8+n]
		rest = rest[8+n:]
		return body, true
	}
	fmtc, ok := next("fmt ")
	if !ok || len(fmtc) != 18 || le.Uint16(fmtc[0:]) != wavFormatULaw || le.Uint16(fmtc[2:]) != channels ||
		le.Uint32(fmtc[4:]) != audio.SampleRate || le.Uint32(fmtc[8:]) != audio.SampleRate*channels ||
		le.Uint16(fmtc[12:]) != channels || le.Uint16(fmtc[14:]) != 8 || le.Uint16(fmtc[16:]) != 0 {
		return bad("is not 8 kHz stereo µ-law")
	}
	fact, ok := next("fact")
	if !ok || len(fact) != 4 {
		return bad("has no fact chunk")
	}
	meta, ok := next(metaChunkID)
	if !ok || len(meta) > maxMetaLen {
		return bad("has no wallphone metadata")
	}
	dec := json.NewDecoder(bytes.NewReader(meta))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return bad("metadata does not parse: " + err.Error())
	}
	if m.Format != SegmentFormat || m.Seq < 0 || m.FirstFrame < 0 || m.Frames <= 0 || m.CallID == "" {
		return bad("metadata is not of " + SegmentFormat)
	}
	// Exactly what appendSegmentHeader writes: no other spelling of the same metadata (keys in
	// another case, a key twice, bytes after the JSON) is a segment of this format.
	canon, err := json.Marshal(m)
	if err != nil {
		return bad("metadata does not encode")
	}
	if len(canon)%2 == 1 {
		canon = append(canon, ' ')
	}
	if !bytes.Equal(canon, meta) {
		return bad("metadata is not in its one written form")
	}
	// Frame counts are compared by division: a hostile count would overflow a product.
	if m.Frames > len(b)/bytesPerFrame {
		return bad("claims more frames than it holds")
	}
	data, ok := next("data")
	if !ok || len(rest) != 0 {
		return bad("has no data chunk, or data after it")
	}
	if len(data) != m.Frames*bytesPerFrame || int(le.Uint32(fact)) != m.Frames*audio.FrameSamples {
		return bad("length does not match its frame count")
	}
	return m, data, nil
}

// Manifest is the sealed account of one recorded call: what was recorded, under which
// decision, and the hash of every segment, so that a missing or altered segment shows.
type Manifest struct {
	Format   string    `json:"format"`
	CallID   string    `json:"call_id"`
	DeviceID string    `json:"device_id"`
	CallerID string    `json:"caller_id"`
	Number   string    `json:"number"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	// Complete is false for a manifest written after the agent stopped in the middle of the
	// call: the segments it lists are all that was finished.
	Complete        bool          `json:"complete"`
	Decision        string        `json:"decision"`
	Reason          string        `json:"reason"`
	RegistryVersion uint64        `json:"registry_version"`
	PolicyVersion   int64         `json:"policy_version"`
	Segments        []SegmentInfo `json:"segments"`
}

// SegmentInfo is one segment as the manifest lists it.
// A segment the phone could not keep (the flash full or failing) is listed with its length
// and Lost, why; it has no file, no size and no hash.
type SegmentInfo struct {
	Seq    int    `json:"seq"`
	Frames int    `json:"frames"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // of the sealed file, hex
	Lost   string `json:"lost,omitempty"`
}

// ManifestFormat names the manifest layout.
const ManifestFormat = "wallphone-manifest/1"

// ParseManifest reads a decrypted manifest.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := strictjson.Decode(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest: %w", ErrFormat, err)
	}
	if m.Format != ManifestFormat || m.CallID == "" {
		return Manifest{}, fmt.Errorf("%w: manifest is not of %s", ErrFormat, ManifestFormat)
	}
	for i, s := range m.Segments {
		lost := s.Lost != "" && s.Size == 0 && s.SHA256 == ""
		kept := s.Lost == "" && s.Size > 0 && len(s.SHA256) == 64
		if _, err := hex.DecodeString(s.SHA256); err != nil || s.Seq != i || s.Frames <= 0 || !lost && !kept {
			return Manifest{}, fmt.Errorf("%w: manifest segment %d is malformed", ErrFormat, i)
		}
	}
	return m, nil
}

// SignedManifestFormat names the envelope in which a manifest is sealed: the manifest's exact
// bytes, signed with the device key. Sealing says who can read a call; the signature says
// which phone wrote it, so that nobody holding only a recipient key can forge a call.
const SignedManifestFormat = "wallphone-signed-manifest/1"

// ErrSignature is returned by OpenManifest when the manifest's signature does not verify.
var ErrSignature = errors.New("recording: manifest signature does not verify")

type signedManifest struct {
	Format   string `json:"format"`
	Manifest []byte `json:"manifest"`
	Key      []byte `json:"key"`
	Sig      []byte `json:"sig"`
}

// SignManifest makes the plaintext that is sealed: m, signed with the device key.
func SignManifest(m Manifest, key ed25519.PrivateKey) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signedManifest{Format: SignedManifestFormat, Manifest: b,
		Key: key.Public().(ed25519.PublicKey), Sig: ed25519.Sign(key, b)})
}

// OpenManifest reads a decrypted manifest envelope: it checks the signature against the key
// the envelope carries and returns the manifest and that key. Whether the key is the
// enrolled key of m.DeviceID is for the caller to check.
func OpenManifest(b []byte) (Manifest, ed25519.PublicKey, error) {
	var s signedManifest
	if err := strictjson.Decode(b, &s); err != nil {
		return Manifest{}, nil, fmt.Errorf("%w: signed manifest: %w", ErrFormat, err)
	}
	if s.Format != SignedManifestFormat || len(s.Key) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize {
		return Manifest{}, nil, fmt.Errorf("%w: not a %s", ErrFormat, SignedManifestFormat)
	}
	pub := ed25519.PublicKey(s.Key)
	if !ed25519.Verify(pub, s.Manifest, s.Sig) {
		return Manifest{}, nil, ErrSignature
	}
	m, err := ParseManifest(s.Manifest)
	if err != nil {
		return Manifest{}, nil, err
	}
	return m, pub, nil
}
