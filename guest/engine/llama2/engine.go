package llama2

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// Errors of the engine itself (request errors are engine's sentinels).
var (
	ErrOptions = errors.New("llama2: bad options")
	ErrClosed  = errors.New("llama2: engine closed")
)

// Options configure an Engine.
type Options struct {
	ModelID string // the OpenAI "model" value served; required
	OwnedBy string
	// ContextLength caps prompt plus completion tokens; 0 means the
	// checkpoint's seq_len, the most it supports. The KV cache is sized
	// for it.
	ContextLength int
	// MaxWaiting is how many generations may wait while one runs; more
	// are refused with engine.ErrOverloaded. 0: none wait.
	MaxWaiting int
	// Threads is the number of goroutines a matrix product is split
	// over; 0 means runtime.GOMAXPROCS(0).
	Threads int
	// Seeds draws the sampling seed of requests that carry none. nil
	// means a ChaCha8 generator seeded from crypto/rand.
	Seeds rand.Source
}

// Engine serves one llama2.c model, one generation at a time (the KV
// cache is one sequence's), and implements engine.Engine.
//
// Between generations it keeps the KV cache of the last sequence (prompt
// and completion); a prompt that starts with the same tokens reuses them
// and reports them as Usage.CachedTokens, which makes the next turn of a
// chat cost only its new tokens.
type Engine struct {
	opts   Options
	ctxLen int
	ck     *Checkpoint
	tok    *Tokenizer

	admit chan struct{} // one slot per generation running or waiting
	run   chan struct{} // the slot of the generation running

	// Owned by whoever holds run.
	state  *runState
	cached []int // the tokens whose keys and values the cache holds, by position
	seeds  rand.Source
	closed bool
}

var _ engine.Engine = (*Engine)(nil)

// Open loads a checkpoint and tokenizer.bin from disk (the checkpoint
// memory-mapped) and returns an engine for them; Close releases them.
func Open(checkpointPath, tokenizerPath string, opts Options) (*Engine, error) {
	ck, err := OpenCheckpoint(checkpointPath)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(tokenizerPath)
	if err != nil {
		ck.Close()
		return nil, err
	}
	tok, err := ParseTokenizer(data, ck.Config.VocabSize)
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", tokenizerPath, err)
	}
	e, err := New(ck, tok, opts)
	if err != nil {
		ck.Close()
		return nil, err
	}
	return e, nil
}

// New returns an engine for a parsed checkpoint and its tokenizer. Once
// New succeeds the engine owns ck: its Close closes it.
func New(ck *Checkpoint, tok *Tokenizer, opts Options) (*Engine, error) {
	c := ck.Config
	switch {
	case opts.ModelID == "":
		return nil, fmt.Errorf("%w: no model id", ErrOptions)
	case tok.VocabSize() != c.VocabSize:
		return nil, fmt.Errorf("%w: the tokenizer has %d tokens, the checkpoint's vocab_size is %d", ErrTokenizer, tok.VocabSize(), c.VocabSize)
	case opts.ContextLength < 0 || opts.ContextLength > c.SeqLen:
		return nil, fmt.Errorf("%w: context length %d, want 0..%d (the checkpoint's seq_len)", ErrOptions, opts.ContextLength, c.SeqLen)
	case opts.MaxWaiting < 0:
		return nil, fmt.Errorf("%w: MaxWaiting %d, want >= 0", ErrOptions, opts.MaxWaiting)
	case opts.Threads < 0:
		return nil, fmt.Errorf("%w: Threads %d, want >= 0", ErrOptions, opts.Threads)
	}
	ctxLen := opts.ContextLength
	if ctxLen == 0 {
		ctxLen = c.SeqLen
	}
	threads := opts.Threads
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	seeds := opts.Seeds
	if seeds == nil {
		var key [32]byte
		if _, err := crand.Read(key[:]); err != nil {
			return nil, err
		}
		seeds = rand.NewChaCha8(key)
	}
	return &Engine{
		opts: opts, ctxLen: ctxLen, ck: ck, tok: tok,
		admit: make(chan struct{}, 1+opts.MaxWaiting),
		run:   make(chan struct{}, 1),
		state: newRunState(ck, ctxLen, threads),
		seeds: seeds,
	}, nil
}

// Tokenizer returns the model's tokenizer, e.g. to count tokens.
func (e *Engine) Tokenizer() *Tokenizer { return e.tok }

// Models lists the one model served.
func (e *Engine) Models() []engine.Model {
	return []engine.Model{{ID: e.opts.ModelID, ContextLength: e.ctxLen, OwnedBy: e.opts.OwnedBy}}
}

// Close waits for the running generation, then releases the checkpoint.
// Generations still waiting then fail with ErrClosed.
func (e *Engine) Close() error {
	e.run <- struct{}{}
	defer func() { <-e.run }()
	if e.closed {
		return nil
	}
	e.closed = true
	e.state, e.cached = nil, nil
	return e.ck.Close()
}

// minTemperature is the smallest temperature that samples; below it
// sampling is greedy.
const minTemperature = 1e-6

// params are a request's checked sampling parameters.
type params struct {
	maxTokens int
	sampler   sampler
	seeded    bool
	stops     []string
}

func (e *Engine) checkRequest(req *engine.Request) (params, []int, error) {
	var p params
	if req.Model != e.opts.ModelID {
		return p, nil, fmt.Errorf("%w: %q (this engine serves %q)", engine.ErrUnknownModel, req.Model, e.opts.ModelID)
	}
	switch {
	case req.MaxTokens < 0:
		return p, nil, fmt.Errorf("%w: max_tokens %d, want >= 0", engine.ErrBadRequest, req.MaxTokens)
	case math.IsNaN(req.Temperature) || req.Temperature < 0 || req.Temperature > math.MaxFloat32:
		return p, nil, fmt.Errorf("%w: temperature %v, want a finite value >= 0", engine.ErrBadRequest, req.Temperature)
	case math.IsNaN(req.TopP) || req.TopP < 0 || req.TopP > 1:
		return p, nil, fmt.Errorf("%w: top_p %v, want 0..1", engine.ErrBadRequest, req.TopP)
	case req.Messages != nil && req.Prompt != "":
		return p, nil, fmt.Errorf("%w: both messages and a prompt", engine.ErrBadRequest)
	}
	for i, s := range req.Stop {
		if s == "" {
			return p, nil, fmt.Errorf("%w: stop string %d is empty", engine.ErrBadRequest, i)
		}
	}
	p.maxTokens = req.MaxTokens
	p.stops = req.Stop
	p.sampler = sampler{temperature: float32(req.Temperature), topp: float32(req.TopP), probindex: make([]probIndex, 0, e.ck.Config.VocabSize)}
	if p.sampler.temperature < minTemperature {
		// Dividing logits by a tinier temperature overflows float32;
		// this close to zero, sampling is argmax anyway.
		p.sampler.temperature = 0
	}
	if req.Seed != nil {
		p.sampler.rng, p.seeded = newXorshift(uint64(*req.Seed)), true
	}
	var prompt []int
	if req.Messages != nil {
		var err error
		if prompt, err = chatTokens(e.tok, req.Messages); err != nil {
			return p, nil, err
		}
	} else {
		prompt = e.tok.Encode(req.Prompt, true, false)
	}
	if len(prompt) >= e.ctxLen {
		return p, prompt, fmt.Errorf("%w: the prompt is %d tokens, the context holds %d including at least one completion token", engine.ErrBadRequest, len(prompt), e.ctxLen)
	}
	return p, prompt, nil
}

// Generate implements engine.Engine. The prompt is a completion's Prompt
// with BOS, or the chat messages rendered by renderChat. Generation ends
// with FinishStop at BOS or EOS (llama2.c's models end a text with either)
// or a stop string, and with FinishLength at MaxTokens or when prompt and
// completion fill the context. CompletionTokens counts every sampled
// token, a final EOS included; <unk> decodes to no text.
func (e *Engine) Generate(ctx context.Context, req *engine.Request, emit func(engine.Chunk) error) (engine.Result, error) {
	var res engine.Result
	p, prompt, err := e.checkRequest(req)
	res.Usage.PromptTokens = len(prompt)
	if err != nil {
		return res, err
	}
	select {
	case e.admit <- struct{}{}:
	default:
		return res, fmt.Errorf("%w: %d generations running or waiting", engine.ErrOverloaded, cap(e.admit))
	}
	defer func() { <-e.admit }()
	select {
	case e.run <- struct{}{}:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	defer func() { <-e.run }()
	if e.closed {
		return res, ErrClosed
	}
	if !p.seeded && p.sampler.temperature > 0 {
		p.sampler.rng = newXorshift(e.seeds.Uint64())
	}
	return e.generate(ctx, prompt, &p, emit, res)
}

// generate runs with e.run held.
func (e *Engine) generate(ctx context.Context, prompt []int, p *params, emit func(engine.Chunk) error, res engine.Result) (engine.Result, error) {
	// Reuse the cached prefix, but always run the last prompt token: its
	// logits pick the first completion token.
	reuse := 0
	for reuse < len(prompt)-1 && reuse < len(e.cached) && e.cached[reuse] == prompt[reuse] {
		reuse++
	}
	e.cached = e.cached[:reuse]
	res.Usage.CachedTokens = reuse

	var logits []float32
	for pos := reuse; pos < len(prompt); pos++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		logits = e.state.forward(prompt[pos], pos, pos == len(prompt)-1)
		e.cached = append(e.cached, prompt[pos])
	}

	budget := e.ctxLen - len(prompt)
	if p.maxTokens > 0 {
		budget = min(budget, p.maxTokens)
	}
	out := textStream{stops: p.stops}
	send := func(text string) error {
		if text == "" {
			return nil
		}
		return emit(engine.Chunk{Text: text})
	}
	prev := prompt[len(prompt)-1]
	for pos := len(prompt); ; pos++ {
		next := p.sampler.sample(logits)
		res.Usage.CompletionTokens++
		if next == TokenBOS || next == TokenEOS {
			res.FinishReason = engine.FinishStop
			return res, send(out.flush())
		}
		var piece []byte
		if next != TokenUnknown {
			piece = e.tok.Decode(prev, next)
		}
		text, stopped := out.push(piece)
		if err := send(text); err != nil {
			return res, err
		}
		if stopped {
			res.FinishReason = engine.FinishStop
			return res, nil
		}
		if res.Usage.CompletionTokens == budget {
			res.FinishReason = engine.FinishLength
			return res, send(out.flush())
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		logits = e.state.forward(next, pos, true)
		e.cached = append(e.cached, next)
		prev = next
	}
}
