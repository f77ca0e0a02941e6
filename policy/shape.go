package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// checkShape walks the JSON document against the file schema before it is decoded, for what
// encoding/json does not do: name the path of a wrong type or an unknown key (with array
// indices), refuse a key given twice (json keeps the last, silently), and refuse keys that
// match a field only when case is ignored (json accepts "Version" for "version"). Nothing in
// the schema nests deeper than a list inside an object inside a list, and a container found
// where a scalar belongs stops the walk, so hostile nesting costs nothing.
func checkShape(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walk(dec, reflect.TypeFor[file](), ""); err != nil {
		return err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return syntaxErr("", dec, err)
		}
		return fieldErr("", fmt.Errorf("%w: data after the object: %v", ErrSyntax, tok))
	}
	return nil
}

// walk checks one value of type t at path.
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxErr(path, dec, err)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if tok == nil {
		// An explicit null would read as "absent" for some fields and as an error for
		// others; it is refused everywhere so that it means nothing.
		return fieldErr(path, fmt.Errorf("%w: null", ErrType))
	}
	switch t.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			return typeErr(path, tok, "an object")
		}
		fields := jsonFields(t)
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return syntaxErr(path, dec, err)
			}
			key, _ := tok.(string) // the decoder allows nothing else here
			child := key
			if path != "" {
				child = path + "." + key
			}
			ft, ok := fields[key]
			if !ok {
				return fieldErr(child, ErrUnknownField)
			}
			if seen[key] {
				return fieldErr(child, ErrDuplicateKey)
			}
			seen[key] = true
			if err := walk(dec, ft, child); err != nil {
				return err
			}
		}
		return closing(dec, path)
	case reflect.Slice:
		if tok != json.Delim('[') {
			return typeErr(path, tok, "a list")
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return closing(dec, path)
	case reflect.String:
		if _, ok := tok.(string); !ok {
			return typeErr(path, tok, "a string")
		}
		return nil
	case reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			return typeErr(path, tok, "an integer")
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			return fieldErr(path, fmt.Errorf("%w: %s is not a 64-bit integer", ErrType, n))
		}
		return nil
	}
	return fmt.Errorf("policy: schema type %v at %s not handled", t, path)
}

// closing consumes the '}' or ']' that dec.More said comes next.
func closing(dec *json.Decoder, path string) error {
	if _, err := dec.Token(); err != nil {
		return syntaxErr(path, dec, err)
	}
	return nil
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		m[name] = f.Type
	}
	return m
}

func typeErr(path string, tok json.Token, want string) error {
	var got string
	switch tok := tok.(type) {
	case json.Delim:
		got = "an object"
		if tok == '[' {
			got = "a list"
		}
	case string:
		got = "a string"
	case json.Number:
		got = "a number"
	case bool:
		got = "a boolean"
	default:
		got = fmt.Sprintf("%T", tok)
	}
	return fieldErr(path, fmt.Errorf("%w: %s, want %s", ErrType, got, want))
}

func syntaxErr(path string, dec *json.Decoder, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fieldErr(path, fmt.Errorf("%w: at byte %d: %w", ErrSyntax, dec.InputOffset(), err))
}
