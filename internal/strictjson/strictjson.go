// Package strictjson decodes the JSON the phone is handed (configuration, signed requests,
// manifests, console messages) strictly: a field it does not know, or anything after the one
// value, is an error rather than something silently dropped. It serves promise 6: what was
// signed or installed is exactly what is read.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailing is returned when something follows the value.
var ErrTrailing = errors.New("trailing data after the JSON value")

// Decode decodes the single JSON value in b into v, refusing unknown object fields and any
// data after the value (whitespace aside).
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Token, not More: More reports false before a stray '}' or ']', which would let
	// `{...}}` through.
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailing
	}
	return nil
}
