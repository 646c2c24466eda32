package llama2

import (
	"strings"
	"unicode/utf8"
)

// textStream turns decoded token bytes into the chunks a client sees. It
// holds back (a) a tail that could still become a stop string, so that a
// stop string split across tokens is never partly sent, and (b) an
// incomplete UTF-8 character, since byte-fallback tokens spell one byte at
// a time. What it sends is valid UTF-8: a byte that cannot be part of a
// character becomes U+FFFD, one per byte, so the output does not depend on
// where the token boundaries fell.
//
// A stop string ends the text at its first occurrence, found as soon as
// the token completing it arrives (as OpenAI-compatible servers do); the
// stop string itself is not sent.
type textStream struct {
	stops   []string
	pending []byte // received but not yet sent
}

// push adds one token's bytes; it returns the text that is now safe to
// send and whether a stop string was reached (text is then the last).
func (s *textStream) push(b []byte) (text string, stopped bool) {
	s.pending = append(s.pending, b...)
	cut := -1
	for _, stop := range s.stops {
		if i := strings.Index(string(s.pending), stop); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		text = sanitize(s.pending[:cut])
		s.pending = s.pending[:0]
		return text, true
	}
	hold := 0
	for _, stop := range s.stops {
		// The longest tail of pending that is a proper prefix of stop.
		for n := min(len(stop)-1, len(s.pending)); n > hold; n-- {
			if string(s.pending[len(s.pending)-n:]) == stop[:n] {
				hold = n
				break
			}
		}
	}
	hold = max(hold, incompleteTail(s.pending))
	send := len(s.pending) - hold
	// A stop string may begin inside a character (stops are matched on
	// bytes); never split a valid one, or each half would become U+FFFD.
	for p := send - 1; p >= max(0, send-(utf8.UTFMax-1)) && send < len(s.pending); p-- {
		if utf8.RuneStart(s.pending[p]) {
			if r, n := utf8.DecodeRune(s.pending[p:]); (r != utf8.RuneError || n > 1) && p+n > send {
				send = p
			}
			break
		}
	}
	text = sanitize(s.pending[:send])
	s.pending = append(s.pending[:0], s.pending[send:]...)
	return text, false
}

// flush returns what is held back, at the end of the text.
func (s *textStream) flush() string {
	text := sanitize(s.pending)
	s.pending = s.pending[:0]
	return text
}

// incompleteTail is the length of a UTF-8 character at the end of b that
// has begun but not ended.
func incompleteTail(b []byte) int {
	for n := 1; n <= min(utf8.UTFMax-1, len(b)); n++ {
		c := b[len(b)-n]
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}

// sanitize returns b as a string with each byte that is not part of a
// valid UTF-8 character replaced by U+FFFD.
func sanitize(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}
