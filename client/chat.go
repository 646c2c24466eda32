package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"strings"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is an OpenAI chat completion request.
type ChatRequest struct {
	Model    string
	Messages []Message
	// MaxTokens bounds the completion; 0 leaves it to the worker.
	MaxTokens int
	// Temperature, when set, is sent; nil leaves it to the worker.
	Temperature *float64
	// Stream asks for server-sent events: onDelta then gets the text as
	// it is generated.
	Stream bool
}

// ChatResult is a finished chat completion.
type ChatResult struct {
	Worker    string // the worker's ID
	Endpoint  string
	Simulated bool // the worker's evidence is simulated (development only)
	Model     string
	Text      string
	// FinishReason is the worker's ("stop", "length").
	FinishReason                   string
	PromptTokens, CompletionTokens int64
	// Price is the worker's asking price, nanoton per 1,000,000 tokens.
	Price uint64
	// CostNanoton is (prompt + completion tokens) × Price / 1,000,000,
	// rounded down, as registry/market credits a receipt. The registry
	// credits the lower of the asking and the market price, so this is
	// what the request costs at most.
	CostNanoton uint64
	// Attempts is how many workers were tried (failover).
	Attempts int
}

// wire is what goes to the worker.
type wireChat struct {
	Model         string         `json:"model"`
	Messages      []Message      `json:"messages"`
	MaxTokens     int            `json:"max_tokens,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type usageJSON struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

type errorBody struct {
	Error *struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	} `json:"error"`
}

// Chat sends req to the best verified worker, over RA-TLS, failing over
// to the next while that is safe (package documentation, "Failover").
// With req.Stream, onDelta (if not nil) gets each piece of text as it
// arrives; the usage is asked for with stream_options.include_usage. An
// answer that breaks off after onDelta was called fails with ErrPartial
// and the result so far.
func (c *Client) Chat(ctx context.Context, req ChatRequest, onDelta func(string)) (*ChatResult, error) {
	if req.Model == "" {
		return nil, fmt.Errorf("%w: no model", ErrRequest)
	}
	if len(req.Messages) == 0 {
		return nil, fmt.Errorf("%w: no messages", ErrRequest)
	}
	w := wireChat{Model: req.Model, Messages: req.Messages, MaxTokens: req.MaxTokens, Temperature: req.Temperature, Stream: req.Stream}
	if req.Stream {
		w.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	body, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	var res *ChatResult
	attempts, err := c.failover(ctx, req.Model, func(wk *Checked) (bool, error) {
		r := &ChatResult{Worker: wk.Info.ID, Endpoint: wk.Info.Endpoint, Simulated: wk.Simulated(), Model: req.Model, Price: wk.Info.Price}
		res = r
		resp, err := c.post(ctx, wk, "/v1/chat/completions", body, "application/json")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if req.Stream {
			return c.readStream(resp, wk, r, onDelta)
		}
		return false, c.readWhole(resp, wk, r)
	})
	if res != nil {
		res.Attempts = attempts
		res.CostNanoton = Cost(res.PromptTokens+res.CompletionTokens, res.Price)
	}
	if err != nil {
		if res != nil && res.Text != "" && errors.Is(err, ErrPartial) {
			return res, err
		}
		return nil, err
	}
	return res, nil
}

// post sends body to path on worker w and returns a 200 response; any
// other status is read into an *APIError.
func (c *Client) post(ctx context.Context, w *Checked, path string, body []byte, accept string) (*http.Response, error) {
	resp, err := c.send(ctx, w, path, body, accept)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readAPIError(resp, w.Info.ID)
	}
	return resp, nil
}

// readAPIError reads a worker's error answer (at most 64 KiB of it).
func readAPIError(resp *http.Response, worker string) *APIError {
	e := &APIError{Status: resp.StatusCode, Worker: worker}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		e.Message, e.Type = eb.Error.Message, eb.Error.Type
		var code string
		if json.Unmarshal(eb.Error.Code, &code) == nil {
			e.Code = code
		}
	}
	return e
}

// readWhole reads a non-streamed completion. Nothing reaches the caller
// before it is complete, so any failure here may be retried.
func (c *Client) readWhole(resp *http.Response, w *Checked, r *ChatResult) error {
	limit := c.maxAnswer()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%w: worker %s: reading the answer: %w", ErrWorker, short(w.Info.ID), err)
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("%w: worker %s: answer over %d bytes", ErrWorker, short(w.Info.ID), limit)
	}
	var out struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage *usageJSON `json:"usage"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) == 0 {
		return fmt.Errorf("%w: worker %s: not a chat completion (%v)", ErrWorker, short(w.Info.ID), err)
	}
	r.Text, r.FinishReason = out.Choices[0].Message.Content, out.Choices[0].FinishReason
	if out.Model != "" {
		r.Model = out.Model
	}
	if out.Usage != nil {
		r.PromptTokens, r.CompletionTokens = out.Usage.PromptTokens, out.Usage.CompletionTokens
	}
	return nil
}

// readStream reads a streamed completion, handing text to onDelta. It
// reports delivered once onDelta got any text.
func (c *Client) readStream(resp *http.Response, w *Checked, r *ChatResult, onDelta func(string)) (delivered bool, err error) {
	var text strings.Builder
	defer func() {
		r.Text = text.String()
		if err != nil && delivered {
			err = fmt.Errorf("%w: %w", ErrPartial, err)
		}
	}()
	sr := newSSEReader(resp.Body, int(c.maxAnswer()))
	for {
		data, err := sr.next()
		if errors.Is(err, io.EOF) {
			return delivered, fmt.Errorf("%w: worker %s: the stream ended without [DONE]", ErrWorker, short(w.Info.ID))
		}
		if err != nil {
			return delivered, fmt.Errorf("%w: worker %s: %w", ErrWorker, short(w.Info.ID), err)
		}
		if string(data) == "[DONE]" {
			return delivered, nil
		}
		var ch struct {
			Model   string `json:"model"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usageJSON `json:"usage"`
			errorBody
		}
		if err := json.Unmarshal(data, &ch); err != nil {
			return delivered, fmt.Errorf("%w: worker %s: bad stream event: %w", ErrWorker, short(w.Info.ID), err)
		}
		if ch.Error != nil {
			return delivered, fmt.Errorf("%w: worker %s: error in the stream: %s", ErrWorker, short(w.Info.ID), ch.Error.Message)
		}
		if ch.Model != "" {
			r.Model = ch.Model
		}
		if ch.Usage != nil {
			r.PromptTokens, r.CompletionTokens = ch.Usage.PromptTokens, ch.Usage.CompletionTokens
		}
		for _, choice := range ch.Choices {
			if choice.FinishReason != nil {
				r.FinishReason = *choice.FinishReason
			}
			if t := choice.Delta.Content; t != "" {
				text.WriteString(t)
				if onDelta != nil {
					delivered = true
					onDelta(t)
				}
			}
		}
	}
}

// Cost is tokens × price / 1,000,000 nanoton, rounded down (price in
// nanoton per 1M tokens: registry/market's rule). It saturates rather than
// wrap.
func Cost(tokens int64, price uint64) uint64 {
	if tokens <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(tokens), price)
	if hi >= 1_000_000 {
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, 1_000_000)
	return q
}
