package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
)

// A tiny scanner over the top level of a JSON object. The proxy path uses
// it to read a handful of members (model, stream, stream_options, usage)
// and to splice one of them, without decoding or re-encoding the rest of a
// body that may be a megabyte of messages: a round trip through
// encoding/json would cost far more than the proxy's whole budget on big
// bodies, and would reorder and re-escape what the client sent.
//
// It checks the structure it walks (strings, nesting, commas, colons, no
// trailing bytes) but not the inside of what it skips: a number like 1.2.3
// or a bad literal passes. The proxy forwards such a body and the upstream
// refuses it, as it would have directly; the built-in backend decodes the
// whole body with encoding/json after it. Full validation (json.Valid,
// about 200 MB/s: 20 µs for a 4 KiB body) would cost many times the scan
// (BenchmarkForceIncludeUsage: about 2 GB/s). Any input gives
// a result or errScan, never a panic (FuzzScanObject holds it to that),
// and on valid JSON it reads what encoding/json reads (but for keys with
// invalid UTF-8, which encoding/json replaces and Python upstreams refuse).

var errScan = errors.New("malformed JSON object")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i] == '"'.
// Prompts are long strings: it jumps from quote to quote (IndexByte is
// vectorised) and counts the backslashes before each to see whether it is
// escaped.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
	return 0, errScan
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errScan
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				j, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = j
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errScan
	default: // number, true, false, null
		j := i
		for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
			j++
		}
		if j == i {
			return 0, errScan
		}
		return j, nil
	}
}

// objectSpan is where an object's members sit in its encoding.
type objectSpan struct {
	open    int // index of '{'
	members int
}

// scanObject calls fn with each member of the object in b, in order: the
// key with JSON escapes resolved (so "\u006dodel" is "model", the way the
// upstream will read it) and the value's raw bytes with their offsets.
func scanObject(b []byte, fn func(key []byte, val []byte, start, end int) error) (objectSpan, error) {
	var span objectSpan
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return span, errScan
	}
	span.open = i
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return span, trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return span, errScan
		}
		kend, err := skipString(b, i)
		if err != nil {
			return span, err
		}
		key := b[i+1 : kend-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(b[i:kend], &s) != nil {
				return span, errScan
			}
			key = []byte(s)
		}
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return span, errScan
		}
		i = skipSpace(b, i+1)
		vend, err := skipValue(b, i)
		if err != nil {
			return span, err
		}
		span.members++
		if err := fn(key, b[i:vend], i, vend); err != nil {
			return span, err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return span, errScan
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return span, trailing(b, i+1)
		default:
			return span, errScan
		}
	}
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errScan
	}
	return nil
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }
