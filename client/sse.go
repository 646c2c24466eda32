package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// sseReader reads the data of server-sent events (WHATWG HTML, "Server-sent
// events", event stream interpretation): "data:" lines are joined with
// newlines until a blank line dispatches the event; comments (":") and the
// other fields are skipped. OpenAI's streams put one JSON object, or
// "[DONE]", in each event.
type sseReader struct {
	r   *bufio.Reader
	max int
}

func newSSEReader(r io.Reader, max int) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// errEventTooLarge: an event over the reader's bound.
var errEventTooLarge = errors.New("stream event too large")

// next returns the next event's data; io.EOF at the end of the stream
// (an event not ended by a blank line is dropped, as the spec says).
func (s *sseReader) next() ([]byte, error) {
	var data []byte
	have := false
	for {
		line, err := s.line()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			if have {
				return data, nil
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if len(field) == 0 {
			continue // a comment
		}
		if string(field) != "data" {
			continue
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if have {
			data = append(data, '\n')
		}
		data = append(data, value...)
		have = true
		if len(data) > s.max {
			return nil, fmt.Errorf("%w: over %d bytes", errEventTooLarge, s.max)
		}
	}
}

// line reads one line without its end (LF, CRLF or CR-less LF only: the
// workers and the upstreams they front end lines with LF).
func (s *sseReader) line() ([]byte, error) {
	var out []byte
	for {
		frag, err := s.r.ReadSlice('\n')
		out = append(out, frag...)
		if len(out) > s.max+16 {
			return nil, fmt.Errorf("%w: a line over %d bytes", errEventTooLarge, s.max)
		}
		if err == nil {
			out = bytes.TrimSuffix(out[:len(out)-1], []byte("\r"))
			return out, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(out) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
}
