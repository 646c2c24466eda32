package llama2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine"
	"github.com/cocoon-appliance/cocoon/guest/engine/llama2/internal/testmodel"
)

// TestTestdataRegenerates rebuilds the committed model and tokenizer and
// wants them byte for byte, with the sha256 values the README gives.
func TestTestdataRegenerates(t *testing.T) {
	model, err := testmodel.Checkpoint(testmodel.Default, testmodel.Seed)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := testmodel.Tokenizer(testmodel.Default.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("testdata/README.md")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, f := range []struct {
		name string
		want []byte
	}{{"model.bin", model}, {"tokenizer.bin", tok}} {
		got, err := os.ReadFile("testdata/" + f.name)
		if err != nil {
			t.Fatal(err)
		}
		total += len(got)
		if !bytes.Equal(got, f.want) {
			t.Errorf("testdata/%s differs from the generator's output; run scripts/gen-test-checkpoint", f.name)
		}
		sum := sha256.Sum256(got)
		row := "| `" + f.name + "` |"
		line := ""
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(l, row) {
				line = l
			}
		}
		if !strings.Contains(line, "`"+hex.EncodeToString(sum[:])+"`") {
			t.Errorf("README's row for %s (%q) lacks its sha256 %x", f.name, line, sum)
		}
	}
	if total >= 1<<20 {
		t.Errorf("testdata is %d bytes, keep it under 1 MiB", total)
	}
}

// TestGreedyKnownAnswer pins the committed model's greedy completion, so
// that any change to the arithmetic, the tokenizer or the generator shows.
// (TestGreedyMatchesReference checks the same text against the float64
// reference.)
func TestGreedyKnownAnswer(t *testing.T) {
	e := newTestEngine(t, Options{})
	text, res, err := generate(t, e, engine.Request{Prompt: "Once upon a time", MaxTokens: 16})
	if err != nil {
		t.Fatal(err)
	}
	// Stray byte-fallback bytes show as U+FFFD.
	const want = " Lily. childrenDs\ufffdil\ufffd u L )ay[\ufffd\ven"
	if text != want || res.Usage != (engine.Usage{PromptTokens: 9, CompletionTokens: 16}) || res.FinishReason != engine.FinishLength {
		t.Fatalf("greedy: %q %+v, want %q", text, res.Usage, want)
	}
}
