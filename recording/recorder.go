// Package recording records the calls decided "recorded", and only those: both directions,
// encoded as G.711 µ-law and sealed with age to the facility's recipients in short
// self-contained segments, each a complete age file handed to the spool. It keeps promise 3:
// no plaintext audio is ever written anywhere, the phone holds no key that opens what it
// sealed, and the plaintext buffers are zeroed once sealed. With the spool it keeps promise 4:
// a power cut loses at most the segment being recorded.
//
// Each segment decrypts with the stock age tool to a WAV file that stock players play. A
// sealed manifest per call, signed with the device key, lists every segment with the SHA-256
// of its sealed file, so an investigator can tell a missing or altered segment and which
// phone made the call; it is rewritten after every segment, so it is current even when the
// phone stops in the middle of a call.
package recording

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/wallphone/wallphone/audio"
	"github.com/wallphone/wallphone/audio/g711"
	"github.com/wallphone/wallphone/recording/recipients"
	"github.com/wallphone/wallphone/spool"
)

// Spool is where sealed files go.
type Spool interface {
	CanRecord() error
	Room(need int64) error
	CommitSegment(callID string, seq int, data []byte) (spool.Entry, error)
	CommitManifest(callID string, data []byte) (spool.Entry, error)
}

// CallInfo is what a recording is told about its call; its manifest says it.
type CallInfo struct {
	CallID   string
	CallerID string
	// E164 is the number called.
	E164    string
	Started time.Time
	// Decision and Reason are the call's decision ("recorded") and why, and RegistryVersion
	// and PolicyVersion what it was decided from: an investigator reads in the manifest why
	// the call was recorded.
	Decision        string
	Reason          string
	RegistryVersion uint64
	PolicyVersion   int64
}

// Options configure a Recorder.
type Options struct {
	Spool Spool
	// Recipients are age X25519 recipients ("age1..."); every segment and manifest is sealed
	// to all of them.
	Recipients []string
	// Segment is the length of one segment, a whole number of 20 ms frames.
	Segment  time.Duration
	DeviceID string
	// DeviceKey signs every manifest, so that a call cannot be forged by someone who holds
	// only a recipient's public key.
	DeviceKey ed25519.PrivateKey
	// Logger gets an event for every segment sealed and every failure; nil discards.
	Logger *slog.Logger
}

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("recording: recorder closed")

// ErrNotRecorded is returned by Start for a call whose decision is not "recorded": the
// recorder keeps promise 1 itself, whatever its caller decided to do.
var ErrNotRecorded = errors.New("recording: the call was not decided recorded")

// DecisionRecorded is the only decision a call is recorded under.
const DecisionRecorded = "recorded"

// Recorder seals recordings. Start and the Recordings it returns are used from the call
// loop; the sealing and the writing to flash happen on the recorder's own goroutine, so the
// audio path never waits for an fsync.
type Recorder struct {
	spool     Spool
	recips    []age.Recipient
	segFrames int
	deviceID  string
	key       ed25519.PrivateKey
	log       *slog.Logger

	jobs chan job           // to the sealing goroutine; closed by Close
	idle chan chan struct{} // Flush requests
	done chan struct{}      // closed when the sealing goroutine has returned
	free chan []byte        // zeroed segment buffers for reuse

	mu     sync.Mutex // guards closed
	closed bool
}

// New checks the options and starts the sealing goroutine.
func New(o Options) (*Recorder, error) {
	if o.Spool == nil {
		return nil, errors.New("recording: no spool")
	}
	frame := audio.FrameDuration
	if o.Segment < frame || o.Segment%frame != 0 {
		return nil, fmt.Errorf("recording: segment %s is not a whole number of %s frames", o.Segment, frame)
	}
	if len(o.Recipients) == 0 {
		return nil, errors.New("recording: no recipients")
	}
	if len(o.DeviceKey) != ed25519.PrivateKeySize {
		return nil, errors.New("recording: no device key to sign manifests with")
	}
	r := &Recorder{
		spool:     o.Spool,
		segFrames: int(o.Segment / frame),
		deviceID:  o.DeviceID,
		key:       o.DeviceKey,
		log:       o.Logger,
		jobs:      make(chan job, 8),
		idle:      make(chan chan struct{}),
		done:      make(chan struct{}),
		free:      make(chan []byte, 2),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	recips, err := recipients.ParseList(o.Recipients)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	r.recips = recips
	go r.seal()
	return r, nil
}

// Close seals and writes everything handed over so far and stops the sealing goroutine.
// Recordings still open are not closed; the call loop ends its calls first.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.jobs)
	}
	r.mu.Unlock()
	<-r.done
	return nil
}

// Flush waits until everything handed over so far is sealed and in the spool.
func (r *Recorder) Flush() {
	ack := make(chan struct{})
	select {
	case r.idle <- ack:
		<-ack
	case <-r.done:
	}
}

// CanRecord reports whether a call could be recorded now: the recorder is open and the spool
// has room for a whole call.
func (r *Recorder) CanRecord() error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := r.spool.CanRecord(); err != nil {
		r.log.Error("spool full: recorded calls are refused until it drains", "event", "alert_spool_full", "err", err)
		return fmt.Errorf("recording: %w", err)
	}
	return nil
}

// Start begins the recording of one call. It refuses when the spool has no room for a whole
// call (the policy's rule for a full spool is to refuse new recorded calls) and when the
// manifest cannot be written.
func (r *Recorder) Start(info CallInfo) (*Call, error) {
	if info.Decision != DecisionRecorded {
		r.log.Error("refused to record a call not decided recorded", "event", "recording_refused",
			"call_id", info.CallID, "decision", info.Decision)
		return nil, fmt.Errorf("%w: %q", ErrNotRecorded, info.Decision)
	}
	if err := r.CanRecord(); err != nil {
		return nil, err
	}
	c := &Call{r: r, info: info, buf: r.buffer()}
	c.manifest = Manifest{
		Format: ManifestFormat, CallID: info.CallID, DeviceID: r.deviceID, CallerID: info.CallerID,
		Number: info.E164, Started: info.Started, Decision: info.Decision,
		Reason: info.Reason, RegistryVersion: info.RegistryVersion,
		PolicyVersion: info.PolicyVersion, Segments: []SegmentInfo{},
	}
	// The manifest exists before the first frame: a call cut short in its first seconds
	// still leaves its account.
	m := c.manifest
	if err := r.writeManifest(m); err != nil {
		r.log.Error("recording manifest", "event", "recording_error", "call_id", info.CallID, "err", err)
		return nil, err
	}
	return c, nil
}

func (r *Recorder) buffer() []byte {
	select {
	case b := <-r.free:
		return b
	default:
		return make([]byte, 0, r.segFrames*bytesPerFrame)
	}
}

// Call is the recording of one call, from Start to Close. Write and Close run on the call
// loop; the sealing goroutine reports failures through err.
type Call struct {
	r      *Recorder
	info   CallInfo
	buf    []byte // µ-law, interleaved; plaintext, zeroed once sealed
	frames int    // frames in buf
	seq    int    // next segment
	first  int    // frames before buf
	closed bool

	manifest Manifest // owned by the sealing goroutine after Start

	mu      sync.Mutex // guards err and stopErr
	err     error      // sticky: the first failure to seal or keep a segment or the manifest
	stopErr error      // sticky: why the call must stop, though nothing is lost yet (no room)
}

// Write takes one frame of each direction. An error means the call must end now: part of
// the recording was lost, or there is no room for the next segment (errors.Is spool.ErrFull).
func (c *Call) Write(caller, called *audio.Frame) error {
	if err := c.stopped(); err != nil {
		return err
	}
	if c.closed {
		return errors.New("recording: write after close")
	}
	for i := range audio.FrameSamples {
		c.buf = append(c.buf, g711.EncodeUlaw(caller[i]), g711.EncodeUlaw(called[i]))
	}
	c.frames++
	if c.frames == c.r.segFrames {
		c.flush(false)
	}
	return nil
}

// Close hands over the last segment and the final manifest; the sealing goroutine writes
// them. It does not wait for the flash. Its error says that part of the recording was lost.

func (c *Call) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.flush(true)
	return c.failed()
}

func (c *Call) flush(final bool) {
	j := job{c: c, seq: c.seq, first: c.first, frames: c.frames, buf: c.buf, final: final}
	if c.frames == 0 {
		j.buf = nil
		select {
		case c.r.free <- c.buf:
		default:
		}
	}
	c.seq++
	c.first += c.frames
	c.frames = 0
	c.buf = nil
	if !final {
		c.buf = c.r.buffer()
	}
	c.r.jobs <- j
}

func (c *Call) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Call) stopped() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cmp.Or(c.err, c.stopErr)
}

func (c *Call) stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopErr == nil {
		c.stopErr = err
	}
}

func (c *Call) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// job is a segment to seal (buf non-nil) and, if final, the end of the call.
type job struct {
	c      *Call
	seq    int
	first  int
	frames int
	buf    []byte
	final  bool
}

// seal is the sealing goroutine: it owns the manifests and the writing to the spool.
func (r *Recorder) seal() {
	defer close(r.done)
	for {
		select {
		case j, ok := <-r.jobs:
			if !ok {
				return
			}
			r.do(j)
		case ack := <-r.idle:
			// jobs is drained first so that Flush means "all handed over so far".
			for drained := false; !drained; {
				select {
				case j, ok := <-r.jobs:
					if !ok {
						close(ack)
						return
					}
					r.do(j)
				default:
					drained = true
				}
			}
			close(ack)
		}
	}
}

func (r *Recorder) do(j job) {
	c := j.c
	m := &c.manifest
	if j.buf != nil {
		err := r.sealSegment(j)
		clear(j.buf)
		select {
		case r.free <- j.buf[:0]:
		default:
		}
		if err != nil {
			// The segment is gone; the manifest says so, with its length, so that the call's
			// time stays true and nobody takes the recording for whole.
			c.fail(err)
			m.Segments = append(m.Segments, SegmentInfo{Seq: j.seq, Frames: j.frames, Lost: err.Error()})
			r.log.Error("segment lost", "event", "recording_error", "call_id", c.info.CallID, "seq", j.seq, "err", err)
		} else if !j.final {
			// Room for one more segment and its manifest, or the call stops now, while what
			// it records until the call loop hears of it still fits.
			if err := r.spool.Room(2*int64(r.segFrames*bytesPerFrame) + 64<<10); err != nil {
				c.stop(err)
			}
		}
	}
	if j.final {
		m.Complete = true
		m.Ended = c.info.Started.Add(time.Duration(j.first+j.frames) * audio.FrameDuration)
	}
	if err := r.writeManifest(*m); err != nil {
		c.fail(err)
		r.log.Error("recording manifest", "event", "recording_error", "call_id", c.info.CallID, "err", err)
	}
}

func (r *Recorder) sealSegment(j job) error {
	c := j.c
	meta := SegmentMeta{Format: SegmentFormat, CallID: c.info.CallID, DeviceID: r.deviceID, Seq: j.seq,
		FirstFrame: j.first, Frames: j.frames}
	hdr, err := appendSegmentHeader(make([]byte, 0, 256), meta)
	if err != nil {
		return err
	}
	var ct bytes.Buffer
	ct.Grow(len(hdr) + len(j.buf) + 1024)
	w, err := age.Encrypt(&ct, r.recips...)
	if err != nil {
		return fmt.Errorf("seal segment: %w", err)
	}
	w.Write(hdr)
	w.Write(j.buf)
	if err := w.Close(); err != nil {
		return fmt.Errorf("seal segment: %w", err)
	}
	if _, err := r.spool.CommitSegment(c.info.CallID, j.seq, ct.Bytes()); err != nil {
		return fmt.Errorf("keep segment %d: %w", j.seq, err)
	}
	sum := sha256.Sum256(ct.Bytes())
	c.manifest.Segments = append(c.manifest.Segments, SegmentInfo{Seq: j.seq, Frames: j.frames,
		Size: int64(ct.Len()), SHA256: hex.EncodeToString(sum[:])})
	r.log.Info("segment sealed", "event", "segment_sealed", "call_id", c.info.CallID, "seq", j.seq,
		"frames", j.frames, "bytes", ct.Len())
	return nil
}

func (r *Recorder) writeManifest(m Manifest) error {
	b, err := SignManifest(m, r.key)
	if err != nil {
		return err
	}
	var ct bytes.Buffer
	w, err := age.Encrypt(&ct, r.recips...)
	if err != nil {
		return fmt.Errorf("seal manifest: %w", err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		return fmt.Errorf("seal manifest: %w", err)
	}
	if _, err := r.spool.CommitManifest(m.CallID, ct.Bytes()); err != nil {
		return fmt.Errorf("keep manifest: %w", err)
	}
	return nil
}
