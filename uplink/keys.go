package uplink

import (
	"path"
	"strings"
	"time"

	"github.com/wallphone/wallphone/spool"
)

// Object keys. Every key is a function of what the object is, never of when it was sent, so
// that a file sent again after a crash overwrites its own object instead of making a second.
//
//	<facility>/<device>/<yyyy-mm-dd>/<call>/<seq, 6 digits>.age   a segment
//	<facility>/<device>/<yyyy-mm-dd>/<call>/manifest.age          the call's sealed manifest
//	<facility>/<device>/<yyyy-mm-dd>/<call>/record.age            the call's sealed record
//	purge/<facility>/<device>/<call>.json                          a signed purge request
//	receipts/<facility>/<device>/<call>.json                       the back office's purge receipt
//	status/<facility>/<device>.json                                the phone's status
//
// The day is the call's UTC day, read from its id (ids begin with yyyymmddThhmmssZ); an id
// that does not begin with a date goes under "undated".
const (
	PurgePrefix   = "purge/"
	ReceiptPrefix = "receipts/"
	StatusPrefix  = "status/"
	undated       = "undated"
)

// CallDay is the day directory of a call.
func CallDay(callID string) string {
	if len(callID) >= 8 {
		if t, err := time.Parse("20060102", callID[:8]); err == nil {
			return t.Format("2006-01-02")
		}
	}
	return undated
}

// CallPrefix is the prefix of every object of a call, ending in a slash.
func CallPrefix(facility, device, callID string) string {
	return path.Join(facility, device, CallDay(callID), callID) + "/"
}

// SegmentKey is the key of segment seq of a call. It ends in the segment's file name in the
// spool, so that a call fetched from the vault reads as its spool files do.
func SegmentKey(facility, device, callID string, seq int) string {
	return CallPrefix(facility, device, callID) + spool.SegmentFile(seq)
}

// ManifestKey is the key of a call's sealed manifest.
func ManifestKey(facility, device, callID string) string {
	return CallPrefix(facility, device, callID) + "manifest.age"
}

// RecordKey is the key of a call's sealed record.
func RecordKey(facility, device, callID string) string {
	return CallPrefix(facility, device, callID) + "record.age"
}

// PurgeKey is the key of a call's purge request.
func PurgeKey(facility, device, callID string) string {
	return PurgePrefix + path.Join(facility, device, callID) + ".json"
}

// ReceiptKey is the key of the receipt for a call's purge.
func ReceiptKey(facility, device, callID string) string {
	return ReceiptPrefix + path.Join(facility, device, callID) + ".json"
}

// StatusKey is the key of a phone's status object.
func StatusKey(facility, device string) string {
	return StatusPrefix + path.Join(facility, device) + ".json"
}

// ParsePurgeKey reads a PurgeKey; ok is false for any other key.
func ParsePurgeKey(key string) (facility, device, callID string, ok bool) {
	rest, ok := strings.CutPrefix(key, PurgePrefix)
	if !ok {
		return "", "", "", false
	}
	rest, ok = strings.CutSuffix(rest, ".json")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || !validName(parts[0]) || !validName(parts[1]) || !validName(parts[2]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// validName reports whether s can be one element of a key: 1 to 64 of [A-Za-z0-9_.-], not
// "." or "..".
func validName(s string) bool {
	if len(s) < 1 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}
