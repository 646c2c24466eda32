// Package testmodel writes small llama2.c checkpoints and tokenizers with
// RANDOM weights from a fixed-seed generator. A model written here produces
// gibberish, but always the same gibberish: the engine's tests, benchmarks
// and the committed files under guest/engine/llama2/testdata come from it.
//
// Everything here is integer arithmetic or correctly rounded IEEE operations
// (no math/rand, whose streams are not part of Go's compatibility promise),
// so the bytes are the same on every Go version. The one exception is the
// RoPE table that the legacy format carries (math.Pow/Cos/Sin); run.c no
// longer reads it, and rounding to float32 hides the last-ulp differences
// that assembly versions of those functions could make.
package testmodel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Config is a checkpoint's shape, the fields of llama2.c's header.
type Config struct {
	Dim, HiddenDim, Layers, Heads, KVHeads, VocabSize, SeqLen int
	// Unshared writes a separate classifier after the RoPE table
	// (vocab_size negative in the header).
	Unshared bool
}

// Default is the committed test model: two layers of grouped-query
// attention (4 query heads over 2 key/value heads), about 620 KiB. Its
// classifier is separate from the embedding: with random weights, a shared
// one makes the residual stream's copy of the current token's embedding
// dominate the logits, and greedy decoding repeats itself at once.
var Default = Config{Dim: 64, HiddenDim: 172, Layers: 2, Heads: 4, KVHeads: 2, VocabSize: 512, SeqLen: 128, Unshared: true}

// Seed is the weight generator's seed for the committed model.
const Seed = 0x11a3a2c0c0a

// ErrConfig reports a shape this package cannot write.
var ErrConfig = errors.New("testmodel: bad config")

// splitmix64 is Vigna's SplitMix64: tiny, well distributed and fully
// specified, so the weights never depend on a library's choice of stream.
type splitmix64 struct{ s uint64 }

func (r *splitmix64) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns a value in [-1, 1) with 24 bits of resolution; the
// conversion is exact, so only the final scaling rounds.
func (r *splitmix64) uniform() float64 {
	return float64(int64(r.next()>>40)-(1<<23)) / (1 << 23)
}

// Checkpoint returns a llama2.c checkpoint (run.c's legacy format, version
// 0 of llama2.c's export.py): the 7 int32 header, then float32 weights in
// run.c's order. Matrices are uniform with unit output variance (scale
// sqrt(3/fan_in)), RMSNorm gains are 1 ± 0.1, embeddings uniform in [-1, 1),
// and an unshared classifier has twice the scale, for logits with a
// standard deviation of about 2 (peaked enough for sampling to matter).
func Checkpoint(c Config, seed uint64) ([]byte, error) {
	if c.Dim <= 0 || c.HiddenDim <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 ||
		c.VocabSize <= 0 || c.SeqLen <= 0 || c.Dim%c.Heads != 0 || (c.Dim/c.Heads)%2 != 0 || c.Heads%c.KVHeads != 0 {
		return nil, fmt.Errorf("%w: %+v", ErrConfig, c)
	}
	headSize := c.Dim / c.Heads
	kvDim := c.KVHeads * headSize
	vocab := int32(c.VocabSize)
	if c.Unshared {
		vocab = -vocab
	}
	out := make([]byte, 0, 28+4*(c.VocabSize*c.Dim*2+c.Layers*(2*c.Dim+2*c.Dim*c.Dim+2*c.Dim*kvDim+3*c.Dim*c.HiddenDim)+c.Dim+c.SeqLen*headSize))
	for _, v := range []int32{int32(c.Dim), int32(c.HiddenDim), int32(c.Layers), int32(c.Heads), int32(c.KVHeads), vocab, int32(c.SeqLen)} {
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	r := &splitmix64{s: seed}
	put := func(f float32) { out = binary.LittleEndian.AppendUint32(out, math.Float32bits(f)) }
	fill := func(n int, scale float64) {
		for range n {
			put(float32(r.uniform() * scale))
		}
	}
	gains := func(n int) {
		for range n {
			put(float32(1 + 0.1*r.uniform()))
		}
	}
	fill(c.VocabSize*c.Dim, 1)                                          // token_embedding_table
	gains(c.Layers * c.Dim)                                             // rms_att_weight
	fill(c.Layers*c.Dim*c.Dim, math.Sqrt(3/float64(c.Dim)))             // wq
	fill(c.Layers*kvDim*c.Dim, math.Sqrt(3/float64(c.Dim)))             // wk
	fill(c.Layers*kvDim*c.Dim, math.Sqrt(3/float64(c.Dim)))             // wv
	fill(c.Layers*c.Dim*c.Dim, math.Sqrt(3/float64(c.Dim)))             // wo
	gains(c.Layers * c.Dim)                                             // rms_ffn_weight
	fill(c.Layers*c.HiddenDim*c.Dim, math.Sqrt(3/float64(c.Dim)))       // w1
	fill(c.Layers*c.Dim*c.HiddenDim, math.Sqrt(3/float64(c.HiddenDim))) // w2
	fill(c.Layers*c.HiddenDim*c.Dim, math.Sqrt(3/float64(c.Dim)))       // w3
	gains(c.Dim)                                                        // rms_final_weight
	// freq_cis_real then freq_cis_imag, (seq_len, head_size/2) each, as
	// llama2.c's model.py precomputes them (theta 10000).
	for _, f := range []func(float64) float64{math.Cos, math.Sin} {
		for pos := range c.SeqLen {
			for i := range headSize / 2 {
				freq := 1 / math.Pow(10000, float64(2*i)/float64(headSize))
				put(float32(f(float64(pos) * freq)))
			}
		}
	}
	if c.Unshared {
		fill(c.VocabSize*c.Dim, 3*math.Sqrt(3/float64(c.Dim))) // wcls
	}
	return out, nil
}

// Token ids that the llama2.c tokenizer format fixes.
const (
	UNK = 0
	BOS = 1
	EOS = 2
)

// Chars are the single-character pieces of the test vocabulary after the
// 256 byte tokens: printable ASCII, then a few multi-byte characters so
// that the UTF-8 paths of the tokenizer see real use.
var Chars = func() []string {
	var s []string
	for c := ' '; c <= '~'; c++ {
		s = append(s, string(c))
	}
	return append(s, "é", "ü", "—", "’", "…", "€")
}()

// corpus is the fixed text the merges are learned from.
const corpus = `Once upon a time, there was a little girl named Lily. She liked to play
in the park with her friends. One day, she saw a big red ball under a tree.
She wanted to play with the ball, but it was too high. Lily asked her mother
for help. Her mother smiled and said, "Let us get the ball together." They
played with the ball all day, and then they went home for dinner. Lily was
very happy. The sun was warm and the sky was blue. The little dog ran after
the ball and the children laughed. They were all friends and they had fun in
the garden. After that, the girl and the boy went to the house to eat and to
sleep. It was the end of a good day, and everyone in the town was happy.`

// Tokenizer returns a tokenizer.bin in llama2.c's format (tokenizer.py's
// export: int32 max_token_length, then per token float32 score, int32
// length, bytes) for a vocabulary of vocabSize pieces: <unk>, "\n<s>\n",
// "\n</s>\n" (as tokenizer.py renders BOS and EOS), the 256 byte-fallback
// pieces <0x00>..<0xFF> (score 0), Chars, then BPE merges learned from a
// fixed English text. As in a sentencepiece model, earlier merges score
// higher (merge k scores -k) and single characters score below every merge.
func Tokenizer(vocabSize int) ([]byte, error) {
	base := 3 + 256 + len(Chars)
	if vocabSize < base {
		return nil, fmt.Errorf("%w: vocabulary of %d tokens, need at least %d", ErrConfig, vocabSize, base)
	}
	merges, err := learnMerges(vocabSize - base)
	if err != nil {
		return nil, err
	}
	pieces := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	scores := []float32{0, 0, 0}
	for b := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
		scores = append(scores, 0)
	}
	for i, ch := range Chars {
		pieces = append(pieces, ch)
		scores = append(scores, -float32(len(merges)+i))
	}
	for k, m := range merges {
		pieces = append(pieces, m)
		scores = append(scores, -float32(k))
	}
	maxLen := 0
	for _, p := range pieces {
		maxLen = max(maxLen, len(p))
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(maxLen))
	for i, p := range pieces {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(scores[i]))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out, nil
}

// learnMerges runs byte-pair-encoding training on corpus the way
// sentencepiece sees text: words keep their leading space (sentencepiece's
// "▁", which llama2.c's export turns back into a space) and merges never
// cross a word boundary. Each step merges the most frequent adjacent pair,
// ties going to the lexically smallest concatenation; a pair whose
// concatenation is already a piece is merged without using a slot.
func learnMerges(n int) ([]string, error) {
	counts := map[string]int{}
	for _, w := range strings.Fields(corpus) {
		counts[" "+w]++
	}
	type word struct {
		syms  []string
		count int
	}
	var words []word
	for _, w := range slices.Sorted(maps.Keys(counts)) {
		var syms []string
		for _, r := range w {
			syms = append(syms, string(r))
		}
		words = append(words, word{syms, counts[w]})
	}
	known := map[string]bool{}
	for _, c := range Chars {
		known[c] = true
	}
	var merges []string
	for len(merges) < n {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.count
			}
		}
		if len(pairs) == 0 {
			return nil, fmt.Errorf("%w: the corpus yields only %d merges, %d wanted", ErrConfig, len(merges), n)
		}
		var best [2]string
		bestCount := 0
		for p, c := range pairs {
			if c > bestCount || (c == bestCount && p[0]+p[1] < best[0]+best[1]) ||
				(c == bestCount && p[0]+p[1] == best[0]+best[1] && p[0] < best[0]) {
				best, bestCount = p, c
			}
		}
		joined := best[0] + best[1]
		if !known[joined] {
			known[joined] = true
			merges = append(merges, joined)
		}
		for wi := range words {
			syms := words[wi].syms
			var out []string
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == best[0] && syms[i+1] == best[1] {
					out = append(out, joined)
					i++
					continue
				}
				out = append(out, syms[i])
			}
			words[wi].syms = out
		}
	}
	return merges, nil
}
