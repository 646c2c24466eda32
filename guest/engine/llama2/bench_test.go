package llama2

import (
	"context"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine"
	"github.com/cocoon-appliance/cocoon/guest/engine/llama2/internal/testmodel"
)

// BenchmarkGenerate generates 100 tokens per iteration from the committed
// test model (greedy, a fresh prompt each time so the prefix cache does
// not help) and reports completion tokens per second.
func BenchmarkGenerate(b *testing.B) {
	e := newTestEngine(b, Options{})
	prompts := []string{"Once upon a time", "The little dog ran", "Lily and the ball"}
	tokens, i := 0, 0
	for b.Loop() {
		// A different prompt each time so the prefix cache never helps.
		req := &engine.Request{Model: "test", Prompt: prompts[i%len(prompts)], MaxTokens: 100}
		i++
		res, err := e.Generate(context.Background(), req, func(engine.Chunk) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		tokens += res.Usage.CompletionTokens
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkForward times one token through the model (ns/op is per
// token), cycling positions over the whole context so attention cost is
// averaged: the committed test model, and a model shaped like llama2.c's
// stories15M (dim 288, 6 layers, 6 heads, vocab 32000, seq_len 256) with
// random weights.
func BenchmarkForward(b *testing.B) {
	stories15M := testmodel.Config{Dim: 288, HiddenDim: 768, Layers: 6, Heads: 6, KVHeads: 6, VocabSize: 32000, SeqLen: 256}
	for _, bc := range []struct {
		name string
		cfg  testmodel.Config
	}{{"test-model", testmodel.Default}, {"stories15M-shape", stories15M}} {
		b.Run(bc.name, func(b *testing.B) {
			ck, err := ParseCheckpoint(genCheckpoint(b, bc.cfg, 1))
			if err != nil {
				b.Fatal(err)
			}
			s := newRunState(ck, ck.Config.SeqLen, 0)
			s.par.workers = max(1, testingProcs())
			pos := 0
			for b.Loop() {
				s.forward((pos*31+7)%ck.Config.VocabSize, pos, true)
				pos = (pos + 1) % ck.Config.SeqLen
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
