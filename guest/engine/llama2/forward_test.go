package llama2

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine/llama2/internal/testmodel"
)

// refModel is a reference Llama-2 forward pass written from the model's
// definition (llama2.c's model.py / Meta's model.py), not from forward.go:
// float64 throughout, its own walk of the file layout, and a whole-sequence
// computation with a causal mask instead of a KV cache.
type refModel struct {
	dim, hidden, layers, heads, kvHeads, vocab, seqLen int
	embed, wcls, rmsFinal                              [][]float64
	rmsAtt, rmsFFN                                     [][]float64   // per layer (dim)
	wq, wk, wv, wo, w1, w2, w3                         [][][]float64 // per layer (out, in)
}

func loadRef(t testing.TB, data []byte) *refModel {
	t.Helper()
	hdr := func(i int) int { return int(int32(binary.LittleEndian.Uint32(data[4*i:]))) }
	m := &refModel{dim: hdr(0), hidden: hdr(1), layers: hdr(2), heads: hdr(3), kvHeads: hdr(4), vocab: hdr(5), seqLen: hdr(6)}
	shared := m.vocab > 0
	if !shared {
		m.vocab = -m.vocab
	}
	off := 28
	next := func() float64 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		off += 4
		return float64(v)
	}
	matrix := func(rows, cols int) [][]float64 {
		out := make([][]float64, rows)
		for r := range out {
			out[r] = make([]float64, cols)
			for c := range out[r] {
				out[r][c] = next()
			}
		}
		return out
	}
	perLayer := func(rows, cols int) [][][]float64 {
		out := make([][][]float64, m.layers)
		for l := range out {
			out[l] = matrix(rows, cols)
		}
		return out
	}
	hs := m.dim / m.heads
	kv := m.kvHeads * hs
	m.embed = matrix(m.vocab, m.dim)
	m.rmsAtt = matrix(m.layers, m.dim)
	m.wq = perLayer(m.dim, m.dim)
	m.wk = perLayer(kv, m.dim)
	m.wv = perLayer(kv, m.dim)
	m.wo = perLayer(m.dim, m.dim)
	m.rmsFFN = matrix(m.layers, m.dim)
	m.w1 = perLayer(m.hidden, m.dim)
	m.w2 = perLayer(m.dim, m.hidden)
	m.w3 = perLayer(m.hidden, m.dim)
	m.rmsFinal = matrix(1, m.dim)
	off += 2 * 4 * m.seqLen * hs / 2 // freq_cis_real, freq_cis_imag
	m.wcls = m.embed
	if !shared {
		m.wcls = matrix(m.vocab, m.dim)
	}
	if off != len(data) {
		t.Fatalf("reference layout ends at %d, file is %d bytes", off, len(data))
	}
	return m
}

func refMatVec(w [][]float64, x []float64) []float64 {
	out := make([]float64, len(w))
	for r, row := range w {
		for c, v := range row {
			out[r] += v * x[c]
		}
	}
	return out
}

func refRMSNorm(x, g []float64) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+1e-5)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = g[i] * x[i] * inv
	}
	return out
}

// refRoPE rotates consecutive pairs of each head by pos·θ_j with
// θ_j = 10000^(-2j/head_size), Llama's rotary embedding on (even, odd)
// pairs as llama2.c's checkpoints expect.
func refRoPE(v []float64, pos, headSize int) {
	for h := 0; h < len(v); h += headSize {
		for j := 0; j < headSize/2; j++ {
			theta := float64(pos) * math.Pow(10000, -float64(2*j)/float64(headSize))
			a, b := v[h+2*j], v[h+2*j+1]
			v[h+2*j] = a*math.Cos(theta) - b*math.Sin(theta)
			v[h+2*j+1] = a*math.Sin(theta) + b*math.Cos(theta)
		}
	}
}

// logits returns the next-token logits after each prefix of tokens.
func (m *refModel) logits(tokens []int) [][]float64 {
	T, hs := len(tokens), m.dim/m.heads
	xs := make([][]float64, T)
	for t, tok := range tokens {
		xs[t] = slices.Clone(m.embed[tok])
	}
	for l := 0; l < m.layers; l++ {
		qs, ks, vs := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range xs {
			h := refRMSNorm(xs[t], m.rmsAtt[l])
			qs[t], ks[t], vs[t] = refMatVec(m.wq[l], h), refMatVec(m.wk[l], h), refMatVec(m.wv[l], h)
			refRoPE(qs[t], t, hs)
			refRoPE(ks[t], t, hs)
		}
		for t := range xs {
			attnOut := make([]float64, m.dim)
			for h := 0; h < m.heads; h++ {
				g := h / (m.heads / m.kvHeads) // Meta's repeat_kv: query head h reads kv head h/n_rep
				scores := make([]float64, t+1)
				maxS := math.Inf(-1)
				for s := 0; s <= t; s++ {
					for i := 0; i < hs; i++ {
						scores[s] += qs[t][h*hs+i] * ks[s][g*hs+i]
					}
					scores[s] /= math.Sqrt(float64(hs))
					maxS = math.Max(maxS, scores[s])
				}
				sum := 0.0
				for s := range scores {
					scores[s] = math.Exp(scores[s] - maxS)
					sum += scores[s]
				}
				for s := range scores {
					for i := 0; i < hs; i++ {
						attnOut[h*hs+i] += scores[s] / sum * vs[s][g*hs+i]
					}
				}
			}
			o := refMatVec(m.wo[l], attnOut)
			for i := range xs[t] {
				xs[t][i] += o[i]
			}
			h := refRMSNorm(xs[t], m.rmsFFN[l])
			a, b := refMatVec(m.w1[l], h), refMatVec(m.w3[l], h)
			for i := range a {
				a[i] = a[i] / (1 + math.Exp(-a[i])) * b[i]
			}
			f := refMatVec(m.w2[l], a)
			for i := range xs[t] {
				xs[t][i] += f[i]
			}
		}
	}
	out := make([][]float64, T)
	for t := range xs {
		out[t] = refMatVec(m.wcls, refRMSNorm(xs[t], m.rmsFinal[0]))
	}
	return out
}

// maxRelErr is max |got-want| / max(1, |want|).
func maxRelErr(got []float32, want []float64) float64 {
	worst := 0.0
	for i := range want {
		worst = max(worst, math.Abs(float64(got[i])-want[i])/max(1, math.Abs(want[i])))
	}
	return worst
}

// TestForwardMatchesReference checks the fast path's logits at every
// position against the float64 reference, for the committed model and for
// other shapes: plain multi-head attention with an unshared classifier,
// multi-query attention, and an odd FFN width.
func TestForwardMatchesReference(t *testing.T) {
	committed, _ := readTestdata(t)
	cases := []struct {
		name string
		data []byte
	}{
		{"committed", committed},
		{"mha-unshared", genCheckpoint(t, testmodel.Config{Dim: 48, HiddenDim: 128, Layers: 3, Heads: 3, KVHeads: 3, VocabSize: 300, SeqLen: 40, Unshared: true}, 7)},
		{"mqa", genCheckpoint(t, testmodel.Config{Dim: 64, HiddenDim: 96, Layers: 2, Heads: 8, KVHeads: 1, VocabSize: 270, SeqLen: 32}, 8)},
		{"odd-hidden", genCheckpoint(t, testmodel.Config{Dim: 32, HiddenDim: 77, Layers: 1, Heads: 2, KVHeads: 1, VocabSize: 260, SeqLen: 24}, 9)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ck, err := ParseCheckpoint(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			ref := loadRef(t, tc.data)
			tokens := make([]int, min(20, ck.Config.SeqLen))
			for i := range tokens {
				tokens[i] = (i*7919 + 13) % ck.Config.VocabSize
			}
			want := ref.logits(tokens)
			for _, workers := range []int{1, 3} {
				s := newRunState(ck, ck.Config.SeqLen, workers)
				s.par.minWork = 0 // split even the small products
				for pos, tok := range tokens {
					got := s.forward(tok, pos, true)
					if e := maxRelErr(got, want[pos]); e > 1e-4 {
						t.Fatalf("workers %d pos %d: logits differ from the reference by %g (> 1e-4)", workers, pos, e)
					}
				}
			}
		})
	}
}

// TestForwardPrefillSkipsOnlyLogits checks that skipping the classifier
// for prompt tokens leaves the cache, and so later logits, bit for bit
// the same.
func TestForwardPrefillSkipsOnlyLogits(t *testing.T) {
	model, _ := readTestdata(t)
	ck, err := ParseCheckpoint(model)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newRunState(ck, 32, 1), newRunState(ck, 32, 1)
	tokens := []int{1, 300, 301, 45, 46, 400}
	var la, lb []float32
	for pos, tok := range tokens {
		last := pos == len(tokens)-1
		la = a.forward(tok, pos, true)
		if got := b.forward(tok, pos, last); !last && got != nil {
			t.Fatalf("pos %d: logits returned without being asked for", pos)
		} else {
			lb = got
		}
	}
	if !slices.Equal(la, lb) {
		t.Fatal("logits after a prefill without classifier differ")
	}
}

// TestForwardSameAcrossWorkers checks that the logits are bit-identical
// whatever the number of goroutines and GOMAXPROCS.
func TestForwardSameAcrossWorkers(t *testing.T) {
	model, _ := readTestdata(t)
	ck, err := ParseCheckpoint(model)
	if err != nil {
		t.Fatal(err)
	}
	run := func(procs, workers int) [][]float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		s := newRunState(ck, 64, workers)
		s.par.minWork = 0
		var all [][]float32
		for pos := range 40 {
			all = append(all, slices.Clone(s.forward((pos*31+5)%512, pos, true)))
		}
		return all
	}
	base := run(1, 1)
	for _, n := range []int{2, 4, 7} {
		got := run(n, n)
		for pos := range base {
			if !slices.Equal(base[pos], got[pos]) {
				t.Fatalf("GOMAXPROCS=%d: logits at pos %d differ from GOMAXPROCS=1", n, pos)
			}
		}
	}
}

func TestParallelRowsCoversEachRowOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{1, 4}, {5, 2}, {7, 3}, {64, 5}, {3, 8}, {100, 1}} {
		t.Run(fmt.Sprintf("%d/%d", tc.n, tc.workers), func(t *testing.T) {
			seen := make([]int32, tc.n)
			parallel{workers: tc.workers}.rows(tc.n, 1<<30, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					seen[i]++ // disjoint chunks: no two goroutines share an index
				}
			})
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("row %d visited %d times", i, c)
				}
			}
		})
	}
}
