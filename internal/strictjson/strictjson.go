// Package strictjson decodes the project's JSON files (manifests, policies,
// platform captures) the strict way they all need: a size limit read before
// parsing, unknown fields refused (a file from a newer version must not be
// half understood), exactly one value with nothing after it.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Errors; callers wrap them with their own sentinel.
var (
	ErrTooLarge = errors.New("larger than allowed")
	ErrEmpty    = errors.New("empty input")
	ErrTrailing = errors.New("data after the JSON value")
)

// Decode reads at most limit bytes from r into v.
func Decode(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err == io.EOF {
		return ErrEmpty
	} else if err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailing
	}
	return nil
}

// Load opens path and decodes it with Decode; parse turns the result into
// the caller's type (and validates it). Errors name the file.
func Load[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
