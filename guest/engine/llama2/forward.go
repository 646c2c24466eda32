package llama2

import (
	"math"
	"sync"
)

// minParallelWork is the multiply-adds below which a matrix product runs on
// the calling goroutine: starting goroutines costs about a microsecond
// each, roughly what a core spends on this much arithmetic.
const minParallelWork = 1 << 15

// parallel splits loops over rows across goroutines. Every row is computed
// by the same code whatever the split, so results do not depend on the
// number of workers.
type parallel struct {
	workers int
	minWork int // see minParallelWork; tests lower it to exercise the split
}

// rows runs fn over [0, n) in up to p.workers contiguous chunks; work is
// the loop's total multiply-adds, to keep small loops serial.
func (p parallel) rows(n, work int, fn func(lo, hi int)) {
	w := min(p.workers, n)
	if w <= 1 || work < p.minWork {
		fn(0, n)
		return
	}
	chunk := (n + w - 1) / w
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, min(lo+chunk, n))
	}
	fn(0, chunk)
	wg.Wait()
}

// matmul is run.c's matmul: xout (d) = W (d, n) @ x (n).
func (p parallel) matmul(xout, x, w []float32, n, d int) {
	p.rows(d, n*d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xout[i] = dot(w[i*n:(i+1)*n], x)
		}
	})
}

// dot is the inner product with four accumulators, which lets the CPU
// overlap the additions; the order is fixed, so results are reproducible.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// rmsnorm is run.c's rmsnorm: o = weight * x / sqrt(mean(x²) + 1e-5).
func rmsnorm(o, x, weight []float32) {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	ss /= float32(len(x))
	ss += 1e-5
	ss = 1 / float32(math.Sqrt(float64(ss)))
	for j := range o {
		o[j] = weight[j] * (ss * x[j])
	}
}

// softmax is run.c's softmax, in place, shifted by the maximum for
// numerical stability.
func softmax(x []float32) {
	maxVal := x[0]
	for _, v := range x[1:] {
		maxVal = max(maxVal, v)
	}
	var sum float32
	for i, v := range x {
		x[i] = float32(math.Exp(float64(v - maxVal)))
		sum += x[i]
	}
	for i := range x {
		x[i] /= sum
	}
}

// runState is run.c's RunState for one sequence: activations, the KV
// cache for ctxLen positions and the RoPE table.
type runState struct {
	ck     *Checkpoint
	ctxLen int
	par    parallel

	x, xb, xb2 []float32 // (dim)
	hb, hb2    []float32 // (hidden_dim)
	q          []float32 // (dim)
	att        []float32 // (n_heads, ctxLen)
	logits     []float32 // (vocab)
	keyCache   []float32 // (layer, ctxLen, kv_dim)
	valueCache []float32 // (layer, ctxLen, kv_dim)
	cos, sin   []float32 // (ctxLen, head_size/2)
}

func newRunState(ck *Checkpoint, ctxLen, workers int) *runState {
	c := ck.Config
	s := &runState{
		ck: ck, ctxLen: ctxLen, par: parallel{workers: workers, minWork: minParallelWork},
		x: make([]float32, c.Dim), xb: make([]float32, c.Dim), xb2: make([]float32, c.Dim),
		hb: make([]float32, c.HiddenDim), hb2: make([]float32, c.HiddenDim),
		q:          make([]float32, c.Dim),
		att:        make([]float32, c.Heads*ctxLen),
		logits:     make([]float32, c.VocabSize),
		keyCache:   make([]float32, c.Layers*ctxLen*c.KVDim()),
		valueCache: make([]float32, c.Layers*ctxLen*c.KVDim()),
	}
	// run.c computes, per pair i of a head, freq = 1/10000^(i/head_size)
	// (i even) and rotates by pos*freq; the table holds cos and sin of
	// every (pos, pair), computed in float64 and rounded once.
	half := c.HeadSize() / 2
	s.cos = make([]float32, ctxLen*half)
	s.sin = make([]float32, ctxLen*half)
	for pos := range ctxLen {
		for i := range half {
			freq := 1 / math.Pow(10000, float64(2*i)/float64(c.HeadSize()))
			s.cos[pos*half+i] = float32(math.Cos(float64(pos) * freq))
			s.sin[pos*half+i] = float32(math.Sin(float64(pos) * freq))
		}
	}
	return s
}

// rope rotates each head's pairs (v[2i], v[2i+1]) of vec by the angle of
// pos and pair i, as run.c's RoPE loop does for q and k.
func (s *runState) rope(vec []float32, pos int) {
	half := s.ck.Config.HeadSize() / 2
	cos, sin := s.cos[pos*half:(pos+1)*half], s.sin[pos*half:(pos+1)*half]
	for h := 0; h < len(vec); h += 2 * half {
		head := vec[h : h+2*half]
		for i := range half {
			fcr, fci := cos[i], sin[i]
			v0, v1 := head[2*i], head[2*i+1]
			head[2*i] = v0*fcr - v1*fci
			head[2*i+1] = v0*fci + v1*fcr
		}
	}
}

// forward runs token at position pos through the model, as run.c's
// forward, writing its keys and values into the cache. With wantLogits
// false it skips the final norm and the classifier, the largest matrix of
// a small model, which a prompt's tokens other than the last do not need;
// it then returns nil.
func (s *runState) forward(token, pos int, wantLogits bool) []float32 {
	c := s.ck.Config
	dim, hidden, kvDim, headSize := c.Dim, c.HiddenDim, c.KVDim(), c.HeadSize()
	kvMul := c.Heads / c.KVHeads // query heads per key/value head
	x := s.x
	copy(x, s.ck.embed[token*dim:(token+1)*dim])
	sqrtHead := float32(math.Sqrt(float64(headSize)))

	for l := range s.ck.layers {
		w := &s.ck.layers[l]
		rmsnorm(s.xb, x, w.rmsAtt)

		// q, and k, v straight into this position's cache row.
		loff := l * s.ctxLen * kvDim
		k := s.keyCache[loff+pos*kvDim : loff+(pos+1)*kvDim]
		v := s.valueCache[loff+pos*kvDim : loff+(pos+1)*kvDim]
		s.par.matmul(s.q, s.xb, w.wq, dim, dim)
		s.par.matmul(k, s.xb, w.wk, dim, kvDim)
		s.par.matmul(v, s.xb, w.wv, dim, kvDim)
		s.rope(s.q, pos)
		s.rope(k, pos)

		// Attention per query head, over positions 0..pos of its
		// key/value head.
		s.par.rows(c.Heads, c.Heads*(pos+1)*headSize*2, func(lo, hi int) {
			for h := lo; h < hi; h++ {
				q := s.q[h*headSize : (h+1)*headSize]
				att := s.att[h*s.ctxLen : h*s.ctxLen+pos+1]
				kvOff := (h / kvMul) * headSize
				for t := range att {
					kt := s.keyCache[loff+t*kvDim+kvOff : loff+t*kvDim+kvOff+headSize]
					att[t] = dot(q, kt) / sqrtHead
				}
				softmax(att)
				xb := s.xb[h*headSize : (h+1)*headSize]
				clear(xb)
				for t, a := range att {
					vt := s.valueCache[loff+t*kvDim+kvOff : loff+t*kvDim+kvOff+headSize]
					for i := range xb {
						xb[i] += a * vt[i]
					}
				}
			}
		})

		s.par.matmul(s.xb2, s.xb, w.wo, dim, dim)
		for i := range x {
			x[i] += s.xb2[i]
		}

		// FFN: w2(silu(w1(x)) * w3(x)).
		rmsnorm(s.xb, x, w.rmsFFN)
		s.par.matmul(s.hb, s.xb, w.w1, dim, hidden)
		s.par.matmul(s.hb2, s.xb, w.w3, dim, hidden)
		for i, h := range s.hb {
			h *= 1 / (1 + float32(math.Exp(float64(-h))))
			s.hb[i] = h * s.hb2[i]
		}
		s.par.matmul(s.xb, s.hb, w.w2, hidden, dim)
		for i := range x {
			x[i] += s.xb[i]
		}
	}
	if !wantLogits {
		return nil
	}
	rmsnorm(x, x, s.ck.rmsFinal)
	s.par.matmul(s.logits, x, s.ck.wcls, dim, c.VocabSize)
	return s.logits
}
