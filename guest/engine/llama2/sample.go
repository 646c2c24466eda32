package llama2

import (
	"cmp"
	"slices"
)

// xorshift is run.c's random number generator (xorshift*, Vigna), so a
// seed picks the same tokens here as in run.c.
type xorshift struct{ state uint64 }

// zeroSeedState replaces a zero seed: xorshift's state must not be zero
// (it would stay zero), and run.c leaves seed 0 to mean "time of day",
// which a reproducible service cannot use.
const zeroSeedState = 0x2545F4914F6CDD1D

func newXorshift(seed uint64) xorshift {
	if seed == 0 {
		seed = zeroSeedState
	}
	return xorshift{seed}
}

func (r *xorshift) u32() uint32 {
	r.state ^= r.state >> 12
	r.state ^= r.state << 25
	r.state ^= r.state >> 27
	return uint32((r.state * 0x2545F4914F6CDD1D) >> 32)
}

// f32 is a float in [0, 1) with 24 random bits.
func (r *xorshift) f32() float32 { return float32(r.u32()>>8) / 16777216.0 }

// sampler is run.c's Sampler.
type sampler struct {
	temperature float32 // 0: greedy
	topp        float32 // outside (0, 1): off
	rng         xorshift
	probindex   []probIndex
}

type probIndex struct {
	prob  float32
	index int
}

// sample picks the next token from logits, which it overwrites.
func (s *sampler) sample(logits []float32) int {
	if s.temperature == 0 {
		return argmax(logits)
	}
	for i := range logits {
		logits[i] /= s.temperature
	}
	softmax(logits)
	coin := s.rng.f32()
	if s.topp <= 0 || s.topp >= 1 {
		return sampleMult(logits, coin)
	}
	return s.sampleTopP(logits, coin)
}

// argmax returns the first index of the largest value.
func argmax(p []float32) int {
	best := 0
	for i, v := range p[1:] {
		if v > p[best] {
			best = i + 1
		}
	}
	return best
}

// sampleMult samples from probabilities summing to 1 with coin in [0, 1).
func sampleMult(p []float32, coin float32) int {
	var cdf float32
	for i, v := range p {
		cdf += v
		if coin < cdf {
			return i
		}
	}
	return len(p) - 1 // rounding
}

// sampleTopP is run.c's nucleus sampling: sample among the most likely
// tokens whose cumulative probability first exceeds topp. Tokens below
// (1-topp)/(n-1) cannot be in that set and are dropped before sorting.
// run.c's qsort is not stable; a stable sort makes ties go to the lower
// index, so results do not depend on the sort's implementation.
func (s *sampler) sampleTopP(p []float32, coin float32) int {
	cutoff := (1 - s.topp) / float32(len(p)-1)
	pi := s.probindex[:0]
	for i, v := range p {
		if v >= cutoff {
			pi = append(pi, probIndex{v, i})
		}
	}
	s.probindex = pi
	if len(pi) == 0 {
		// Possible when topp < 1/n: then the most likely token alone
		// exceeds topp and is the whole nucleus. (run.c would read
		// probindex[-1].)
		return argmax(p)
	}
	slices.SortStableFunc(pi, func(a, b probIndex) int { return cmp.Compare(b.prob, a.prob) })
	var cum float32
	last := len(pi) - 1
	for i, e := range pi {
		cum += e.prob
		if cum > s.topp {
			last = i
			break
		}
	}
	r := coin * cum
	var cdf float32
	for _, e := range pi[:last+1] {
		cdf += e.prob
		if r < cdf {
			return e.index
		}
	}
	return pi[last].index
}
