package provisioning

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"strings"
	"time"
)

// A firmware update over the console: the technician's tool sends update; the phone then
// drives, reading the files it needs from the technician's copy of the repository with read
// requests of its own (the metadata whole, the image only in the ranges it lacks), and
// answers update once the image is installed, or refused. The phone verifies everything it
// reads exactly as it would over the network: the line is only a transport.

// MaxData is the most file bytes one data answer carries: a frame's payload less the file
// size in front of them.
const MaxData = MaxPayload - dataHeader

// dataHeader is the data answer's header: the size of the whole file, 8 bytes big-endian.
const dataHeader = 8

// maxRepoName bounds a repository file name in a read request.
const maxRepoName = 255

// Read is the phone's request for bytes [Offset, Offset+Length) of a file of the
// technician's repository: "metadata/..." or "targets/...", a path inside that folder.
type Read struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Length int    `json:"length"`
}

// UpdateProgress is the phone's note of how far an update is: Stage says what it does
// ("metadata", "installing"), Done and Total count the image's bytes in the slot (copied
// from the running slot, fetched, or found there by an earlier run).
type UpdateProgress struct {
	Stage string `json:"stage"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// Updated is the answer to update: what was installed, and what the phone does next.
type Updated struct {
	Image   string `json:"image"`
	Version uint64 `json:"version"`
	Slot    string `json:"slot"`
	Length  int64  `json:"length"`
	// Fetched is what crossed the line for the image, Copied what the running slot had,
	// Resumed what an earlier, interrupted run had written.
	Fetched int64 `json:"fetched"`
	Copied  int64 `json:"copied"`
	Resumed int64 `json:"resumed"`
	// Next says what the phone does now ("reboots into it when idle, on trial").
	Next string `json:"next"`
}

// ParseRead checks a read request. Its name must be a plain relative path under metadata/ or
// targets/: the technician's tool serves nothing else of the laptop, whatever the phone asks.
func ParseRead(payload []byte) (Read, error) {
	var r Read
	if err := decode(payload, &r); err != nil {
		return Read{}, err
	}
	switch {
	case !ValidRepoName(r.Name):
		return Read{}, fmt.Errorf("%w: read: file name %q", ErrMessage, r.Name)
	case r.Offset < 0:
		return Read{}, fmt.Errorf("%w: read: offset %d", ErrMessage, r.Offset)
	case r.Length < 1 || r.Length > MaxData:
		return Read{}, fmt.Errorf("%w: read: length %d (1 to %d)", ErrMessage, r.Length, MaxData)
	}
	return r, nil
}

// ValidRepoName reports whether name is a file a phone may read from the technician's
// repository: metadata/ or targets/ and below, no "." or ".." segment, no empty segment, and
// only the characters TUF repositories here name files with.
func ValidRepoName(name string) bool {
	if len(name) > maxRepoName || !fs.ValidPath(name) ||
		!(strings.HasPrefix(name, "metadata/") || strings.HasPrefix(name, "targets/")) {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// AppendData appends a data answer's payload to dst: the size of the whole file (8 bytes,
// big-endian), then the bytes asked for, fewer only where the file ends.
func AppendData(dst []byte, size int64, data []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(size))
	return append(dst, data...)
}

// ParseData splits a data answer's payload into the file's size and the bytes. It does not
// copy: data aliases payload.
func ParseData(payload []byte) (size int64, data []byte, err error) {
	if len(payload) < dataHeader {
		return 0, nil, fmt.Errorf("%w: data answer of %d bytes, shorter than its header", ErrMessage, len(payload))
	}
	u := binary.BigEndian.Uint64(payload)
	if u > math.MaxInt64 {
		return 0, nil, fmt.Errorf("%w: data answer: file size %d", ErrMessage, u)
	}
	return int64(u), payload[dataHeader:], nil
}

// Repo is the technician's copy of the repository as the phone reads it during an update.
// Its methods are for one goroutine at a time.
type Repo interface {
	// ReadFile returns a whole file of at most max bytes; an error wrapping fs.ErrNotExist
	// when the technician's repository has none of that name.
	ReadFile(ctx context.Context, name string, max int64) ([]byte, error)
	// ReadRange writes bytes [off, off+n) of a file into w; the file must be size bytes
	// long (ErrRepoSize otherwise). Requests are pipelined: the line does not idle between
	// them.
	ReadRange(ctx context.Context, name string, off, n, size int64, w io.Writer) error
	// Progress tells the technician how far the update is.
	Progress(p UpdateProgress)
}

// Updater installs firmware from the technician's repository: the agent. What it returns
// on success is the answer to update; an error is the phone's refusal, its text for the
// technician.
type Updater interface {
	Update(ctx context.Context, repo Repo) (Updated, error)
}

// Errors of a Repo.
var (
	// ErrLaptopGone: the technician's tool stopped answering read requests (the cable was
	// pulled, the tool stopped); what was fetched so far is kept by the caller.
	ErrLaptopGone = errors.New("no answer from the technician's laptop")
	// ErrInterrupted: the technician's tool sent a new request (a new hello after the cable
	// was plugged in again, say) instead of answering: the update stops, the request is
	// served.
	ErrInterrupted = errors.New("the technician's tool started over")
	// ErrRepoSize: a file of the technician's repository is not the size the phone was told
	// it has (by the signed metadata, or by the first answer for the file).
	ErrRepoSize = errors.New("the technician's repository file is not the size expected")
)

// Pipelining and patience of the phone's reads.
const (
	// readWindow is how many read requests may be unanswered at once: enough that the
	// technician's answers follow one another with no gap for the next request to cross
	// the line, few enough that a lost frame costs little to send again.
	readWindow = 4
	// RepoTimeout is how long the phone waits for the next answer before it asks again,
	// and repoRetries how many times it asks again before it gives up (ErrLaptopGone).
	RepoTimeout = 10 * time.Second
	repoRetries = 3
	// keepAlive is how often the phone says how far it is while nothing else crosses the
	// line (it writes a batch, or reads the whole image back): the technician's tool takes
	// silence for a pulled cable.
	keepAlive = 3 * time.Second
)

// remote is the Repo the server hands the Updater: read requests and their answers on the
// session's line.
type remote struct {
	s *Server
	l *line
}

var _ Repo = (*remote)(nil)

func (r *remote) Progress(p UpdateProgress) {
	r.l.note(p)
}

func (r *remote) ReadFile(ctx context.Context, name string, max int64) ([]byte, error) {
	var first chunkWriter
	size, err := r.read(ctx, name, 0, min(int64(MaxData), max+1), -1, &first)
	if err != nil {
		return nil, err
	}
	if size > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", name, size, max)
	}
	b := first.b
	if size > int64(len(b)) {
		if _, err := r.read(ctx, name, int64(len(b)), size-int64(len(b)), size, &first); err != nil {
			return nil, err
		}
		b = first.b
	}
	return b, nil
}

func (r *remote) ReadRange(ctx context.Context, name string, off, n, size int64, w io.Writer) error {
	if off < 0 || n <= 0 || off+n > size {
		return fmt.Errorf("read %s: %d bytes at %d of a file of %d", name, n, off, size)
	}
	_, err := r.read(ctx, name, off, n, size, w)
	return err
}

type chunkWriter struct{ b []byte }

func (c *chunkWriter) Write(p []byte) (int, error) { c.b = append(c.b, p...); return len(p), nil }

// read fetches [off, off+n) of name in chunks of MaxData, up to readWindow requests ahead,
// and writes the chunks to w in order. size is the file's size if known (else -1: the first
// answer says it, and a file that ends before off+n is returned short). It returns the size.
func (r *remote) read(ctx context.Context, name string, off, n, size int64, w io.Writer) (int64, error) {
	l, s := r.l, r.s
	chunks := int((n + MaxData - 1) / MaxData)
	chunkAt := func(i int) (int64, int) {
		o := off + int64(i)*MaxData
		return o, int(min(int64(MaxData), off+n-o))
	}
	pending := map[uint16]int{} // request seq → chunk
	got := map[int][]byte{}     // chunks come in order, but a resend can reorder them
	send := func(i int) error {
		o, k := chunkAt(i)
		seq, err := l.request(TypeRead, Read{Name: name, Offset: o, Length: k})
		pending[seq] = i
		return err
	}
	next, want, retries := 0, 0, 0
	for want < chunks {
		for ; next < chunks && next-want < readWindow; next++ {
			if err := send(next); err != nil {
				return size, err
			}
		}
		f, err := l.await(ctx, s.cfg.After(RepoTimeout))
		switch {
		case errors.Is(err, errWait):
			if retries++; retries > repoRetries {
				return size, fmt.Errorf("%w for %s while reading %s", ErrLaptopGone, RepoTimeout*(repoRetries+1), name)
			}
			// Ask again for everything not yet here; answers to the first asking still count.
			for i := want; i < next; i++ {
				if _, ok := got[i]; !ok {
					if err := send(i); err != nil {
						return size, err
					}
				}
			}
			continue
		case err != nil:
			return size, err
		}
		i, ok := pending[f.Seq]
		if !ok {
			continue // an answer to a request of an earlier read, or a stale one
		}
		delete(pending, f.Seq)
		if f.Type == TypeError {
			err := ParseAnswer(TypeRead, f, nil)
			var e *Error
			if errors.As(err, &e) && e.Code == CodeNotFound {
				return size, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
			}
			return size, fmt.Errorf("the technician's tool could not read %s: %w", name, err)
		}
		if f.Type != TypeRead|answerBit || i < want {
			continue
		}
		fsize, data, err := ParseData(f.Payload)
		if err != nil {
			return size, err
		}
		o, k := chunkAt(i)
		switch {
		case size >= 0 && fsize != size:
			return size, fmt.Errorf("%w: %s is %d bytes, expected %d", ErrRepoSize, name, fsize, size)
		case size < 0 && o+int64(k) > fsize:
			// The first answer said how long the file is: read no further than its end.
			size, n = fsize, max(fsize-off, 0)
			chunks = int((n + MaxData - 1) / MaxData)
			next = min(next, chunks)
		}
		size = fsize
		if wantLen := min(int64(k), max(fsize-o, 0)); int64(len(data)) != wantLen {
			return size, fmt.Errorf("%w: %s: %d bytes at %d, expected %d", ErrRepoSize, name, len(data), o, wantLen)
		}
		got[i] = data
		for ; want < chunks; want++ {
			d, ok := got[want]
			if !ok {
				break
			}
			delete(got, want)
			if _, err := w.Write(d); err != nil {
				return size, err
			}
			retries = 0
		}
	}
	return size, nil
}

// errWait is line.await's timeout.
var errWait = errors.New("wait over")

// Client side.

// UpdateStatus is what Client.Update tells its caller as the update goes: the phone's
// latest note, and the file bytes sent so far.
type UpdateStatus struct {
	UpdateProgress
	Sent int64
}

// Update asks the phone to install firmware from repo (the repository folder: metadata/ and
// targets/) and serves the phone's read requests from it until the phone answers. Files must
// implement io.ReaderAt (os.Root.FS's do). status, if not nil, is called after each note and
// each answer sent. Each wait for the phone's next word is bounded by Timeout: the phone
// speaks at least every few seconds during an update.
func (c *Client) Update(ctx context.Context, repo fs.FS, status func(UpdateStatus)) (Updated, error) {
	seq, err := c.send(TypeUpdate, struct{}{})
	if err != nil {
		return Updated{}, err
	}
	files := map[string]fs.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var st UpdateStatus
	idle := time.NewTimer(c.Timeout)
	defer idle.Stop()
	var buf []byte
	for {
		select {
		case f := <-c.frames:
			switch {
			case f.Type == TypeRead:
				var n int
				if n, err = c.serveRead(f, repo, files, &buf); err != nil {
					return Updated{}, err
				}
				st.Sent += int64(n)
			case f.Type == TypeProgress:
				var p UpdateProgress
				if decode(f.Payload, &p) != nil {
					continue
				}
				st.UpdateProgress = p
			case f.Seq == seq:
				var u Updated
				return u, ParseAnswer(TypeUpdate, f, &u)
			default:
				continue
			}
			if status != nil {
				status(st)
			}
			idle.Reset(c.Timeout)
		case <-c.done:
			return Updated{}, fmt.Errorf("%w: the line closed: %v", ErrTimeout, c.readErr)
		case <-idle.C:
			return Updated{}, fmt.Errorf("%w: nothing from the phone for %s", ErrTimeout, c.Timeout)
		case <-ctx.Done():
			return Updated{}, ctx.Err()
		}
	}
}

// serveRead answers one read request from repo and returns the file bytes it sent.
func (c *Client) serveRead(f Frame, repo fs.FS, files map[string]fs.File, buf *[]byte) (int, error) {
	r, err := ParseRead(f.Payload)
	if err != nil {
		return 0, c.answer(f, TypeError, &Error{Code: CodeBadRequest, Message: err.Error()})
	}
	file, ok := files[r.Name]
	if !ok {
		file, err = repo.Open(r.Name)
		if errors.Is(err, fs.ErrNotExist) {
			return 0, c.answer(f, TypeError, &Error{Code: CodeNotFound, Message: r.Name + ": no such file"})
		}
		if err != nil {
			return 0, c.answer(f, TypeError, &Error{Code: CodeFailed, Message: err.Error()})
		}
		files[r.Name] = file
	}
	fi, err := file.Stat()
	ra, ok := file.(io.ReaderAt)
	switch {
	case err != nil:
		return 0, c.answer(f, TypeError, &Error{Code: CodeFailed, Message: err.Error()})
	case !ok || !fi.Mode().IsRegular():
		return 0, c.answer(f, TypeError, &Error{Code: CodeNotFound, Message: r.Name + ": not a regular file"})
	}
	k := int(max(0, min(int64(r.Length), fi.Size()-r.Offset)))
	*buf = slices.Grow((*buf)[:0], dataHeader+k)[:dataHeader+k]
	binary.BigEndian.PutUint64(*buf, uint64(fi.Size()))
	if k > 0 {
		if _, err := ra.ReadAt((*buf)[dataHeader:], r.Offset); err != nil && !errors.Is(err, io.EOF) {
			return 0, c.answer(f, TypeError, &Error{Code: CodeFailed, Message: err.Error()})
		}
	}
	b, err := AppendFrame(nil, Frame{Type: TypeRead | answerBit, Seq: f.Seq, Payload: *buf})
	if err != nil {
		return 0, err
	}
	if _, err := c.w.Write(b); err != nil {
		return 0, fmt.Errorf("write to the phone: %w", err)
	}
	return k, nil
}

// answer writes a JSON answer to the phone's request f.
func (c *Client) answer(f Frame, typ byte, v any) error {
	return writeJSON(c.w, Frame{Type: typ, Seq: f.Seq}, v)
}
