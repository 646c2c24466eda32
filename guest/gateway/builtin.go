package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// builtin serves requests with an engine.Engine in this process.
type builtin struct {
	e   engine.Engine
	log *slog.Logger
}

func (b *builtin) models() []engine.Model { return b.e.Models() }
func (b *builtin) close()                 {}

func (b *builtin) healthy(context.Context) error {
	if len(b.e.Models()) == 0 {
		return errors.New("the engine serves no model")
	}
	return nil
}

func (b *builtin) serve(x *exchange) {
	var req *engine.Request
	var err error
	if x.ep == chatEndpoint {
		req, err = decodeChat(x.body, &x.env)
	} else {
		req, err = decodeText(x.body, &x.env)
	}
	if err != nil {
		x.fail(asAPIError(err), 0)
		return
	}
	req.Model = x.model.ID
	if req.MaxTokens == 0 {
		req.MaxTokens = x.maxTokensDefault
	}
	created := x.rec.Start.Unix()
	if x.env.stream {
		b.stream(x, req, created)
	} else {
		b.complete(x, req, created)
	}
}

// complete runs a non-streaming request.
func (b *builtin) complete(x *exchange, req *engine.Request, created int64) {
	ctx := x.r.Context()
	var text strings.Builder
	res, err := b.e.Generate(ctx, req, func(c engine.Chunk) error {
		text.WriteString(c.Text)
		return nil
	})
	if ctx.Err() != nil {
		// The client left: no answer to send, but the engine did work
		// until it noticed; count what it generated.
		x.rec.Cancelled, x.rec.Usage = true, res.Usage
		return
	}
	if err != nil {
		// An error answer carries no completion: nothing to bill.
		x.fail(b.engineError(x, err))
		return
	}
	x.rec.Usage = res.Usage
	finish := finishReason(res)
	var v any
	if x.ep == chatEndpoint {
		v = chatCompletion{
			ID: x.rec.ID, Object: "chat.completion", Created: created, Model: req.Model,
			Choices: []chatChoice{{Message: chatMessageOut{Role: "assistant", Content: text.String()}, FinishReason: finish}},
			Usage:   toUsageJSON(res.Usage),
		}
	} else {
		u, _ := json.Marshal(toUsageJSON(res.Usage))
		v = textCompletion{
			ID: x.rec.ID, Object: "text_completion", Created: created, Model: req.Model,
			Choices: []textChoice{{Text: text.String(), FinishReason: &finish}},
			Usage:   u,
		}
	}
	x.rec.Status = http.StatusOK
	writeJSON(x.w, http.StatusOK, v)
}

// stream runs a streaming request. Headers go out with the first chunk,
// not before: an error the engine finds before generating (a prompt
// longer than the context) is still answered with a proper HTTP status.
func (b *builtin) stream(x *exchange, req *engine.Request, created int64) {
	ctx := x.r.Context()
	s := &sseWriter{x: x, rc: http.NewResponseController(x.w), created: created, model: req.Model}
	var carry []byte
	res, err := b.e.Generate(ctx, req, func(c engine.Chunk) error {
		if err := s.start(); err != nil {
			return err
		}
		var text string
		text, carry = splitUTF8(carry, c.Text)
		if text == "" {
			return nil
		}
		return s.content(text)
	})
	switch {
	case ctx.Err() != nil || s.err != nil:
		// The client left (a failed write says so before the context
		// does): count the tokens the engine generated.
		x.rec.Cancelled, x.rec.Usage = true, res.Usage
		return
	case err != nil && x.rec.Status == 0:
		x.fail(b.engineError(x, err))
		return
	case err != nil:
		// Mid-stream: the status is sent, so the error goes as an event,
		// which OpenAI's SDKs raise. The client got the tokens so far.
		x.rec.Usage = res.Usage
		e, _ := b.engineError(x, err)
		s.event(json.RawMessage(e.body()))
		return
	}
	x.rec.Usage = res.Usage
	if s.start() != nil {
		x.rec.Cancelled = true
		return
	}
	if len(carry) > 0 && s.content(string(carry)) != nil {
		x.rec.Cancelled = true
		return
	}
	finish := finishReason(res)
	if s.finish(finish) != nil || (x.env.includeUsage && s.usage(res.Usage) != nil) || s.done() != nil {
		x.rec.Cancelled = true
	}
}

// engineError maps an engine's error to the client's answer.
func (b *builtin) engineError(x *exchange, err error) (*apiError, time.Duration) {
	switch {
	case errors.Is(err, engine.ErrUnknownModel):
		return modelNotFound(), 0
	case errors.Is(err, engine.ErrBadRequest):
		// The engine's reason (e.g. prompt longer than the context) is for
		// the client, who sent the prompt; it is not logged.
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, msg: err.Error(), err: ErrBadParam}, 0
	case errors.Is(err, engine.ErrOverloaded):
		return &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "overloaded",
			msg: "the engine is overloaded; retry later", err: ErrOverloaded}, x.retryAfter
	}
	b.log.Error("gateway: engine failed", "id", x.rec.ID, "model", x.rec.Model, "err", err)
	return internalError(), 0
}

func finishReason(res engine.Result) string {
	if res.FinishReason == "" {
		return engine.FinishStop
	}
	return res.FinishReason
}

// splitUTF8 returns carry+text up to its last complete UTF-8 sequence, and
// the incomplete tail to carry into the next chunk. Byte-level tokenizers
// emit a multi-byte character over several tokens; JSON-encoding the
// halves separately would turn each into U+FFFD. Invalid bytes (not a
// prefix of any character) are passed on, not held.
func splitUTF8(carry []byte, text string) (string, []byte) {
	var s string
	if len(carry) == 0 {
		s = text
	} else {
		s = string(carry) + text
	}
	// Look back at most UTFMax-1 bytes for the start of a sequence.
	for i := len(s) - 1; i >= 0 && i >= len(s)-(utf8.UTFMax-1); i-- {
		c := s[i]
		if c < utf8.RuneSelf {
			break // ASCII: everything up to here is complete
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRuneInString(s[i:]) {
				return s[:i], append(carry[:0], s[i:]...)
			}
			break
		}
	}
	return s, carry[:0]
}

// sseWriter writes the built-in engine's events.
type sseWriter struct {
	x       *exchange
	rc      *http.ResponseController
	created int64
	model   string
	err     error // the first write error: the client is gone
}

// start sends the headers and, for chat, the first chunk with the role.
func (s *sseWriter) start() error {
	if s.x.rec.Status != 0 || s.err != nil {
		return s.err
	}
	h := s.x.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell any proxy in between not to hold events
	s.x.rec.Status = http.StatusOK
	s.x.w.WriteHeader(http.StatusOK)
	if s.x.ep == chatEndpoint {
		empty := ""
		return s.chat(chatDelta{Role: "assistant", Content: &empty}, nil)
	}
	return nil
}

func (s *sseWriter) content(text string) error {
	if s.x.ep == chatEndpoint {
		return s.chat(chatDelta{Content: &text}, nil)
	}
	return s.text(text, nil)
}

func (s *sseWriter) finish(reason string) error {
	if s.x.ep == chatEndpoint {
		return s.chat(chatDelta{}, &reason)
	}
	return s.text("", &reason)
}

// usage sends the final usage-only chunk: choices empty.
func (s *sseWriter) usage(u engine.Usage) error {
	raw, _ := json.Marshal(toUsageJSON(u))
	if s.x.ep == chatEndpoint {
		return s.event(chatChunk{ID: s.x.rec.ID, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
			Choices: []chatChunkChoice{}, Usage: raw})
	}
	return s.event(textCompletion{ID: s.x.rec.ID, Object: "text_completion", Created: s.created, Model: s.model,
		Choices: []textChoice{}, Usage: raw})
}

func (s *sseWriter) chunkUsage() json.RawMessage {
	if s.x.env.includeUsage {
		return nullJSON
	}
	return nil
}

func (s *sseWriter) chat(d chatDelta, finish *string) error {
	return s.event(chatChunk{ID: s.x.rec.ID, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
		Choices: []chatChunkChoice{{Delta: d, FinishReason: finish}}, Usage: s.chunkUsage()})
}

func (s *sseWriter) text(t string, finish *string) error {
	return s.event(textCompletion{ID: s.x.rec.ID, Object: "text_completion", Created: s.created, Model: s.model,
		Choices: []textChoice{{Text: t, FinishReason: finish}}, Usage: s.chunkUsage()})
}

// event writes one "data: {json}\n\n" event and flushes it.
func (s *sseWriter) event(v any) error {
	if s.err != nil {
		return s.err
	}
	b, err := marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInternal, err)
	}
	buf := make([]byte, 0, len(b)+8)
	buf = append(append(append(buf, "data: "...), b...), "\n\n"...)
	if _, err := s.x.w.Write(buf); err != nil {
		s.err = err
		return err
	}
	if err := s.rc.Flush(); err != nil {
		s.err = err
	}
	return s.err
}

// done ends the stream the way OpenAI does.
func (s *sseWriter) done() error {
	if s.err != nil {
		return s.err
	}
	if _, err := s.x.w.Write([]byte("data: [DONE]\n\n")); err != nil {
		s.err = err
		return err
	}
	if err := s.rc.Flush(); err != nil {
		s.err = err
	}
	return s.err
}
