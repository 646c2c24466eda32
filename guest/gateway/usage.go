package gateway

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// ErrBadUsage is a usage object from an upstream that cannot be trusted
// for accounting: missing counts, negative ones, or parts that do not add
// up. Such a response is recorded as unaccounted, never repaired.
var ErrBadUsage = errors.New("gateway: unusable usage object")

// maxCount bounds any one count: no context holds 2^31 tokens, and a
// bigger number is a broken or hostile upstream.
const maxCount = 1<<31 - 1

// usageJSON is OpenAI's usage object, as the gateway writes it.
type usageJSON struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func toUsageJSON(u engine.Usage) *usageJSON {
	out := &usageJSON{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
	out.PromptTokensDetails.CachedTokens = u.CachedTokens
	out.CompletionTokensDetails.ReasoningTokens = u.ReasoningTokens
	return out
}

// usageIn is the usage object as upstreams send it: vLLM and SGLang give
// prompt_tokens_details as null or {"cached_tokens":n}, llama.cpp leaves
// the details out; completion_tokens_details comes from reasoning models.
type usageIn struct {
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	TotalTokens         *int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens *int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens *int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// parseUsage reads an upstream's usage object. prompt_tokens and
// completion_tokens are required; total_tokens, when given, must be their
// sum; cached tokens are part of the prompt and reasoning tokens part of
// the completion, so neither may exceed it.
func parseUsage(raw []byte) (engine.Usage, error) {
	var in usageIn
	if err := json.Unmarshal(raw, &in); err != nil {
		return engine.Usage{}, fmt.Errorf("%w: %v", ErrBadUsage, err)
	}
	if in.PromptTokens == nil || in.CompletionTokens == nil {
		return engine.Usage{}, fmt.Errorf("%w: prompt_tokens and completion_tokens are required", ErrBadUsage)
	}
	p, c := *in.PromptTokens, *in.CompletionTokens
	var cached, reasoning int64
	if d := in.PromptTokensDetails; d != nil && d.CachedTokens != nil {
		cached = *d.CachedTokens
	}
	if d := in.CompletionTokensDetails; d != nil && d.ReasoningTokens != nil {
		reasoning = *d.ReasoningTokens
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"prompt_tokens", p}, {"completion_tokens", c}, {"cached_tokens", cached}, {"reasoning_tokens", reasoning}} {
		if v.n < 0 || v.n > maxCount {
			return engine.Usage{}, fmt.Errorf("%w: %s = %d, want 0..%d", ErrBadUsage, v.name, v.n, maxCount)
		}
	}
	if in.TotalTokens != nil && *in.TotalTokens != p+c {
		return engine.Usage{}, fmt.Errorf("%w: total_tokens = %d, want prompt_tokens + completion_tokens = %d", ErrBadUsage, *in.TotalTokens, p+c)
	}
	if cached > p {
		return engine.Usage{}, fmt.Errorf("%w: cached_tokens = %d > prompt_tokens = %d", ErrBadUsage, cached, p)
	}
	if reasoning > c {
		return engine.Usage{}, fmt.Errorf("%w: reasoning_tokens = %d > completion_tokens = %d", ErrBadUsage, reasoning, c)
	}
	return engine.Usage{PromptTokens: int(p), CachedTokens: int(cached), CompletionTokens: int(c), ReasoningTokens: int(reasoning)}, nil
}

// usageOf finds the top-level "usage" of a response or chunk. ok is false
// when there is none (absent or null); err is set when there is one that
// cannot be used.
func usageOf(obj []byte) (u engine.Usage, ok bool, usageOnly bool, err error) {
	if !json.Valid(obj) {
		return u, false, false, fmt.Errorf("%w: response is not valid JSON", ErrBadUsage)
	}
	var usage, choices []byte
	if _, err := scanObject(obj, func(key, val []byte, _, _ int) error {
		switch string(key) {
		case "usage":
			usage = val
		case "choices":
			choices = val
		}
		return nil
	}); err != nil {
		return u, false, false, fmt.Errorf("%w: response is not a JSON object", ErrBadUsage)
	}
	if isNull(usage) {
		return u, false, false, nil
	}
	u, err = parseUsage(usage)
	if err != nil {
		return u, false, false, err
	}
	// The final chunk of an include_usage stream has "choices": [] (some
	// servers write null or leave it out).
	usageOnly = isNull(choices) || isEmptyArray(choices)
	return u, true, usageOnly, nil
}

func isEmptyArray(b []byte) bool {
	if len(b) < 2 || b[0] != '[' {
		return false
	}
	return skipSpace(b, 1) == len(b)-1 && b[len(b)-1] == ']'
}
