package llama2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// encodeRunC is a direct port of run.c's encode, its quadratic merge loop
// included, to check Encode's heap against.
func encodeRunC(t *Tokenizer, text string, bos, eos bool) []int {
	var toks []int
	if bos {
		toks = append(toks, TokenBOS)
	}
	if text != "" {
		toks = append(toks, t.lookupOrByte(" "))
	}
	buf := []byte{}
	for c := 0; c < len(text); c++ {
		if text[c]&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, text[c])
		if c+1 < len(text) && text[c+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id, ok := t.ids[string(buf)]; ok {
			toks = append(toks, id)
		} else {
			for _, b := range buf {
				toks = append(toks, int(b)+3)
			}
		}
		buf = buf[:0]
	}
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i < len(toks)-1; i++ {
			id, ok := t.ids[t.pieces[toks[i]]+t.pieces[toks[i+1]]]
			if ok && t.scores[id] > best {
				best, bestID, bestIdx = t.scores[id], id, i
			}
		}
		if bestIdx == -1 {
			break
		}
		toks[bestIdx] = bestID
		toks = slices.Delete(toks, bestIdx+1, bestIdx+2)
	}
	if eos {
		toks = append(toks, TokenEOS)
	}
	return toks
}

// Ids of the crafted vocabulary below: extras start at 259.
const (
	cSpace = 259 + iota
	cA
	cB
	cC
	cAB
	cBC
	cAA
	cSpA
	cE
	cRi
	cABC
)

func craftedVocab(t testing.TB) *Tokenizer {
	return craftedTokenizer(t,
		[]string{" ", "a", "b", "c", "ab", "bc", "aa", " a", "é", "日", "abc", "hi"},
		[]float32{-100, -101, -102, -103, -5, -1, -3, -2, -104, -105, -4, -6})
}

func TestEncodeKnownAnswers(t *testing.T) {
	tok := craftedVocab(t)
	b := func(c byte) int { return firstByteToken + int(c) }
	for _, tc := range []struct {
		name     string
		text     string
		bos, eos bool
		want     []int
	}{
		{"empty: no dummy prefix", "", true, false, []int{TokenBOS}},
		{"empty without bos", "", false, false, []int{}},
		// "bc" (-1) beats " a" (-2) and "ab" (-5); then " a"; " abc" is no piece.
		{"best score first", "abc", false, false, []int{cSpA, cBC}},
		{"with bos and eos", "aaa", true, true, []int{TokenBOS, cSpA, cAA, TokenEOS}},
		// Two "aa" pairs score the same: run.c merges the leftmost.
		{"tie goes left", "baaa", false, false, []int{cSpace, cB, cAA, cA}},
		{"merge chains", "cabc", false, false, []int{cSpace, cC, cABC}}, // "bc"(-1), then "a"+"bc"="abc"(-4)
		{"byte fallback for a missing character", "ü", false, false, []int{cSpace, b(0xC3), b(0xBC)}},
		{"character in the vocabulary", "é", false, false, []int{cSpace, cE}},
		{"three-byte character", "日x", false, false, []int{cSpace, cRi, b('x')}},
		{"four-byte character falls back", "😀", false, false, []int{cSpace, b(0xF0), b(0x9F), b(0x98), b(0x80)}},
		{"invalid UTF-8 falls back byte by byte", "\xff\xfe", false, false, []int{cSpace, b(0xFF), b(0xFE)}},
		// A lead byte takes at most three continuation bytes (run.c's
		// str_len < 4); the fifth byte is a group of its own.
		{"overlong continuation run", "\xF0\x9F\x98\x80\x80", false, false, []int{cSpace, b(0xF0), b(0x9F), b(0x98), b(0x80), b(0x80)}},
		// "h" and "i" are not pieces: their byte tokens ("<0x68>",
		// "<0x69>") never concatenate to "hi".
		{"byte tokens never merge", "hi\n", false, false, []int{cSpace, b('h'), b('i'), b('\n')}},
		{"nul byte", "a\x00", false, false, []int{cSpA, b(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tok.Encode(tc.text, tc.bos, tc.eos)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
			}
			if ref := encodeRunC(tok, tc.text, tc.bos, tc.eos); !slices.Equal(ref, tc.want) {
				t.Fatalf("run.c's loop gives %v, want %v", ref, tc.want)
			}
		})
	}
}

func TestMergeFloor(t *testing.T) {
	// run.c starts best_score at -1e10, so a piece scoring that low is
	// never merged into.
	tok := craftedTokenizer(t, []string{" ", "x", "xx"}, []float32{0, 0, -1e10})
	if got, want := tok.Encode("xx", false, false), []int{259, 260, 260}; !slices.Equal(got, want) {
		t.Fatalf("Encode = %v, want %v", got, want)
	}
}

func TestDecode(t *testing.T) {
	tok := craftedTokenizer(t, []string{" hello", "world", " "}, []float32{-1, -2, -3})
	for _, tc := range []struct {
		name        string
		prev, token int
		want        string
	}{
		{"leading space stripped after BOS", TokenBOS, 259, "hello"},
		{"kept elsewhere", 260, 259, " hello"},
		{"plain piece after BOS", TokenBOS, 260, "world"},
		{"lone space after BOS", TokenBOS, 261, ""},
		{"byte piece", 260, firstByteToken + '\n', "\n"},
		{"byte piece 0x20 after BOS is not a leading-space piece", TokenBOS, firstByteToken + ' ', " "},
		{"high byte", 260, firstByteToken + 0xE6, "\xE6"},
		{"special as its piece", 260, TokenEOS, "\n</s>\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(tok.Decode(tc.prev, tc.token)); got != tc.want {
				t.Fatalf("Decode(%d, %d) = %q, want %q", tc.prev, tc.token, got, tc.want)
			}
		})
	}
}

// decodeAll decodes tokens after BOS the way a generation does.
func decodeAll(tok *Tokenizer, toks []int) string {
	var out []byte
	prev := TokenBOS
	for _, id := range toks {
		out = append(out, tok.Decode(prev, id)...)
		prev = id
	}
	return string(out)
}

func TestCommittedTokenizer(t *testing.T) {
	_, data := readTestdata(t)
	tok, err := ParseTokenizer(data, 512)
	if err != nil {
		t.Fatal(err)
	}
	// Merges learned from the generator's corpus: " the", " ball" and
	// " was" are pieces; in "red", "ed" (merge 13) goes before " r" (77),
	// and " red" is no piece.
	for _, tc := range []struct {
		text   string
		pieces []string
	}{
		{"the ball was red", []string{" the", " ball", " was", " r", "ed"}},
		{"Lily, café\n", []string{" Lily", ",", " c", "a", "f", "é", "<0x0A>"}},
	} {
		toks := tok.Encode(tc.text, true, false)
		var got []string
		for _, id := range toks[1:] {
			got = append(got, tok.Piece(id))
		}
		if !slices.Equal(got, tc.pieces) {
			t.Errorf("Encode(%q) pieces = %q, want %q", tc.text, got, tc.pieces)
		}
		if back := decodeAll(tok, toks[1:]); back != tc.text {
			t.Errorf("decode(encode(%q)) = %q", tc.text, back)
		}
	}
}

func TestParseTokenizerErrors(t *testing.T) {
	good := tokenizerBytes([]string{" ", "ab"}, []float32{-1, -2})
	const n = 261
	if _, err := ParseTokenizer(good, n); err != nil {
		t.Fatal(err)
	}
	put32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	firstScore := 4                      // token 0's score, then its length at 8
	byteTok := 4 + 8 + 5 + 8 + 5 + 8 + 6 // start of token 3 (<0x00>)
	for _, tc := range []struct {
		name  string
		data  []byte
		vocab int
		want  string
	}{
		{"empty", nil, n, "at least 4"},
		{"vocab too small for byte fallback", good, 258, "byte fallback needs"},
		{"zero max_token_length", put32(good, 0, 0), n, "max_token_length = 0"},
		{"negative max_token_length", put32(good, 0, 0xFFFFFFFF), n, "max_token_length = -1"},
		{"vocab larger than the file", good, 100000, "cannot hold"},
		{"fewer tokens than the model", good, n + 1, "truncated"},
		{"more tokens than the model", good, n - 1, "more tokens"},
		{"truncated piece", good[:len(good)-1], n, "needs 2 bytes, 1 left"},
		{"NaN score", put32(good, firstScore, 0x7FC00000), n, "finite"},
		{"infinite score", put32(good, firstScore, math.Float32bits(float32(math.Inf(-1)))), n, "finite"},
		{"negative length", put32(good, firstScore+4, 0xFFFFFFFF), n, "-1 bytes long"},
		{"longer than max_token_length", put32(good, 0, 5), n, "want 0..5"},
		{"byte pieces out of place", append(bytes.Clone(good[:byteTok+8]), append([]byte("<0x0G>"), good[byteTok+14:]...)...), n, `byte fallback wants "<0x00>"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokenizer(tc.data, tc.vocab)
			if !errors.Is(err, ErrTokenizer) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrTokenizer saying %q", err, tc.want)
			}
		})
	}
}

func FuzzParseTokenizer(f *testing.F) {
	_, committed := readTestdata(f)
	f.Add(committed, 512)
	f.Add(tokenizerBytes([]string{" ", "ab"}, []float32{-1, -2}), 261)
	f.Add(tokenizerBytes(nil, nil), 259)
	f.Add([]byte{1, 0, 0, 0}, 259)
	f.Fuzz(func(t *testing.T, data []byte, vocab int) {
		tok, err := ParseTokenizer(data, vocab)
		if err != nil {
			if !errors.Is(err, ErrTokenizer) {
				t.Fatalf("error %v is not ErrTokenizer", err)
			}
			return
		}
		// Read-write-read: the file comes back byte for byte.
		out, err := tok.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, data) {
			t.Fatal("MarshalBinary differs from the parsed bytes")
		}
		if _, err := ParseTokenizer(out, vocab); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"", "a", "hello world", "\xff日本"} {
			toks := tok.Encode(s, true, true)
			for _, id := range toks {
				if id < 0 || id >= tok.VocabSize() {
					t.Fatalf("Encode(%q) gave token %d of %d", s, id, tok.VocabSize())
				}
			}
		}
	})
}

// FuzzEncode checks Encode against run.c's loop and the round trip
// decode(encode(s)) == s, on the committed and the crafted vocabularies.
func FuzzEncode(f *testing.F) {
	_, data := readTestdata(f)
	committed, err := ParseTokenizer(data, 512)
	if err != nil {
		f.Fatal(err)
	}
	crafted := craftedVocab(f)
	for _, s := range []string{"", " ", "Once upon a time, there was a little girl named Lily.", "aaaa bcbc abc", "café — “quotes” …", "日本語 😀", "\x00\xff\xc3", "  two  spaces\n\ttab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range []*Tokenizer{committed, crafted} {
			got := tok.Encode(s, true, false)
			if want := encodeRunC(tok, s, true, false); !slices.Equal(got, want) {
				t.Fatalf("Encode(%q) = %v, run.c's loop gives %v", s, got, want)
			}
			if back := decodeAll(tok, got[1:]); back != s {
				t.Fatalf("decode(encode(%q)) = %q", s, back)
			}
			if utf8.ValidString(s) && len(got) > len(s)+2 {
				t.Fatalf("Encode(%q) has %d tokens for %d bytes", s, len(got), len(s))
			}
		}
	})
}
