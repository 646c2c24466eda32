package gateway

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

const idHex = "00000000000000000000000000000000" // zeroRand

func TestChatCompletion(t *testing.T) {
	eng := newFakeEngine("Once", " upon", " a time")
	h := newHarness(t, Options{Engine: eng})
	body := `{"model":"stories15M","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"` + secretPrompt + `"},{"type":"text","text":"go"}]}],"max_tokens":20,"temperature":0,"seed":42,"stop":"THE END","user":"u-1","metadata":{"x":"y"}}`
	resp := h.post(t, "/v1/chat/completions", body)
	got := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	// created is the request's start: the step clock's first reading.
	want := `{"id":"chatcmpl-` + idHex + `","object":"chat.completion","created":1793613602,"model":"stories15M",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Once upon a time"},"logprobs":null,"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":0}}}`
	if string(got) != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
	seed := int64(42)
	wantReq := engine.Request{
		Model: "stories15M",
		Messages: []engine.Message{
			{Role: "system", Content: "be brief"},
			{Role: "user", Content: secretPrompt + "\ngo"},
		},
		MaxTokens: 20, Temperature: 0, TopP: 1, Seed: &seed, Stop: []string{"THE END"},
	}
	if r := eng.request(); !reflect.DeepEqual(r, wantReq) {
		t.Errorf("engine got %+v, want %+v", r, wantReq)
	}
	rec := h.recs.next(t)
	hash := mac(body)
	if resp.Header.Get("X-Request-Id") != rec.ID || resp.Header.Get("X-Request-Hash") != hex.EncodeToString(hash[:]) {
		t.Errorf("headers %v, record %+v", resp.Header, rec)
	}
	wantRec := Record{
		ID: "chatcmpl-" + idHex, Endpoint: "/v1/chat/completions", Model: "stories15M",
		Usage: engine.Usage{PromptTokens: 11, CachedTokens: 3, CompletionTokens: 3},
		Start: rec.Start, End: rec.End, Status: 200, RequestHash: hash,
	}
	if rec != wantRec || !rec.End.After(rec.Start) {
		t.Errorf("record %+v, want %+v", rec, wantRec)
	}
}

func TestTextCompletion(t *testing.T) {
	eng := newFakeEngine("lazy", " dog")
	eng.finish = engine.FinishLength
	h := newHarness(t, Options{Engine: eng})
	resp := h.post(t, "/v1/completions", `{"model":"stories15M","prompt":["`+secretPrompt+`"],"top_p":0.9}`)
	got := readAll(t, resp)
	want := `{"id":"cmpl-` + idHex + `","object":"text_completion","created":1793613602,"model":"stories15M",` +
		`"choices":[{"text":"lazy dog","index":0,"logprobs":null,"finish_reason":"length"}],` +
		`"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":0}}}`
	if resp.StatusCode != 200 || string(got) != want {
		t.Errorf("status %d body\n%s\nwant\n%s", resp.StatusCode, got, want)
	}
	// OpenAI's completions default: 16 tokens; temperature defaults to 1.
	r := eng.request()
	if r.Prompt != secretPrompt || r.MaxTokens != defaultTextMaxTokens || r.Temperature != 1 || r.TopP != 0.9 || r.Messages != nil {
		t.Errorf("engine got %+v", r)
	}
	if rec := h.recs.next(t); rec.Endpoint != "/v1/completions" || rec.Usage.CompletionTokens != 2 || rec.Status != 200 {
		t.Errorf("record %+v", rec)
	}
}

func TestMaxTokensDefaultsToOption(t *testing.T) {
	eng := newFakeEngine("x")
	h := newHarness(t, Options{Engine: eng, MaxTokens: 100})
	readAll(t, h.post(t, "/v1/chat/completions", `{"model":"stories15M","messages":[{"role":"user","content":"hi"}]}`))
	if r := eng.request(); r.MaxTokens != 100 {
		t.Errorf("MaxTokens = %d, want the Options bound 100", r.MaxTokens)
	}
	h.recs.next(t)
}

func TestChatStream(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		t.Run(fmt.Sprint("include_usage=", includeUsage), func(t *testing.T) {
			eng := newFakeEngine("Once", "", " upon")
			h := newHarness(t, Options{Engine: eng})
			body := `{"model":"stories15M","stream":true,"messages":[{"role":"user","content":"` + secretPrompt + `"}]}`
			if includeUsage {
				body = `{"model":"stories15M","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
			}
			resp := h.post(t, "/v1/chat/completions", body)
			stream := readAll(t, resp)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
				t.Fatalf("status %d, %v", resp.StatusCode, resp.Header)
			}
			u := ""
			if includeUsage {
				u = `,"usage":null`
			}
			head := `{"id":"chatcmpl-` + idHex + `","object":"chat.completion.chunk","created":1793613602,"model":"stories15M","choices":[`
			want := []string{
				head + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]` + u + `}`,
				head + `{"index":0,"delta":{"content":"Once"},"logprobs":null,"finish_reason":null}]` + u + `}`,
				head + `{"index":0,"delta":{"content":" upon"},"logprobs":null,"finish_reason":null}]` + u + `}`,
				head + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]` + u + `}`,
			}
			if includeUsage {
				want = append(want, head+`],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":0}}}`)
			}
			want = append(want, "[DONE]")
			if got := sseEvents(t, stream); !reflect.DeepEqual(got, want) {
				t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if rec := h.recs.next(t); rec.Usage.CompletionTokens != 3 || rec.Status != 200 || rec.Cancelled {
				t.Errorf("record %+v", rec)
			}
		})
	}
}

func TestTextStream(t *testing.T) {
	eng := newFakeEngine("a", "b")
	h := newHarness(t, Options{Engine: eng})
	stream := readAll(t, h.post(t, "/v1/completions", `{"model":"stories15M","prompt":"x","stream":true,"stream_options":{"include_usage":true},"max_tokens":2}`))
	head := `{"id":"cmpl-` + idHex + `","object":"text_completion","created":1793613602,"model":"stories15M","choices":[`
	want := []string{
		head + `{"text":"a","index":0,"logprobs":null,"finish_reason":null}],"usage":null}`,
		head + `{"text":"b","index":0,"logprobs":null,"finish_reason":null}],"usage":null}`,
		head + `{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":null}`,
		head + `],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		"[DONE]",
	}
	if got := sseEvents(t, stream); !reflect.DeepEqual(got, want) {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	h.recs.next(t)
}

// A character split over two tokens reaches the client whole.
func TestStreamKeepsUTF8Whole(t *testing.T) {
	eng := newFakeEngine("price: \xe2\x82", "\xac 5", " \xf0\x9f", "\x98", "\x80")
	h := newHarness(t, Options{Engine: eng})
	events := sseEvents(t, readAll(t, h.post(t, "/v1/completions", `{"model":"stories15M","prompt":"x","stream":true}`)))
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		for _, c := range decodeJSON(t, e)["choices"].([]any) {
			text.WriteString(c.(map[string]any)["text"].(string))
		}
	}
	if text.String() != "price: € 5 😀" {
		t.Errorf("text %q, want %q", text.String(), "price: € 5 😀")
	}
	h.recs.next(t)
}

func TestSplitUTF8(t *testing.T) {
	for _, tc := range []struct {
		carry, text, out, rest string
	}{
		{"", "abc", "abc", ""},
		{"", "a\xe2\x82", "a", "\xe2\x82"},
		{"\xe2\x82", "\xac!", "€!", ""},
		{"\xe2", "\x82", "", "\xe2\x82"},
		{"", "\xf0\x9f\x98", "", "\xf0\x9f\x98"},
		{"", "\xf0\x9f\x98\x80", "😀", ""},
		{"", "x\x80\x80\x80", "x\x80\x80\x80", ""}, // invalid, not a prefix: passed on
		{"", "\xff", "\xff", ""},
		{"", "", "", ""},
	} {
		out, rest := splitUTF8([]byte(tc.carry), tc.text)
		if out != tc.out || string(rest) != tc.rest {
			t.Errorf("splitUTF8(%q, %q) = %q, %q; want %q, %q", tc.carry, tc.text, out, rest, tc.out, tc.rest)
		}
	}
}

func TestEngineErrors(t *testing.T) {
	for _, tc := range []struct {
		err        error
		status     int
		typ, code  string
		retryAfter string
	}{
		{fmt.Errorf("%w: prompt is 300 tokens, the context 256", engine.ErrBadRequest), 400, typeInvalidRequest, "", ""},
		{engine.ErrUnknownModel, 404, typeInvalidRequest, "model_not_found", ""},
		{engine.ErrOverloaded, 503, typeServer, "overloaded", "2"},
		{errors.New("weights: short read"), 500, typeServer, "", ""},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/stream=%v", tc.err, stream), func(t *testing.T) {
				eng := newFakeEngine()
				eng.err = tc.err
				h := newHarness(t, Options{Engine: eng, RetryAfter: 1500 * time.Millisecond})
				resp := h.post(t, "/v1/chat/completions", fmt.Sprintf(`{"model":"stories15M","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream))
				body := readAll(t, resp)
				typ, code, _, msg := errorOf(t, body)
				if resp.StatusCode != tc.status || typ != tc.typ || code != tc.code || resp.Header.Get("Retry-After") != tc.retryAfter {
					t.Errorf("status %d Retry-After %q body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
				}
				if tc.status == 500 && strings.Contains(msg, "weights") {
					t.Errorf("internal error leaked to the client: %s", body)
				}
				if rec := h.recs.next(t); rec.Status != tc.status || rec.Usage != (engine.Usage{}) {
					t.Errorf("record %+v", rec)
				}
			})
		}
	}
}

// An error after the first tokens arrives as an error event; the tokens
// sent are counted.
func TestStreamErrorMidway(t *testing.T) {
	eng := newFakeEngine("a", "b")
	eng.midErr = errors.New("GPU fell off the bus")
	h := newHarness(t, Options{Engine: eng})
	events := sseEvents(t, readAll(t, h.post(t, "/v1/completions", `{"model":"stories15M","prompt":"x","stream":true}`)))
	last := events[len(events)-1]
	if len(events) != 3 || !strings.Contains(last, `"type":"server_error"`) || strings.Contains(last, "GPU") {
		t.Errorf("events %q", events)
	}
	if rec := h.recs.next(t); rec.Status != 200 || rec.Usage.CompletionTokens != 2 || rec.Cancelled {
		t.Errorf("record %+v", rec)
	}
}

// The client leaves mid-stream: the engine sees its context end and the
// record counts the tokens generated.
func TestClientDisconnectCancelsEngine(t *testing.T) {
	for _, stream := range []bool{true, false} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			eng := newFakeEngine("a", "b", "c")
			eng.block, eng.ctxDone = true, make(chan struct{})
			eng.started = make(chan struct{}, 1)
			h := newHarness(t, Options{Engine: eng})
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			body := fmt.Sprintf(`{"model":"stories15M","prompt":"x","stream":%v}`, stream)
			req, _ := http.NewRequest("POST", h.srv.URL+"/v1/completions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if stream {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				// Read the three chunks, then hang up.
				br := bufio.NewReader(resp.Body)
				for n := 0; n < 3; {
					line, err := br.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(line, "data: ") {
						n++
					}
				}
				resp.Body.Close()
			} else {
				done := make(chan struct{})
				go func() {
					defer close(done)
					tr.RoundTrip(req) // fails: the connection is closed under it
				}()
				<-eng.started
				tr.CloseIdleConnections()
				// A non-streaming request's connection is not idle; cancel
				// it the way a client does, by closing the connection.
				h.srv.CloseClientConnections()
				<-done
			}
			<-eng.ctxDone // the engine saw the context end
			rec := h.recs.next(t)
			if !rec.Cancelled || rec.Usage.CompletionTokens != 3 || rec.Usage.PromptTokens != 11 {
				t.Errorf("record %+v", rec)
			}
			if stream && rec.Status != 200 || !stream && rec.Status != statusClientGone {
				t.Errorf("status %d", rec.Status)
			}
		})
	}
}

func TestConcurrencyLimit(t *testing.T) {
	eng := newFakeEngine("x")
	eng.started, eng.release = make(chan struct{}, 1), make(chan struct{})
	h := newHarness(t, Options{Engine: eng, MaxInFlight: 1})
	first := make(chan *http.Response)
	go func() { first <- h.post(t, "/v1/completions", `{"model":"stories15M","prompt":"x"}`) }()
	<-eng.started // the only slot is taken
	resp := h.post(t, "/v1/completions", `{"model":"stories15M","prompt":"y"}`)
	body := readAll(t, resp)
	typ, code, _, _ := errorOf(t, body)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || typ != typeRateLimit || code != "rate_limit_exceeded" {
		t.Errorf("second request: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if rec := h.recs.next(t); rec.Status != 429 || rec.RequestHash != ([32]byte{}) {
		t.Errorf("refused record %+v", rec)
	}
	close(eng.release)
	if r := <-first; r.StatusCode != 200 {
		t.Errorf("first request: %d", r.StatusCode)
	} else {
		readAll(t, r)
	}
	h.recs.next(t)
	// The slot is free again.
	if resp := h.post(t, "/v1/completions", `{"model":"stories15M","prompt":"z"}`); resp.StatusCode != 200 {
		t.Errorf("third request: %d", resp.StatusCode)
	} else {
		readAll(t, resp)
	}
	h.recs.next(t)
}
