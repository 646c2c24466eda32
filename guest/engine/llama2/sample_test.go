package llama2

import (
	"math"
	"testing"
)

// TestXorshiftKnownAnswers pins the generator to run.c's: the values were
// printed by run.c's random_u32 and random_f32, compiled with gcc.
func TestXorshiftKnownAnswers(t *testing.T) {
	r := newXorshift(42)
	for i, want := range []uint32{1456360119, 3359763283, 3393612768, 4054632243} {
		if got := r.u32(); got != want {
			t.Fatalf("seed 42 value %d = %d, want %d", i, got, want)
		}
	}
	r = newXorshift(1337)
	for i, want := range []float32{0.230317235, 0.19051826, 0.310865164} {
		if got := r.f32(); got != want {
			t.Fatalf("seed 1337 float %d = %v, want %v", i, got, want)
		}
	}
	z := newXorshift(0)
	if z.u32() == 0 && z.u32() == 0 {
		t.Fatal("seed 0 leaves the generator stuck at zero")
	}
}

func TestArgmax(t *testing.T) {
	for _, tc := range []struct {
		p    []float32
		want int
	}{
		{[]float32{0.1}, 0},
		{[]float32{1, 3, 2}, 1},
		{[]float32{5, 5, 1}, 0}, // ties go to the first, as in run.c
		{[]float32{-3, -1, -1}, 1},
	} {
		if got := argmax(tc.p); got != tc.want {
			t.Errorf("argmax(%v) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

func TestSampleMult(t *testing.T) {
	p := []float32{0.5, 0.25, 0.25}
	for _, tc := range []struct {
		coin float32
		want int
	}{{0, 0}, {0.49, 0}, {0.5, 1}, {0.74, 1}, {0.75, 2}, {0.999, 2}} {
		if got := sampleMult(p, tc.coin); got != tc.want {
			t.Errorf("coin %v: %d, want %d", tc.coin, got, tc.want)
		}
	}
	if got := sampleMult([]float32{0.3, 0.3}, 0.9); got != 1 {
		t.Errorf("probabilities short of 1: %d, want the last index", got)
	}
}

func TestSampleTopP(t *testing.T) {
	// Sorted: 0.4 (idx 2), 0.3 (idx 0), 0.2 (idx 3), 0.1 (idx 1).
	p := []float32{0.3, 0.1, 0.4, 0.2}
	for _, tc := range []struct {
		topp float32
		coin float32
		want int
	}{
		// top_p 0.5: 0.4 then 0.7 > 0.5, nucleus {2, 0}, r = coin*0.7.
		{0.5, 0, 2},
		{0.5, 0.57, 2}, // r = 0.399
		{0.5, 0.58, 0}, // r = 0.406
		{0.5, 0.99, 0},
		// top_p 0.35: 0.4 alone exceeds it.
		{0.35, 0.99, 2},
		// top_p 0.95: cutoff (1-0.95)/3 keeps all; 0.4+0.3+0.2+0.1 never
		// exceeds 0.95 before the last, so all four.
		{0.95, 0.95, 1},
		{0.95, 0.85, 3},
	} {
		s := sampler{topp: tc.topp, probindex: make([]probIndex, 0, len(p))}
		if got := s.sampleTopP(append([]float32(nil), p...), tc.coin); got != tc.want {
			t.Errorf("top_p %v coin %v: %d, want %d", tc.topp, tc.coin, got, tc.want)
		}
	}
	// Ties keep index order (stable sort): {0.25 x4}, top_p 0.3 → two
	// tokens, indices 0 and 1.
	s := sampler{topp: 0.3}
	if got := s.sampleTopP([]float32{0.25, 0.25, 0.25, 0.25}, 0.6); got != 1 {
		t.Errorf("ties: %d, want 1", got)
	}
	// A uniform distribution under a tiny top_p drops every token below
	// the cutoff; the most likely token (the first) is the nucleus.
	u := make([]float32, 512)
	for i := range u {
		u[i] = 1.0 / 512
	}
	s = sampler{topp: 0.001}
	if got := s.sampleTopP(u, 0.5); got != 0 {
		t.Errorf("empty nucleus: %d, want 0", got)
	}
}

// TestSamplerDistribution checks, with a fixed seed, that temperature
// sampling follows softmax(logits/T): counts within 5 standard deviations.
func TestSamplerDistribution(t *testing.T) {
	logits := []float32{2, 1, 0, -1}
	for _, temp := range []float32{0.5, 1, 2} {
		s := sampler{temperature: temp, rng: newXorshift(7)}
		want := make([]float64, len(logits))
		sum := 0.0
		for i, l := range logits {
			want[i] = math.Exp(float64(l / temp))
			sum += want[i]
		}
		const n = 20000
		counts := make([]int, len(logits))
		buf := make([]float32, len(logits))
		for range n {
			copy(buf, logits)
			counts[s.sample(buf)]++
		}
		for i := range want {
			p := want[i] / sum
			sd := math.Sqrt(n * p * (1 - p))
			if d := math.Abs(float64(counts[i]) - n*p); d > 5*sd+1 {
				t.Errorf("T=%v token %d: %d draws, want %.0f ± %.0f", temp, i, counts[i], n*p, 5*sd)
			}
		}
	}
}

func TestSamplerGreedy(t *testing.T) {
	s := sampler{}
	if got := s.sample([]float32{0.1, 3, 2.9}); got != 1 {
		t.Fatalf("greedy = %d, want 1", got)
	}
}
