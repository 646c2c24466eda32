package llama2

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrTokenizer reports a tokenizer.bin that is not valid for the model.
var ErrTokenizer = errors.New("llama2: bad tokenizer")

// Token ids fixed by the llama2.c tokenizer format (sentencepiece's
// defaults, which llama2.c's run.c hard-codes).
const (
	TokenUnknown = 0
	TokenBOS     = 1
	TokenEOS     = 2
	// firstByteToken is <0x00>: byte-fallback tokens follow the three
	// specials (run.c: "+3 is here because the first 3 vocab elements are
	// <unk>, <s>, </s>").
	firstByteToken = 3
)

// mergeFloor is run.c's starting best_score: a pair whose merged piece
// scores this low or lower is never merged.
const mergeFloor = float32(-1e10)

// Tokenizer is a llama2.c tokenizer.bin: sentencepiece's vocabulary with
// "▁" already turned into a space, and a score per piece.
type Tokenizer struct {
	maxTokenLength int
	pieces         []string
	scores         []float32
	raw            [][]byte       // what each token decodes to: its piece, or the byte of a <0xXX> piece
	ids            map[string]int // piece -> lowest id with that piece
}

// ParseTokenizer parses a tokenizer.bin (int32 max_token_length, then per
// token: float32 score, int32 length, bytes) for a model of vocabSize
// tokens. The file must hold exactly vocabSize tokens, each no longer than
// max_token_length, with finite scores, and ids 3..258 must be the byte
// pieces <0x00>..<0xFF> that run.c's byte fallback assumes.
func ParseTokenizer(data []byte, vocabSize int) (*Tokenizer, error) {
	if vocabSize < firstByteToken+256 {
		return nil, fmt.Errorf("%w: the model has %d tokens, byte fallback needs at least %d", ErrTokenizer, vocabSize, firstByteToken+256)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: %d bytes, want at least 4 for max_token_length", ErrTokenizer, len(data))
	}
	t := &Tokenizer{
		maxTokenLength: int(int32(binary.LittleEndian.Uint32(data))),
	}
	if t.maxTokenLength <= 0 {
		return nil, fmt.Errorf("%w: max_token_length = %d, want > 0", ErrTokenizer, t.maxTokenLength)
	}
	// Each token takes at least 8 bytes, which bounds a lying vocabSize
	// before anything is allocated for it.
	if vocabSize > (len(data)-4)/8 {
		return nil, fmt.Errorf("%w: %d bytes cannot hold %d tokens (the model's vocab_size)", ErrTokenizer, len(data), vocabSize)
	}
	t.ids = make(map[string]int, vocabSize)
	t.pieces = make([]string, vocabSize)
	t.scores = make([]float32, vocabSize)
	t.raw = make([][]byte, vocabSize)
	off := 4
	for i := range vocabSize {
		if len(data)-off < 8 {
			return nil, fmt.Errorf("%w: truncated at token %d of %d (offset %d)", ErrTokenizer, i, vocabSize, off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int(int32(binary.LittleEndian.Uint32(data[off+4:])))
		off += 8
		if math.IsNaN(float64(score)) || math.IsInf(float64(score), 0) {
			return nil, fmt.Errorf("%w: token %d has score %v, want a finite score", ErrTokenizer, i, score)
		}
		if n < 0 || n > t.maxTokenLength {
			return nil, fmt.Errorf("%w: token %d is %d bytes long, want 0..%d (max_token_length)", ErrTokenizer, i, n, t.maxTokenLength)
		}
		if len(data)-off < n {
			return nil, fmt.Errorf("%w: token %d needs %d bytes, %d left", ErrTokenizer, i, n, len(data)-off)
		}
		p := string(data[off : off+n])
		off += n
		t.pieces[i], t.scores[i] = p, score
		t.raw[i] = []byte(p)
		if b, ok := bytePiece(p); ok {
			t.raw[i] = []byte{b}
		}
		if _, dup := t.ids[p]; !dup {
			t.ids[p] = i
		}
	}
	if off != len(data) {
		return nil, fmt.Errorf("%w: %d bytes after token %d; the file has more tokens than the model's vocab_size", ErrTokenizer, len(data)-off, vocabSize-1)
	}
	for b := range 256 {
		if want := fmt.Sprintf("<0x%02X>", b); t.pieces[firstByteToken+b] != want {
			return nil, fmt.Errorf("%w: token %d is %q, byte fallback wants %q", ErrTokenizer, firstByteToken+b, t.pieces[firstByteToken+b], want)
		}
	}
	return t, nil
}

// bytePiece reports whether p is a raw-byte piece such as <0x0A>, which
// decodes to the byte itself (run.c: sscanf(piece, "<0x%02hhX>")).
func bytePiece(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexDigit(p[3])
	lo, ok2 := hexDigit(p[4])
	return hi<<4 | lo, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// Piece is token id's vocabulary entry as the file holds it.
func (t *Tokenizer) Piece(id int) string { return t.pieces[id] }

// MarshalBinary writes the tokenizer back in tokenizer.bin's format.
func (t *Tokenizer) MarshalBinary() ([]byte, error) {
	out := binary.LittleEndian.AppendUint32(nil, uint32(t.maxTokenLength))
	for i, p := range t.pieces {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(t.scores[i]))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out, nil
}

// Decode returns the bytes token contributes to the text when it follows
// prev: its piece, minus a leading space right after BOS (sentencepiece
// strips it, llama2.c PR #89), or the raw byte of a <0xXX> piece, which may
// be part of a multi-byte UTF-8 character. The result must not be modified.
func (t *Tokenizer) Decode(prev, token int) []byte {
	b := t.raw[token]
	if prev == TokenBOS && len(b) > 0 && b[0] == ' ' && len(t.pieces[token]) > 0 && t.pieces[token][0] == ' ' {
		b = b[1:]
	}
	return b
}

// Encode turns text into tokens as run.c's encode does: optional BOS; a
// dummy-prefix space token when text is not empty (sentencepiece's
// add_dummy_prefix); each UTF-8 character (a byte and up to three
// continuation bytes) looked up as a piece, or else spelled as byte tokens;
// then, repeatedly, the adjacent pair whose concatenated pieces form the
// highest-scoring piece is merged, the leftmost on a tie; optional EOS.
//
// run.c rescans every pair after each merge (quadratic); this keeps the
// candidate pairs in a heap ordered by (score, position) and yields the
// same tokens, which the tests check against a direct port of run.c's loop.
func (t *Tokenizer) Encode(text string, bos, eos bool) []int {
	toks := make([]int, 0, len(text)+3)
	if bos {
		toks = append(toks, TokenBOS)
	}
	if text != "" {
		toks = append(toks, t.lookupOrByte(" "))
	}
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.ids[text[i:j]]; ok {
			toks = append(toks, id)
		} else {
			for k := i; k < j; k++ {
				toks = append(toks, firstByteToken+int(text[k]))
			}
		}
		i = j
	}
	toks = t.merge(toks)
	if eos {
		toks = append(toks, TokenEOS)
	}
	return toks
}

// lookupOrByte finds a piece that is one byte long, falling back to its
// byte token. run.c assumes the vocabulary has " " for the dummy prefix
// (every sentencepiece model does, as "▁"); the fallback keeps a
// vocabulary without it encodable.
func (t *Tokenizer) lookupOrByte(s string) int {
	if id, ok := t.ids[s]; ok {
		return id
	}
	return firstByteToken + int(s[0])
}

// pair is a candidate merge of the symbols at left and right.
type pair struct {
	score       float32
	left, right int // positions in the symbol list
	leftID      int // the tokens there when the pair was found, to spot
	rightID     int // pairs that an earlier merge made stale
	merged      int
}

type pairHeap []pair

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].left < h[j].left // run.c's strict '>' keeps the leftmost best pair
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pair)) }
func (h *pairHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

// merge applies BPE merges to toks in place of run.c's rescanning loop.
// Symbols form a linked list over their original positions; a merged
// symbol keeps its left position, so positions still order the list.
func (t *Tokenizer) merge(toks []int) []int {
	n := len(toks)
	if n < 2 {
		return toks
	}
	next := make([]int, n)
	prev := make([]int, n)
	alive := make([]bool, n)
	for i := range n {
		next[i], prev[i], alive[i] = i+1, i-1, true
	}
	var buf []byte // grows to the longest pair; max_token_length is only a bound from the file
	h := make(pairHeap, 0, n)
	consider := func(l, r int) {
		if l < 0 || r >= n {
			return
		}
		buf = append(append(buf[:0], t.pieces[toks[l]]...), t.pieces[toks[r]]...)
		id, ok := t.ids[string(buf)]
		if !ok || !(t.scores[id] > mergeFloor) {
			return
		}
		heap.Push(&h, pair{score: t.scores[id], left: l, right: r, leftID: toks[l], rightID: toks[r], merged: id})
	}
	for i := 0; i+1 < n; i++ {
		consider(i, i+1)
	}
	for h.Len() > 0 {
		p := heap.Pop(&h).(pair)
		if !alive[p.left] || !alive[p.right] || next[p.left] != p.right || toks[p.left] != p.leftID || toks[p.right] != p.rightID {
			continue
		}
		toks[p.left] = p.merged
		alive[p.right] = false
		next[p.left] = next[p.right]
		if next[p.right] < n {
			prev[next[p.right]] = p.left
		}
		consider(prev[p.left], p.left)
		consider(p.left, next[p.left])
	}
	out := toks[:0]
	for i := 0; i < n; i = next[i] {
		out = append(out, toks[i])
	}
	return out
}
