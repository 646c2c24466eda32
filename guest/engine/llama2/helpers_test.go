package llama2

import (
	"encoding/binary"
	"math"
	"os"
	"runtime"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine/llama2/internal/testmodel"
)

const (
	testModelPath     = "testdata/model.bin"
	testTokenizerPath = "testdata/tokenizer.bin"
)

// readTestdata returns the committed model and tokenizer bytes.
func readTestdata(t testing.TB) (model, tok []byte) {
	t.Helper()
	model, err := os.ReadFile(testModelPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err = os.ReadFile(testTokenizerPath)
	if err != nil {
		t.Fatal(err)
	}
	return model, tok
}

// genCheckpoint builds an in-memory checkpoint of another shape.
func genCheckpoint(t testing.TB, c testmodel.Config, seed uint64) []byte {
	t.Helper()
	b, err := testmodel.Checkpoint(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newTestEngine opens the committed test model.
func newTestEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if opts.ModelID == "" {
		opts.ModelID = "test"
	}
	if opts.Seeds == nil {
		opts.Seeds = &fixedSeeds{}
	}
	e, err := Open(testModelPath, testTokenizerPath, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// fixedSeeds is a deterministic seed source counting up from 1.
type fixedSeeds struct{ n uint64 }

func (s *fixedSeeds) Uint64() uint64 { s.n++; return s.n }

// tokenizerBytes writes a tokenizer.bin whose vocabulary is the three
// specials, the 256 byte pieces (score 0), then extra with its scores.
func tokenizerBytes(extra []string, scores []float32) []byte {
	pieces := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	all := []float32{0, 0, 0}
	for b := range 256 {
		pieces = append(pieces, string([]byte{'<', '0', 'x', "0123456789ABCDEF"[b>>4], "0123456789ABCDEF"[b&15], '>'}))
		all = append(all, 0)
	}
	pieces = append(pieces, extra...)
	all = append(all, scores...)
	maxLen := 0
	for _, p := range pieces {
		maxLen = max(maxLen, len(p))
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(maxLen))
	for i, p := range pieces {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(all[i]))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

// craftedTokenizer parses tokenizerBytes(extra, scores).
func craftedTokenizer(t testing.TB, extra []string, scores []float32) *Tokenizer {
	t.Helper()
	tok, err := ParseTokenizer(tokenizerBytes(extra, scores), 259+len(extra))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// testingProcs is the worker count benchmarks use: GOMAXPROCS, as the
// engine's default.
func testingProcs() int { return runtime.GOMAXPROCS(0) }
