package client

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSSEReader(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		end      error
	}{
		{"openai", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{`{"a":1}`, "[DONE]"}, io.EOF},
		{"crlf and comments", ": keep-alive\r\n\r\nevent: x\r\ndata: one\r\n\r\n", []string{"one"}, io.EOF},
		{"multi-line data", "data: a\ndata: b\n\n", []string{"a\nb"}, io.EOF},
		{"no space", "data:x\n\n", []string{"x"}, io.EOF},
		{"cut mid-line", "data: a\n\ndata: b", []string{"a"}, io.ErrUnexpectedEOF},
		{"cut before the blank line", "data: a\n", nil, io.EOF},
		{"too large", "data: " + strings.Repeat("x", 100) + "\n\n", nil, errEventTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSSEReader(strings.NewReader(tc.in), 64)
			var got []string
			var err error
			for {
				var d []byte
				if d, err = r.next(); err != nil {
					break
				}
				got = append(got, string(d))
			}
			if !errors.Is(err, tc.end) || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("events %q, end %v; want %q, %v", got, err, tc.want, tc.end)
			}
		})
	}
}
