package llama2

import (
	"slices"
	"strings"
	"testing"
)

// runStream pushes pieces and returns the chunks sent and whether a stop
// string ended the text.
func runStream(stops []string, pieces []string) ([]string, bool) {
	s := textStream{stops: stops}
	var out []string
	for _, p := range pieces {
		text, stopped := s.push([]byte(p))
		if text != "" {
			out = append(out, text)
		}
		if stopped {
			return out, true
		}
	}
	if text := s.flush(); text != "" {
		out = append(out, text)
	}
	return out, false
}

func TestTextStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stops   []string
		pieces  []string
		want    []string
		stopped bool
	}{
		{"no stops", nil, []string{"Hel", "lo"}, []string{"Hel", "lo"}, false},
		{"stop inside a piece", []string{"END"}, []string{"abENDcd"}, []string{"ab"}, true},
		{"stop across pieces is held back", []string{"END"}, []string{"ab", "E", "N", "Dx"}, []string{"ab"}, true},
		{"false start released", []string{"END"}, []string{"ab", "EN", "x"}, []string{"ab", "ENx"}, false},
		{"prefix held until the end", []string{"END"}, []string{"abE"}, []string{"ab", "E"}, false},
		{"earliest of two stops", []string{"cd", "b"}, []string{"abcd"}, []string{"a"}, true},
		{"stop at the very start", []string{"x"}, []string{"xyz"}, nil, true},
		{"split UTF-8 character", nil, []string{"a\xe6", "\x97", "\xa5b"}, []string{"a", "日b"}, false},
		{"invalid byte becomes U+FFFD", nil, []string{"a\xff", "b"}, []string{"a\uFFFD", "b"}, false},
		{"truncated character at the end", nil, []string{"a\xe6\x97"}, []string{"a", "\uFFFD\uFFFD"}, false},
		{"stop after a split character", []string{"日"}, []string{"x\xe6", "\x97\xa5"}, []string{"x"}, true},
		// "\x9b" may start the stop "\x9b0", but here it ends "ߛ": the
		// character is held whole rather than split into two U+FFFD.
		{"stop prefix inside a character", []string{"\x9b0"}, []string{"\xdf\x9b"}, []string{"ߛ"}, false},
		{"literal U+FFFD held whole", []string{"\xbd!"}, []string{"a\uFFFD"}, []string{"a", "\uFFFD"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, stopped := runStream(tc.stops, tc.pieces)
			if !slices.Equal(got, tc.want) || stopped != tc.stopped {
				t.Fatalf("chunks %q stopped %v, want %q %v", got, stopped, tc.want, tc.stopped)
			}
		})
	}
}

// FuzzTextStream checks the stream against the plain definition: the
// text sent is the whole text, cut at the first stop string present once
// the piece completing it arrived, with invalid bytes replaced one by one.
func FuzzTextStream(f *testing.F) {
	f.Add("Hello END world", "END", "lo", uint8(3))
	f.Add("a\xe6\x97\xa5b\xffc", "b", "", uint8(1))
	f.Add("abcd", "cd", "b", uint8(2))
	f.Fuzz(func(t *testing.T, text, stop1, stop2 string, split uint8) {
		var stops []string
		for _, s := range []string{stop1, stop2} {
			if s != "" {
				stops = append(stops, s)
			}
		}
		// Cut text into pieces of 1..8 bytes chosen by split.
		var pieces []string
		n := int(split%8) + 1
		for i := 0; i < len(text); i += n {
			pieces = append(pieces, text[i:min(i+n, len(text))])
		}
		got, stopped := runStream(stops, pieces)
		// Reference: grow the text piece by piece; stop at the first
		// moment any stop string occurs, at its earliest position.
		want, wantStop := text, false
		seen := ""
	outer:
		for _, p := range pieces {
			seen += p
			cut := -1
			for _, s := range stops {
				if i := strings.Index(seen, s); i >= 0 && (cut < 0 || i < cut) {
					cut = i
				}
			}
			if cut >= 0 {
				want, wantStop = seen[:cut], true
				break outer
			}
		}
		if joined := strings.Join(got, ""); joined != sanitize([]byte(want)) || stopped != wantStop {
			t.Fatalf("pieces %q stops %q: sent %q (stopped %v), want %q (%v)", pieces, stops, joined, stopped, sanitize([]byte(want)), wantStop)
		}
	})
}
