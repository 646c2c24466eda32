package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// Relaying an upstream's text/event-stream to the client, event by event,
// bytes unchanged, while reading the usage the upstream reports. The
// format is the WHATWG HTML "Server-sent events" one: lines end with CRLF,
// LF or CR; an event ends at an empty line; "data:" lines carry the
// payload (one leading space dropped, several lines joined with "\n").
//
// Only events whose data mentions "usage" are decoded (a cheap substring
// test: inside a JSON string the quotes would be escaped, so generated
// text cannot trigger it); everything else is passed through untouched.

// ErrEventTooLarge is an upstream event longer than the relay holds.
var ErrEventTooLarge = errors.New("gateway: upstream stream event too large")

// DefaultMaxEventBytes bounds one upstream event: chunks with top_logprobs
// run to kilobytes, never megabytes.
const DefaultMaxEventBytes = 4 << 20

var usageKey = []byte(`"usage"`)

// sseRelay is the state of one relayed stream.
type sseRelay struct {
	// keepUsageChunk: the client asked for stream_options.include_usage,
	// so the usage-only chunk is passed on; otherwise the gateway asked for
	// it alone and removes it.
	keepUsageChunk bool

	usage    engine.Usage // the last usage seen
	gotUsage bool
	badUsage error // the last usage object that could not be used
	done     bool  // "data: [DONE]" seen

	scratch []byte // joins multi-line data
}

// writeError marks a failed write to the client, as opposed to a failed
// read from the upstream.
type clientWriteError struct{ err error }

func (e clientWriteError) Error() string { return "writing to the client: " + e.err.Error() }
func (e clientWriteError) Unwrap() error { return e.err }

// run copies src to dst until src ends, calling flush after each read's
// complete events are written, so every event the upstream flushed reaches
// the client without waiting for the next. buf is the read buffer; it
// grows up to maxEvent when one event needs it.
func (s *sseRelay) run(src io.Reader, dst io.Writer, flush func() error, buf []byte, maxEvent int) error {
	n := 0
	for {
		m, rerr := src.Read(buf[n:])
		n += m
		atEOF := rerr == io.EOF
		used, err := s.process(buf[:n], atEOF, dst)
		if err != nil {
			return clientWriteError{err}
		}
		if used > 0 {
			if err := flush(); err != nil {
				return clientWriteError{err}
			}
			n = copy(buf, buf[used:n])
		}
		if rerr != nil {
			if atEOF {
				if n > 0 { // an unterminated last event: clients drop it, pass it on anyway
					if _, err := dst.Write(buf[:n]); err != nil {
						return clientWriteError{err}
					}
					return flush()
				}
				return nil
			}
			return rerr
		}
		if n == len(buf) {
			if len(buf) >= maxEvent {
				return fmt.Errorf("%w: more than %d bytes", ErrEventTooLarge, maxEvent)
			}
			buf = append(buf, make([]byte, min(len(buf), maxEvent-len(buf)))...)
			buf = buf[:cap(buf)]
		}
	}
}

// process handles the complete events at the start of b, writing the ones
// to keep to dst (in one Write where nothing is dropped), and returns how
// many bytes it used. atEOF says no more bytes will come, so a final CR
// ends its line.
func (s *sseRelay) process(b []byte, atEOF bool, dst io.Writer) (int, error) {
	written := 0 // b[:written] has been written or dropped
	event := 0   // where the current event starts
	var data []byte
	nData := 0
	for i := 0; i < len(b); {
		end, next := lineEnd(b, i, atEOF)
		if end < 0 {
			break
		}
		line := b[i:end]
		i = next
		if len(line) == 0 {
			if s.dispatch(data, nData) {
				if _, err := dst.Write(b[written:event]); err != nil {
					return 0, err
				}
				written = i
			}
			event, data, nData = i, nil, 0
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			v, _ = bytes.CutPrefix(v, []byte(" "))
			switch nData {
			case 0:
				data = v
			case 1:
				s.scratch = append(append(append(s.scratch[:0], data...), '\n'), v...)
				data = s.scratch
			default:
				s.scratch = append(append(s.scratch, '\n'), v...)
				data = s.scratch
			}
			nData++
		}
	}
	if event > written {
		if _, err := dst.Write(b[written:event]); err != nil {
			return 0, err
		}
	}
	return event, nil
}

// lineEnd finds the end of the line starting at b[i]: the index of its
// terminator and of the next line; end < 0 when the line is incomplete.
func lineEnd(b []byte, i int, atEOF bool) (end, next int) {
	rest := b[i:]
	lf := bytes.IndexByte(rest, '\n')
	search := rest
	if lf >= 0 {
		search = rest[:lf]
	}
	if cr := bytes.IndexByte(search, '\r'); cr >= 0 {
		switch {
		case cr+1 < len(rest) && rest[cr+1] == '\n':
			return i + cr, i + cr + 2
		case cr+1 < len(rest) || atEOF:
			return i + cr, i + cr + 1
		default:
			return -1, -1 // CR last: an LF may follow in the next read
		}
	}
	if lf < 0 {
		return -1, -1
	}
	return i + lf, i + lf + 1
}

// dispatch looks at one complete event's data and says whether to drop it.
func (s *sseRelay) dispatch(data []byte, nData int) (drop bool) {
	if nData == 0 {
		return false
	}
	if string(data) == "[DONE]" {
		s.done = true
		return false
	}
	if !bytes.Contains(data, usageKey) {
		return false
	}
	u, ok, usageOnly, err := usageOf(data)
	if err != nil {
		s.badUsage = err
		return false
	}
	if !ok {
		return false
	}
	s.usage, s.gotUsage = u, true
	return usageOnly && !s.keepUsageChunk
}
