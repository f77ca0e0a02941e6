package bootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
)

// variable is one name=value pair; an Env keeps them sorted by name.
type variable struct{ name, value string }

var (
	errCRC   = errors.New("CRC mismatch")
	errNoEnd = errors.New("data does not end in an empty entry")
)

func headerSize(redundant bool) int {
	if redundant {
		return 5
	}
	return 4
}

// decodeCopy reads one copy: its flag (0 when not redundant) and its variables, sorted, the last
// of a repeated name winning.
func decodeCopy(img []byte, redundant bool) (flag byte, vars []variable, err error) {
	h := headerSize(redundant)
	if len(img) <= h {
		return 0, nil, fmt.Errorf("%d bytes, too short", len(img))
	}
	data := img[h:]
	if binary.LittleEndian.Uint32(img) != crc32.ChecksumIEEE(data) {
		return 0, nil, errCRC
	}
	if redundant {
		flag = img[4]
	}
	for len(data) > 0 && data[0] != 0 {
		end := bytes.IndexByte(data, 0)
		if end < 0 || end == len(data)-1 {
			return 0, nil, errNoEnd
		}
		entry := data[:end]
		data = data[end+1:]
		name, value, ok := bytes.Cut(entry, []byte{'='})
		if !ok || len(name) == 0 {
			continue
		}
		vars = append(vars, variable{string(name), string(value)})
	}
	if len(data) == 0 {
		return 0, nil, errNoEnd
	}
	slices.SortStableFunc(vars, func(a, b variable) int { return strings.Compare(a.name, b.name) })
	// Keep the last of each run of one name.
	out := vars[:0]
	for i, v := range vars {
		if i+1 < len(vars) && vars[i+1].name == v.name {
			continue
		}
		out = append(out, v)
	}
	return flag, out, nil
}

// encodedLen is the bytes vars take in the data area, the closing empty entry included.
func encodedLen(vars []variable) int {
	n := 1
	for _, v := range vars {
		n += len(v.name) + 1 + len(v.value) + 1
	}
	return n
}

// encodeCopy writes vars into img (a whole copy, its size the configured size), zero-padded as
// U-Boot's saveenv pads, with the flag when redundant.
func encodeCopy(img []byte, vars []variable, redundant bool, flag byte) error {
	h := headerSize(redundant)
	if encodedLen(vars) > len(img)-h {
		return fmt.Errorf("%w: %d bytes of variables, room for %d", ErrTooLarge, encodedLen(vars), len(img)-h)
	}
	clear(img)
	p := h
	for _, v := range vars {
		p += copy(img[p:], v.name)
		img[p] = '='
		p++
		p += copy(img[p:], v.value)
		p++ // NUL: img was cleared
	}
	if redundant {
		img[4] = flag
	}
	binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(img[h:]))
	return nil
}

// newer reports which of two valid redundant copies is in use, by U-Boot's rule: the higher
// flag, except that 0 follows 255; equal flags pick the first.
func newer(flag0, flag1 byte) int {
	switch {
	case flag0 == 255 && flag1 == 0:
		return 1
	case flag1 == 255 && flag0 == 0:
		return 0
	case flag1 > flag0:
		return 1
	}
	return 0
}
