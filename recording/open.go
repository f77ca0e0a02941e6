package recording

// Opening a recording: what the investigator's side does with the sealed files the phone
// left, using an age identity the phone never held.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"filippo.io/age"
)

// Errors from Decrypt and Assemble. A Report's Reasons wrap one of them, or ErrFormat.
var (
	// ErrNoIdentity: none of the identities given opens the file; it was sealed to other
	// recipients. A file whose recipient stanza was damaged looks the same.
	ErrNoIdentity = errors.New("recording: none of the identities opens it")
	// ErrTampered: an identity matches, but the file is truncated, damaged or altered.
	ErrTampered = errors.New("recording: sealed file is damaged or altered")
	// ErrHash: the SHA-256 of a sealed segment is not the one its manifest lists.
	ErrHash = errors.New("recording: hash does not match the manifest")
	// ErrMismatch: a segment decrypts and parses, but what it says about itself (call,
	// device, number, place in the call, length) contradicts the manifest or the segments
	// before it.
	ErrMismatch = errors.New("recording: segment does not belong here")
)

// maxSeq is the largest segment number a spool names (six digits).
const maxSeq = 999_999

// wavHeaderLen is the length of the header Assemble writes: RIFF, fmt (18), fact, data.
const wavHeaderLen = 12 + (8 + 18) + (8 + 4) + 8

// maxFrames is the most audio one WAV file can hold: its RIFF size is 32 bits (about 74
// hours of a two-channel call).
const maxFrames = int((math.MaxUint32 - (wavHeaderLen - 8)) / int64(bytesPerFrame))

// silence is µ-law zero, the value Assemble writes for audio it cannot vouch for.
const silence = 0xFF

// Decrypt opens one sealed file, a segment or a manifest, with the first of ids that matches.
// The error wraps ErrNoIdentity when none does and ErrTampered when the file does not
// authenticate; either way it also wraps age's own error.
func Decrypt(sealed []byte, ids ...age.Identity) ([]byte, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no identity given", ErrNoIdentity)
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), ids...)
	if err != nil {
		if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
			return nil, fmt.Errorf("%w: %w", ErrNoIdentity, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	// The plaintext is never longer than the sealed file.
	out := bytes.NewBuffer(make([]byte, 0, len(sealed)))
	if _, err := out.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	return out.Bytes(), nil
}

// Report is what Assemble found. Segment numbers (seq) are those of the call, from 0.
type Report struct {
	CallID   string
	DeviceID string
	// DeviceKey signed the manifest. Check it is the enrolled key of DeviceID before trusting
	// that this phone made the call.
	DeviceKey ed25519.PublicKey
	// Complete is the manifest's word that the call ended normally; false when the phone
	// stopped in the middle of the call.
	Complete bool
	// Listed is the number of segments the manifest lists.
	Listed int
	// Missing are the segments that are absent: listed in the manifest, or, after an
	// incomplete manifest, skipped between unlisted segments. Their time is silence.
	Missing []int
	// Altered are the segments present but refused: the hash is not the manifest's, the file
	// does not decrypt or parse, or it names another call, device, number or place in the
	// call. Their time is silence when it is known (always for a listed segment).
	Altered []int
	// Unlisted are valid segments that the manifest does not list. They are in the output
	// only when the manifest is not Complete (the phone stopped before it could list them);
	// after a complete manifest they are not used.
	Unlisted []int
	// Lost are the segments the manifest lists as lost on the phone (the flash was full or
	// failing), and LostReasons why: the phone recorded them and could not keep them. Their
	// time is silence.
	Lost        []int
	LostReasons map[int]string
	// Frames is the length of the output in 20 ms frames, silence included.
	Frames int
	// Reasons says why each segment in Altered was refused.
	Reasons map[int]error
}

// OK reports whether every segment checked out: none lost, missing or altered, and no unlisted
// segment beside a complete manifest. Unlisted segments after an incomplete manifest are
// expected (the phone stopped before it listed them) and do not count against it.
func (r Report) OK() bool {
	return len(r.Lost) == 0 && len(r.Missing) == 0 && len(r.Altered) == 0 && (!r.Complete || len(r.Unlisted) == 0)
}

// UnlistedUsed reports whether the Unlisted segments are part of the output.
func (r Report) UnlistedUsed() bool { return !r.Complete && len(r.Unlisted) > 0 }

func (r *Report) alter(seq int, err error) {
	r.Altered = append(r.Altered, seq)
	if r.Reasons == nil {
		r.Reasons = make(map[int]error)
	}
	r.Reasons[seq] = err
}

// piece is one stretch of the output: a segment's audio, or silence.
type piece struct {
	seq    int  // the segment, or -1 for a gap
	frames int  // length in the output
	listed bool // the manifest lists seq
	want   []byte
}

// Assemble checks a call's sealed manifest and segments (by seq) and writes the call to out
// as one WAV file (G.711 µ-law, 8 kHz, two channels as recorded) in which every segment that
// is missing or does not check out is replaced by silence of the length the manifest lists,
// so that the timing is kept. Each listed segment is checked in this order: the SHA-256 of
// the sealed bytes against the manifest, decryption, the segment format, and its metadata
// (call, device, seq, first frame, length) against the manifest.
//
// Segments the manifest does not list are used only when the manifest is not Complete, in
// order after the listed ones, each where its metadata places it; they are checked the same
// way but for the hash, which no manifest vouches for.
//
// Assemble holds at most one segment's audio in memory and writes to out a segment at a
// time. Problems with segments go into the Report; the error is non-nil only when nothing
// could be assembled (the manifest is absent, does not decrypt or does not parse) or when
// writing to out fails, in which case out holds a partial file.
func Assemble(manifest []byte, segments map[int][]byte, ids []age.Identity, out io.Writer) (Report, error) {
	if len(manifest) == 0 {
		return Report{}, errors.New("recording: no manifest")
	}
	plain, err := Decrypt(manifest, ids...)
	if err != nil {
		return Report{}, fmt.Errorf("recording: manifest: %w", err)
	}
	m, key, err := OpenManifest(plain)
	if err != nil {
		return Report{}, err
	}
	rep := Report{CallID: m.CallID, DeviceID: m.DeviceID, DeviceKey: key, Complete: m.Complete, Listed: len(m.Segments)}

	// The plan: every listed segment at the length the manifest gives it, then whatever
	// unlisted segments may follow. The WAV header needs the total before any audio.
	pieces := make([]piece, 0, len(m.Segments))
	total := 0
	for _, s := range m.Segments {
		if s.Frames > maxFrames-total {
			return Report{}, fmt.Errorf("%w: manifest lists more audio than a WAV file holds", ErrFormat)
		}
		if s.Lost != "" {
			rep.Lost = append(rep.Lost, s.Seq)
			if rep.LostReasons == nil {
				rep.LostReasons = make(map[int]string)
			}
			rep.LostReasons[s.Seq] = s.Lost
			pieces = append(pieces, piece{seq: -1, frames: s.Frames})
			total += s.Frames
			continue
		}
		want, err := hex.DecodeString(s.SHA256)
		if err != nil {
			want = nil // matches no hash
		}
		pieces = append(pieces, piece{seq: s.Seq, frames: s.Frames, listed: true, want: want})
		total += s.Frames
	}
	var extra []int
	for seq := range segments {
		if seq < 0 || seq >= len(m.Segments) {
			extra = append(extra, seq)
		}
	}
	slices.Sort(extra)
	nextSeq, nextFrame := len(m.Segments), total
	for _, seq := range extra {
		meta, data, err := openSegment(segments[seq], ids, m, seq)
		if err != nil {
			rep.alter(seq, err)
			continue
		}
		clear(data) // read again when it is written
		if m.Complete {
			rep.Unlisted = append(rep.Unlisted, seq)
			continue
		}
		// After an incomplete manifest the segment goes where it says it belongs; the
		// segments it skips over are missing (or altered), their time silence.
		skipped, gap := seq-nextSeq, meta.FirstFrame-nextFrame
		switch {
		case (skipped == 0) != (gap == 0) || gap < skipped: // every segment has a frame
			rep.alter(seq, fmt.Errorf("%w: it starts at frame %d, segment %d ends at frame %d", ErrMismatch,
				meta.FirstFrame, nextSeq-1, nextFrame))
			continue
		case gap > maxFrames-total || meta.Frames > maxFrames-total-gap:
			rep.alter(seq, fmt.Errorf("%w: places itself beyond what a WAV file holds", ErrMismatch))
			continue
		}
		rep.Unlisted = append(rep.Unlisted, seq)
		for s := nextSeq; s < seq; s++ {
			if _, present := segments[s]; !present {
				rep.Missing = append(rep.Missing, s)
			}
		}
		if gap > 0 {
			pieces = append(pieces, piece{seq: -1, frames: gap})
		}
		pieces = append(pieces, piece{seq: seq, frames: meta.Frames})
		total += gap + meta.Frames
		nextSeq, nextFrame = seq+1, meta.FirstFrame+meta.Frames
	}

	// Listed segments are checked as they are written, so that only one is in memory.
	if _, err := out.Write(appendWAVHeader(make([]byte, 0, wavHeaderLen), total)); err != nil {
		return rep, fmt.Errorf("recording: write: %w", err)
	}
	first := 0
	for _, p := range pieces {
		data := []byte(nil)
		switch sealed, present := segments[p.seq]; {
		case p.seq < 0:
		case !present && p.listed:
			rep.Missing = append(rep.Missing, p.seq)
		case !present:
			// An unlisted segment that vanished between the passes: the caller changed the map.
		case p.listed:
			data, err = checkListed(sealed, ids, m, p, first)
			if err != nil {
				rep.alter(p.seq, err)
			}
		default:
			_, data, err = openSegment(sealed, ids, m, p.seq)
			if err != nil || len(data)/bytesPerFrame != p.frames { // openSegment checked the remainder
				data = nil
			}
		}
		if data != nil {
			_, err = out.Write(data)
			clear(data)
		} else {
			err = writeSilence(out, p.frames)
		}
		if err != nil {
			return rep, fmt.Errorf("recording: write: %w", err)
		}
		first += p.frames
	}
	rep.Frames = total
	slices.Sort(rep.Missing)
	slices.Sort(rep.Altered)
	return rep, nil
}

// checkListed checks a listed segment and returns its audio.
func checkListed(sealed []byte, ids []age.Identity, m Manifest, p piece, first int) ([]byte, error) {
	sum := sha256.Sum256(sealed)
	if !bytes.Equal(sum[:], p.want) {
		return nil, ErrHash
	}
	meta, data, err := openSegment(sealed, ids, m, p.seq)
	if err != nil {
		return nil, err
	}
	switch {
	case meta.FirstFrame != first:
		err = fmt.Errorf("%w: first frame %d, the manifest's is %d", ErrMismatch, meta.FirstFrame, first)
	case meta.Frames != p.frames:
		err = fmt.Errorf("%w: %d frames, the manifest lists %d", ErrMismatch, meta.Frames, p.frames)
	}
	if err != nil {
		clear(data)
		return nil, err
	}
	return data, nil
}

// openSegment decrypts and parses one segment and checks that it names the manifest's call
// and device and the seq it was found under.
func openSegment(sealed []byte, ids []age.Identity, m Manifest, seq int) (SegmentMeta, []byte, error) {
	if seq < 0 || seq > maxSeq {
		return SegmentMeta{}, nil, fmt.Errorf("%w: no segment has number %d", ErrMismatch, seq)
	}
	plain, err := Decrypt(sealed, ids...)
	if err != nil {
		return SegmentMeta{}, nil, err
	}
	meta, data, err := ParseSegment(plain)
	if err == nil && (len(data)%bytesPerFrame != 0 || len(data)/bytesPerFrame != meta.Frames) {
		// ParseSegment compares lengths in int arithmetic, which a huge frame count wraps.
		err = fmt.Errorf("%w: segment length does not match its frame count", ErrFormat)
	}
	switch {
	case err != nil:
	case meta.CallID != m.CallID:
		err = fmt.Errorf("%w: it names call %q", ErrMismatch, meta.CallID)
	case meta.DeviceID != m.DeviceID:
		err = fmt.Errorf("%w: it names device %q", ErrMismatch, meta.DeviceID)
	case meta.Seq != seq:
		err = fmt.Errorf("%w: it says it is segment %d", ErrMismatch, meta.Seq)
	}
	if err != nil {
		clear(plain)
		return SegmentMeta{}, nil, err
	}
	return meta, data, nil
}

// appendWAVHeader appends the header of a µ-law WAV file of the segments' format holding the
// given number of frames and no metadata chunk.
func appendWAVHeader(dst []byte, frames int) []byte {
	dataLen := frames * bytesPerFrame
	dst = appendWAVStart(dst, frames, 8+dataLen)
	dst = append(dst, "data"...)
	return binary.LittleEndian.AppendUint32(dst, uint32(dataLen))
}

// WAVSize is the size of the file Assemble writes for a call of the given number of frames.
func WAVSize(frames int) int64 { return wavHeaderLen + int64(frames)*int64(bytesPerFrame) }

func writeSilence(w io.Writer, frames int) error {
	var buf [50 * bytesPerFrame]byte // one second
	for i := range buf {
		buf[i] = silence
	}
	for n := int64(frames) * int64(bytesPerFrame); n > 0; {
		k := int64(len(buf))
		if n < k {
			k = n
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
