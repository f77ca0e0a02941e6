package provisioning

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Frame layout before COBS stuffing (all integers big-endian):
//
//	offset  size  field
//	0       1     version (1)
//	1       1     message type
//	2       2     sequence number, echoed by the answer
//	4       2     payload length n (at most MaxPayload)
//	6       n     payload (JSON)
//	6+n     4     CRC-32C (Castagnoli) of bytes 0..6+n
//
// On the wire: 0x00, COBS(frame), 0x00. The leading zero ends whatever noise came before, so
// a frame that follows a garbage burst is read on its own.
const (
	frameVersion = 1
	headerSize   = 6
	crcSize      = 4
	// MaxPayload is the largest payload a frame carries; a bigger frame is refused.
	MaxPayload = 4096
	// maxStuffed is the longest COBS encoding of the largest frame.
	maxRaw     = headerSize + MaxPayload + crcSize
	maxStuffed = maxRaw + maxRaw/254 + 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame errors. The reader reports them and goes on with the next frame; nothing in a frame
// that fails them is acted on.
var (
	// ErrFrameTooLarge: a frame longer than MaxPayload allows was refused unread.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrFrameCorrupt: the bytes between two delimiters are not a whole, intact frame.
	ErrFrameCorrupt = errors.New("frame corrupt")
)

// Frame is one message on the wire.
type Frame struct {
	Type    byte
	Seq     uint16
	Payload []byte
}

// AppendFrame appends the wire form of f (delimiters included) to dst.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return dst, fmt.Errorf("%w: payload of %d bytes (at most %d)", ErrFrameTooLarge, len(f.Payload), MaxPayload)
	}
	raw := make([]byte, headerSize, headerSize+len(f.Payload)+crcSize)
	raw[0] = frameVersion
	raw[1] = f.Type
	binary.BigEndian.PutUint16(raw[2:], f.Seq)
	binary.BigEndian.PutUint16(raw[4:], uint16(len(f.Payload)))
	raw = append(raw, f.Payload...)
	raw = binary.BigEndian.AppendUint32(raw, crc32.Checksum(raw, castagnoli))
	dst = append(dst, 0)
	dst = cobsEncode(dst, raw)
	return append(dst, 0), nil
}

// DecodeFrame parses the bytes between two delimiters (without them).
func DecodeFrame(stuffed []byte) (Frame, error) {
	if len(stuffed) > maxStuffed {
		return Frame{}, ErrFrameTooLarge
	}
	raw, err := cobsDecode(stuffed)
	if err != nil {
		return Frame{}, err
	}
	if len(raw) < headerSize+crcSize {
		return Frame{}, fmt.Errorf("%w: %d bytes is shorter than a header", ErrFrameCorrupt, len(raw))
	}
	body := raw[:len(raw)-crcSize]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(raw[len(body):]) {
		return Frame{}, fmt.Errorf("%w: checksum mismatch", ErrFrameCorrupt)
	}
	if raw[0] != frameVersion {
		return Frame{}, fmt.Errorf("%w: version %d", ErrFrameCorrupt, raw[0])
	}
	n := int(binary.BigEndian.Uint16(raw[4:]))
	if n > MaxPayload {
		return Frame{}, ErrFrameTooLarge
	}
	if n != len(body)-headerSize {
		return Frame{}, fmt.Errorf("%w: length %d, payload %d", ErrFrameCorrupt, n, len(body)-headerSize)
	}
	return Frame{Type: raw[1], Seq: binary.BigEndian.Uint16(raw[2:]), Payload: append([]byte(nil), body[headerSize:]...)}, nil
}

// cobsEncode is Consistent Overhead Byte Stuffing: the output holds no zero byte. Each group
// is a code byte n and n-1 data bytes, followed by an implied zero unless n is 0xff.
func cobsEncode(dst, src []byte) []byte {
	for {
		i := bytes.IndexByte(src, 0)
		run := src
		if i >= 0 {
			run = src[:i]
		}
		for len(run) >= 0xfe {
			dst = append(dst, 0xff)
			dst = append(dst, run[:0xfe]...)
			run = run[0xfe:]
		}
		dst = append(dst, byte(len(run)+1))
		dst = append(dst, run...)
		if i < 0 {
			return dst
		}
		src = src[i+1:]
	}
}

func cobsDecode(src []byte) ([]byte, error) {
	out := make([]byte, 0, len(src))
	for i := 0; i < len(src); {
		code := int(src[i])
		if code == 0 {
			return nil, fmt.Errorf("%w: zero byte inside a frame", ErrFrameCorrupt)
		}
		i++
		end := i + code - 1
		if end > len(src) {
			return nil, fmt.Errorf("%w: stuffing runs past the end", ErrFrameCorrupt)
		}
		if bytes.IndexByte(src[i:end], 0) >= 0 {
			return nil, fmt.Errorf("%w: zero byte inside a frame", ErrFrameCorrupt)
		}
		out = append(out, src[i:end]...)
		i = end
		if code < 0xff && i < len(src) {
			out = append(out, 0)
		}
	}
	return out, nil
}

// FrameReader splits a byte stream into frames. A read error is sticky; frame errors are
// not: after one, the next ReadFrame starts at the next delimiter.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
	err error
}

// NewFrameReader reads frames from r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 512)}
}

// ReadFrame returns the next frame. It returns ErrFrameTooLarge or ErrFrameCorrupt (wrapped)
// for a frame it discarded, and the reader's error, sticky, when the stream fails.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if fr.err != nil {
		return Frame{}, fr.err
	}
	fr.buf = fr.buf[:0]
	tooLarge := false
	for {
		b, err := fr.r.ReadByte()
		if err != nil {
			fr.err = err
			return Frame{}, err
		}
		if b != 0 {
			if len(fr.buf) < maxStuffed {
				fr.buf = append(fr.buf, b)
			} else {
				// Keep reading to the delimiter without keeping the bytes: a huge frame must
				// not cost memory, and must not be taken for the start of the next one.
				tooLarge = true
			}
			continue
		}
		switch {
		case tooLarge:
			return Frame{}, fmt.Errorf("%w: more than %d bytes between delimiters", ErrFrameTooLarge, maxStuffed)
		case len(fr.buf) == 0:
			continue // a leading delimiter, or several in a row
		}
		return DecodeFrame(fr.buf)
	}
}
