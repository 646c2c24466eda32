package gateway

import (
	"bytes"
	"encoding/json"
)

// Response objects of the OpenAI API as the built-in backend writes them
// (https://platform.openai.com/docs/api-reference/chat/object,
// .../chat/streaming, .../completions/object). Members OpenAI writes as
// null for features this engine lacks (logprobs) are written as null, so
// strict clients find every member they expect.

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"` // "chat.completion"
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usageJSON   `json:"usage"`
}

type chatChoice struct {
	Index        int            `json:"index"`
	Message      chatMessageOut `json:"message"`
	Logprobs     *struct{}      `json:"logprobs"`
	FinishReason string         `json:"finish_reason"`
}

type chatMessageOut struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatChunk is one event of a chat stream. Usage is omitted unless the
// client asked for stream_options.include_usage; then it is null on every
// chunk but the last, usage-only one, as OpenAI sends it.
type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"` // "chat.completion.chunk"
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   json.RawMessage   `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// textCompletion is the legacy completion, whole or as a stream chunk
// (both have object "text_completion").
type textCompletion struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"` // "text_completion"
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []textChoice    `json:"choices"`
	Usage   json.RawMessage `json:"usage,omitempty"`
}

type textChoice struct {
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// nullJSON is the usage member of chunks before the last when the client
// asked for usage.
var nullJSON = json.RawMessage("null")

// marshal encodes v without escaping <, > and & (generated text is full
// of them and the output is not HTML) and without the trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
