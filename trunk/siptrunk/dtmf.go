package siptrunk

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
)

// Errors of the DTMF parsers.
var (
	// ErrShortEvent: an RFC 4733 payload shorter than its 4 bytes.
	ErrShortEvent = errors.New("telephone event shorter than 4 bytes")
	// ErrNotDigit: a telephone event or INFO body that names no key of a phone's keypad.
	ErrNotDigit = errors.New("not a keypad key")
	// ErrInfoBody: an INFO request whose body is not DTMF.
	ErrInfoBody = errors.New("INFO body carries no DTMF")
)

// eventKeys are the RFC 4733 (section 3.2) event codes 0-15, the keys of a DTMF keypad.
const eventKeys = "0123456789*#ABCD"

// TelephoneEvent is the payload of one RFC 4733 telephone-event packet.
type TelephoneEvent struct {
	Event    uint8 // 0-9, 10 = *, 11 = #, 12-15 = A-D
	End      bool
	Volume   uint8 // 0-63, in -dBm0
	Duration uint16
}

// ParseTelephoneEvent reads an RFC 4733 payload. Trailing bytes (a redundant second event) are
// ignored.
func ParseTelephoneEvent(b []byte) (TelephoneEvent, error) {
	if len(b) < 4 {
		return TelephoneEvent{}, ErrShortEvent
	}
	return TelephoneEvent{
		Event:    b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3f,
		Duration: binary.BigEndian.Uint16(b[2:4]),
	}, nil
}

// Append appends the 4-byte payload of e to b.
func (e TelephoneEvent) Append(b []byte) []byte {
	flags := e.Volume & 0x3f
	if e.End {
		flags |= 0x80
	}
	return binary.BigEndian.AppendUint16(append(b, e.Event, flags), e.Duration)
}

// Key returns the keypad key of the event, or ErrNotDigit for the other RFC 4733 events
// (flash, modem tones) a phone has no use for.
func (e TelephoneEvent) Key() (rune, error) {
	if int(e.Event) >= len(eventKeys) {
		return 0, fmt.Errorf("telephone event %d: %w", e.Event, ErrNotDigit)
	}
	return rune(eventKeys[e.Event]), nil
}

// eventCode is the RFC 4733 code of a key, or false for a rune that is no key.
func eventCode(d rune) (uint8, bool) {
	i := strings.IndexRune(eventKeys, toUpper(d))
	return uint8(i), i >= 0
}

func toUpper(d rune) rune {
	if d >= 'a' && d <= 'd' {
		return d - 'a' + 'A'
	}
	return d
}

// ParseInfoDigit reads the key of a SIP INFO request: an application/dtmf-relay body
// ("Signal=5\r\nDuration=160") or an application/dtmf body ("5", or an event code such as
// "11" for #).
func ParseInfoDigit(contentType string, body []byte) (rune, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("%w: content type %q: %v", ErrInfoBody, contentType, err)
	}
	switch mt {
	case "application/dtmf-relay":
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "signal") {
				return infoKey(strings.TrimSpace(v))
			}
		}
		return 0, fmt.Errorf("%w: no Signal line", ErrInfoBody)
	case "application/dtmf":
		return infoKey(strings.TrimSpace(string(body)))
	}
	return 0, fmt.Errorf("%w: content type %s", ErrInfoBody, mt)
}

func infoKey(v string) (rune, error) {
	if len(v) == 1 {
		if _, ok := eventCode(rune(v[0])); ok {
			return toUpper(rune(v[0])), nil
		}
	}
	// Some servers send the RFC 4733 code: 10 for *, 11 for #.
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < len(eventKeys) {
		return rune(eventKeys[n]), nil
	}
	return 0, fmt.Errorf("signal %q: %w", v, ErrNotDigit)
}
