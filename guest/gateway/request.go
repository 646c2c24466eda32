package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// Decoding for the built-in engine. The policy, decided once for both
// endpoints:
//
//   - Unknown members are ignored, as vLLM and SGLang do: SDKs send
//     members this gateway has never heard of (user, metadata, store,
//     service_tier, vendor extensions) and refusing them would break
//     ordinary clients for nothing.
//   - Known members are type- and range-checked with OpenAI's bounds, and a
//     wrong type is a 400 naming the parameter.
//   - A known member that asks for something the engine cannot do (n > 1,
//     tools, logprobs, images, non-zero penalties, JSON mode, echo) is a
//     400 "unsupported_parameter", never silently dropped: the client
//     would otherwise pay for an answer to a different question.
//
// Absent values take OpenAI's defaults: temperature 1, top_p 1, and for
// /v1/completions max_tokens 16.

// defaultTextMaxTokens is OpenAI's (and vLLM's) max_tokens default for the
// legacy completions endpoint.
const defaultTextMaxTokens = 16

// maxStop is OpenAI's limit on stop sequences.
const maxStop = 4

// sampling holds the members both endpoints share. Envelope members
// (model, stream, stream_options, max_tokens) are read by parseEnvelope.
type sampling struct {
	Temperature      *float64           `json:"temperature"`
	TopP             *float64           `json:"top_p"`
	Seed             *int64             `json:"seed"`
	Stop             json.RawMessage    `json:"stop"`
	N                *int               `json:"n"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
}

type chatParams struct {
	sampling
	Messages       []chatMessage   `json:"messages"`
	Logprobs       *bool           `json:"logprobs"`
	TopLogprobs    *int            `json:"top_logprobs"`
	Tools          json.RawMessage `json:"tools"`
	ToolChoice     json.RawMessage `json:"tool_choice"`
	Functions      json.RawMessage `json:"functions"`
	FunctionCall   json.RawMessage `json:"function_call"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type chatMessage struct {
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	ToolCalls json.RawMessage `json:"tool_calls"`
}

type textParams struct {
	sampling
	Prompt   json.RawMessage `json:"prompt"`
	Echo     *bool           `json:"echo"`
	Suffix   *string         `json:"suffix"`
	BestOf   *int            `json:"best_of"`
	Logprobs *int            `json:"logprobs"`
}

// decodeChat turns a chat completion body into an engine request. env
// must come from parseEnvelope(body).
func decodeChat(body []byte, env *envelope) (*engine.Request, error) {
	var p chatParams
	if err := decode(body, &p); err != nil {
		return nil, err
	}
	req, err := p.sampling.request(env)
	if err != nil {
		return nil, err
	}
	switch {
	case p.Logprobs != nil && *p.Logprobs:
		return nil, unsupported("logprobs", "is not supported by the built-in engine")
	case p.TopLogprobs != nil:
		return nil, unsupported("top_logprobs", "is not supported by the built-in engine")
	case !isNull(p.Tools) && string(p.Tools) != "[]":
		return nil, unsupported("tools", "are not supported by the built-in engine")
	case !isNull(p.ToolChoice) && string(p.ToolChoice) != `"none"`:
		return nil, unsupported("tool_choice", "is not supported by the built-in engine")
	case !isNull(p.Functions) || !isNull(p.FunctionCall):
		return nil, unsupported("functions", "are not supported by the built-in engine")
	case p.ResponseFormat != nil && p.ResponseFormat.Type != "text":
		return nil, unsupported("response_format", "other than {\"type\":\"text\"} is not supported by the built-in engine")
	}
	if len(p.Messages) == 0 {
		return nil, invalid(ErrBadParam, "messages", "'messages' must be a non-empty array")
	}
	req.Messages = make([]engine.Message, len(p.Messages))
	for i, m := range p.Messages {
		msg, err := m.decode(i)
		if err != nil {
			return nil, err
		}
		req.Messages[i] = msg
	}
	return req, nil
}

func (m *chatMessage) decode(i int) (engine.Message, error) {
	param := fmt.Sprintf("messages[%d]", i)
	role := m.Role
	switch role {
	case "system", "user", "assistant":
	case "developer":
		// OpenAI's newer name for system instructions; the engine's chat
		// templates know only "system".
		role = "system"
	case "tool", "function":
		return engine.Message{}, unsupported(param+".role", "'"+role+"' needs tool calling, which the built-in engine does not support")
	case "":
		return engine.Message{}, invalid(ErrBadParam, param+".role", "'%s.role' is required", param)
	default:
		return engine.Message{}, invalid(ErrBadParam, param+".role", "'%s.role' must be one of system, developer, user, assistant", param)
	}
	if !isNull(m.ToolCalls) && string(m.ToolCalls) != "[]" {
		return engine.Message{}, unsupported(param+".tool_calls", "need tool calling, which the built-in engine does not support")
	}
	text, err := decodeContent(m.Content, param+".content", role == "assistant")
	if err != nil {
		return engine.Message{}, err
	}
	return engine.Message{Role: role, Content: text}, nil
}

// decodeContent reads a message's content: a string, or an array of
// {"type":"text","text":...} parts joined with "\n" (as vLLM joins them,
// so both backends see the same prompt). Only an assistant turn may have
// null content (a past turn that only called tools).
func decodeContent(raw json.RawMessage, param string, nullOK bool) (string, error) {
	if isNull(raw) {
		if nullOK && len(raw) > 0 {
			return "", nil
		}
		return "", invalid(ErrBadParam, param, "'%s' is required", param)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", invalid(ErrBadParam, param, "'%s' must be a string or an array of text parts", param)
		}
		return s, nil
	case '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", invalid(ErrBadParam, param, "'%s' must be a string or an array of text parts", param)
		}
		if len(parts) == 0 {
			return "", invalid(ErrBadParam, param, "'%s' must not be an empty array", param)
		}
		texts := make([]string, len(parts))
		for j, part := range parts {
			pp := fmt.Sprintf("%s[%d]", param, j)
			switch {
			case part.Type == "text" && part.Text != nil:
				texts[j] = *part.Text
			case part.Type == "text":
				return "", invalid(ErrBadParam, pp+".text", "'%s.text' is required", pp)
			case part.Type == "":
				return "", invalid(ErrBadParam, pp+".type", "'%s.type' is required", pp)
			default:
				return "", unsupported(pp+".type", "must be \"text\": the built-in engine reads text only")
			}
		}
		return strings.Join(texts, "\n"), nil
	}
	return "", invalid(ErrBadParam, param, "'%s' must be a string or an array of text parts", param)
}

// decodeText turns a legacy completion body into an engine request.
func decodeText(body []byte, env *envelope) (*engine.Request, error) {
	var p textParams
	if err := decode(body, &p); err != nil {
		return nil, err
	}
	req, err := p.sampling.request(env)
	if err != nil {
		return nil, err
	}
	if env.maxTokens == 0 {
		req.MaxTokens = defaultTextMaxTokens
	}
	switch {
	case p.Echo != nil && *p.Echo:
		return nil, unsupported("echo", "is not supported by the built-in engine")
	case p.Suffix != nil && *p.Suffix != "":
		return nil, unsupported("suffix", "is not supported by the built-in engine")
	case p.BestOf != nil && *p.BestOf != 1:
		return nil, unsupported("best_of", "must be 1 with the built-in engine")
	case p.Logprobs != nil:
		return nil, unsupported("logprobs", "is not supported by the built-in engine")
	}
	if isNull(p.Prompt) {
		return nil, invalid(ErrBadParam, "prompt", "you must provide a prompt")
	}
	switch p.Prompt[0] {
	case '"':
		if err := json.Unmarshal(p.Prompt, &req.Prompt); err != nil {
			return nil, invalid(ErrBadParam, "prompt", "'prompt' must be a string")
		}
	case '[':
		// A batch of prompts, or token IDs: engine.Request carries one
		// prompt as text.
		var list []json.RawMessage
		if err := json.Unmarshal(p.Prompt, &list); err != nil || len(list) != 1 || len(list[0]) == 0 || list[0][0] != '"' {
			return nil, unsupported("prompt", "must be a string or an array of exactly one string with the built-in engine (no batches, no token IDs)")
		}
		if err := json.Unmarshal(list[0], &req.Prompt); err != nil {
			return nil, invalid(ErrBadParam, "prompt", "'prompt[0]' must be a string")
		}
	default:
		return nil, invalid(ErrBadParam, "prompt", "'prompt' must be a string or an array of strings")
	}
	return req, nil
}

// decode unmarshals body into v, turning type errors into 400s that name
// the parameter.
func decode(body []byte, v any) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// The path names Go fields; members shared through the embedded
		// sampling struct carry its name first.
		param := strings.TrimPrefix(te.Field, "sampling.")
		if param == "" {
			return invalid(ErrBadJSON, "", "the request body must be a JSON object")
		}
		return invalid(ErrBadParam, param, "'%s' has the wrong type: want %s, got a JSON %s", param, goTypeName(te.Type.String()), te.Value)
	}
	return invalid(ErrBadJSON, "", "the request body is not valid JSON")
}

// goTypeName says a Go type the way a JSON client thinks of it.
func goTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "*int"):
		return "an integer"
	case strings.HasPrefix(t, "float"), strings.HasPrefix(t, "*float"):
		return "a number"
	case strings.HasSuffix(t, "bool"):
		return "a boolean"
	case strings.HasSuffix(t, "string"):
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	}
	return "an object"
}

// request checks the shared members and fills what they set.
func (s *sampling) request(env *envelope) (*engine.Request, error) {
	req := &engine.Request{Model: env.model, MaxTokens: env.maxTokens, Temperature: 1, TopP: 1, Seed: s.Seed}
	if s.Temperature != nil {
		if t := *s.Temperature; !(t >= 0 && t <= 2) {
			return nil, invalid(ErrBadParam, "temperature", "'temperature' must be between 0 and 2, got %g", t)
		}
		req.Temperature = *s.Temperature
	}
	if s.TopP != nil {
		if p := *s.TopP; !(p >= 0 && p <= 1) {
			return nil, invalid(ErrBadParam, "top_p", "'top_p' must be between 0 and 1, got %g", p)
		}
		req.TopP = *s.TopP
	}
	if s.N != nil && *s.N != 1 {
		if *s.N < 1 {
			return nil, invalid(ErrBadParam, "n", "'n' must be at least 1, got %d", *s.N)
		}
		return nil, unsupported("n", "must be 1 with the built-in engine")
	}
	for _, pen := range []struct {
		name string
		v    *float64
	}{{"presence_penalty", s.PresencePenalty}, {"frequency_penalty", s.FrequencyPenalty}} {
		if pen.v == nil {
			continue
		}
		if v := *pen.v; !(v >= -2 && v <= 2) {
			return nil, invalid(ErrBadParam, pen.name, "'%s' must be between -2 and 2, got %g", pen.name, v)
		}
		if *pen.v != 0 {
			return nil, unsupported(pen.name, "must be 0 with the built-in engine")
		}
	}
	if len(s.LogitBias) > 0 {
		return nil, unsupported("logit_bias", "is not supported by the built-in engine")
	}
	stop, err := decodeStop(s.Stop)
	if err != nil {
		return nil, err
	}
	req.Stop = stop
	return req, nil
}

// decodeStop reads stop: null, a string, or an array of up to four
// non-empty strings.
func decodeStop(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var list []string
	var err error
	if raw = bytes.TrimSpace(raw); raw[0] == '"' {
		var s string
		err = json.Unmarshal(raw, &s)
		list = []string{s}
	} else {
		err = json.Unmarshal(raw, &list)
	}
	if err != nil {
		return nil, invalid(ErrBadParam, "stop", "'stop' must be a string or an array of strings")
	}
	if len(list) > maxStop {
		return nil, invalid(ErrBadParam, "stop", "'stop' may hold at most %d sequences, got %d", maxStop, len(list))
	}
	for _, s := range list {
		if s == "" {
			return nil, invalid(ErrBadParam, "stop", "'stop' sequences must not be empty")
		}
	}
	return list, nil
}
