// Package engine is the interface between the inference gateway
// (guest/gateway) and what generates tokens: the built-in pure-Go engine
// for llama2.c checkpoints (guest/engine/llama2) or an adapter.
//
// The gateway owns the HTTP/OpenAI side (parsing, limits, SSE, usage in
// responses); an Engine sees a decoded request and emits text.
package engine

import (
	"context"
	"errors"
)

// Errors an engine returns; the gateway maps them to HTTP status codes.
var (
	ErrUnknownModel = errors.New("engine: unknown model")
	ErrBadRequest   = errors.New("engine: bad request") // e.g. prompt longer than the context
	ErrOverloaded   = errors.New("engine: overloaded")
)

// Model describes one served model.
type Model struct {
	ID            string // OpenAI "model" value
	ContextLength int    // tokens
	OwnedBy       string
}

// Message is one chat message.
type Message struct {
	Role    string // "system", "user", "assistant"
	Content string
}

// Request is a decoded completion or chat completion.
type Request struct {
	Model       string
	Messages    []Message // chat completions; nil for completions
	Prompt      string    // completions
	MaxTokens   int       // 0: up to the context
	Temperature float64   // 0: greedy
	TopP        float64   // 0 or 1: off
	Seed        *int64    // nil: the engine's own seed source
	Stop        []string
}

// Usage counts tokens the way OpenAI's usage object does.
type Usage struct {
	PromptTokens     int
	CachedTokens     int // prompt tokens served from a prefix cache
	CompletionTokens int
	ReasoningTokens  int // completion tokens spent on reasoning, when the model separates them
}

// Chunk is a piece of generated text.
type Chunk struct {
	Text string
}

// Finish reasons.
const (
	FinishStop   = "stop"   // end of sequence or a stop string
	FinishLength = "length" // max tokens or the context is full
)

// Result is how a generation ended.
type Result struct {
	Usage        Usage
	FinishReason string
}

// Engine generates text.
type Engine interface {
	Models() []Model
	// Generate runs req and calls emit for each chunk in order. It stops
	// early, returning ctx.Err(), when ctx ends (the client went away), and
	// returns emit's error if emit fails. Usage is filled in either case.
	Generate(ctx context.Context, req *Request, emit func(Chunk) error) (Result, error)
}
