package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeVLLM answers like vLLM's OpenAI server (vllm/entrypoints/openai):
// whole responses with "usage":{"prompt_tokens","total_tokens",
// "completion_tokens","prompt_tokens_details":null}, streams of
// chat.completion.chunk events without a usage member, and, when
// stream_options.include_usage is true, a final chunk with "choices":[]
// and the usage, then "data: [DONE]". Knobs make it misbehave.
type fakeVLLM struct {
	srv *httptest.Server

	noUsage     bool // never report usage (an old or odd server)
	badTotal    bool // total_tokens that does not add up
	llamaCpp    bool // llama.cpp style: usage on the finish chunk, not a chunk of its own
	crlf        bool // CRLF line endings
	errStatus   int  // answer every completion with this error status
	health      int  // /health status; 0: 200
	block       bool // after two content events, wait for the client to leave
	blocked     chan struct{}
	gone        chan struct{} // closed when a blocked request's context ends
	tokens      []string      // the completion; default "Hello", " world"
	contentType string        // of streams; default "text/event-stream; charset=utf-8"

	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
}

func newFakeVLLM(t testing.TB, configure func(*fakeVLLM)) *fakeVLLM {
	f := &fakeVLLM{tokens: []string{"Hello", " world"}, blocked: make(chan struct{}, 1), gone: make(chan struct{})}
	if configure != nil {
		configure(f)
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVLLM) lastBody() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return nil
	}
	return f.bodies[len(f.bodies)-1]
}

func (f *fakeVLLM) request(i int) ([]byte, http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[i], f.headers[i]
}

func (f *fakeVLLM) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

const vllmPromptTokens = 7

func (f *fakeVLLM) usage() string {
	n := len(f.tokens)
	total := vllmPromptTokens + n
	if f.badTotal {
		total++
	}
	return fmt.Sprintf(`{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":null}`, vllmPromptTokens, total, n)
}

func (f *fakeVLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/health":
		if f.health != 0 {
			w.WriteHeader(f.health)
		}
		return
	case "/v1/models":
		io.WriteString(w, `{"object":"list","data":[{"id":"llama-3-8b","object":"model","created":1718000000,"owned_by":"vllm","root":"/models/llama-3-8b","parent":null,"max_model_len":8192,"permission":[]}]}`)
		return
	case "/v1/chat/completions", "/v1/completions":
	default:
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
	if f.errStatus != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.errStatus)
		fmt.Fprintf(w, `{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"BadRequestError","param":null,"code":%d}}`, f.errStatus)
		return
	}
	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions *struct {
			IncludeUsage         bool `json:"include_usage"`
			ContinuousUsageStats bool `json:"continuous_usage_stats"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		w.WriteHeader(400)
		return
	}
	chat := r.URL.Path == "/v1/chat/completions"
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		text := strings.Join(f.tokens, "")
		usage := `,"usage":` + f.usage()
		if f.noUsage {
			usage = ""
		}
		if chat {
			fmt.Fprintf(w, `{"id":"chatcmpl-vllm1","object":"chat.completion","created":1718000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","reasoning_content":null,"content":%q,"tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}]%s,"prompt_logprobs":null}`, req.Model, text, usage)
		} else {
			fmt.Fprintf(w, `{"id":"cmpl-vllm1","object":"text_completion","created":1718000000,"model":%q,"choices":[{"index":0,"text":%q,"logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_logprobs":null}]%s}`, req.Model, text, usage)
		}
		return
	}
	ct := f.contentType
	if ct == "" {
		ct = "text/event-stream; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	for _, ev := range f.events(chat, req.Model, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, req.StreamOptions != nil && req.StreamOptions.ContinuousUsageStats) {
		if ev == "BLOCK" {
			f.blocked <- struct{}{}
			<-r.Context().Done()
			close(f.gone)
			return
		}
		io.WriteString(w, ev)
		w.(http.Flusher).Flush()
	}
}

// events is the stream for a request, one string per flush.
func (f *fakeVLLM) events(chat bool, model string, includeUsage, continuous bool) []string {
	nl := "\n"
	if f.crlf {
		nl = "\r\n"
	}
	ev := func(s string) string { return "data: " + s + nl + nl }
	head := fmt.Sprintf(`{"id":"cmpl-vllm1","object":"text_completion","created":1718000000,"model":%q,"choices":[`, model)
	if chat {
		head = fmt.Sprintf(`{"id":"chatcmpl-vllm1","object":"chat.completion.chunk","created":1718000000,"model":%q,"choices":[`, model)
	}
	choice := func(text string, finish string) string {
		fin := "null"
		if finish != "" {
			fin = `"` + finish + `"`
		}
		if chat {
			return fmt.Sprintf(`{"index":0,"delta":{"content":%q},"logprobs":null,"finish_reason":%s}`, text, fin)
		}
		return fmt.Sprintf(`{"index":0,"text":%q,"logprobs":null,"finish_reason":%s}`, text, fin)
	}
	usageAt := func(n int) string {
		if !continuous || f.noUsage {
			return ""
		}
		return fmt.Sprintf(`,"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}`, vllmPromptTokens, vllmPromptTokens+n, n)
	}
	var out []string
	if chat {
		out = append(out, ev(head+`{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]`+usageAt(0)+`}`))
	}
	for i, tok := range f.tokens {
		out = append(out, ev(head+choice(tok, "")+`]`+usageAt(i+1)+`}`))
		if f.block && i == 1 {
			out = append(out, "BLOCK")
		}
	}
	n := len(f.tokens)
	switch {
	case f.llamaCpp && !f.noUsage:
		out = append(out, ev(head+choice("", "stop")+`],"usage":`+f.usage()+`,"timings":{"predicted_n":2}}`))
	default:
		out = append(out, ev(head+choice("", "stop")+`]`+usageAt(n)+`}`))
		if includeUsage && !f.noUsage {
			out = append(out, ev(head+`],"usage":`+f.usage()+`}`))
		}
	}
	return append(out, ev("[DONE]"))
}
