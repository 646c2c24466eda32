package hostlink

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Decoder reads messages from a guest. The guest is not trusted: a line
// that is too long, not JSON, or not a valid Message is reported and
// skipped, and the next line is read as usual. Memory stays bounded by
// MaxMessage whatever the guest sends.
type Decoder struct {
	r    *bufio.Reader
	line int   // lines read so far, for error messages
	err  error // the stream's end, returned once the last line is reported
}

// NewDecoder reads messages from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, MaxMessage)}
}

// Next returns the next message; blank lines are skipped. An error wrapping
// ErrBadMessage is about one line, which is consumed: call Next again. Any
// other error (io.EOF at the end of the stream) is final.
func (d *Decoder) Next() (Message, error) {
	for {
		if d.err != nil {
			return Message{}, d.err
		}
		line, err := d.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			d.line++
			n := len(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = d.r.ReadSlice('\n')
				n += len(line)
			}
			if err != nil {
				d.err = err
			}
			return Message{}, fmt.Errorf("%w: line %d: more than %d bytes (%d read)", ErrBadMessage, d.line, MaxMessage, n)
		}
		if err != nil {
			d.err = err
			if len(line) == 0 {
				return Message{}, err
			}
			// A guest that stops mid-line (reset, crash) leaves half a
			// message; it is never decoded.
			d.line++
			return Message{}, fmt.Errorf("%w: line %d: unterminated at the end of the stream (%d bytes)", ErrBadMessage, d.line, len(line))
		}
		d.line++
		if len(bytes.TrimSpace(line)) == 0 {
			// A guest starts each connection with a newline, to end a line
			// a failed write may have cut (see Link).
			continue
		}
		var m Message
		if err := strictjson.Decode(bytes.NewReader(line), MaxMessage, &m); err != nil {
			return Message{}, fmt.Errorf("%w: line %d: %w", ErrBadMessage, d.line, err)
		}
		if err := m.Validate(); err != nil {
			return Message{}, fmt.Errorf("line %d: %w", d.line, err)
		}
		return m, nil
	}
}
