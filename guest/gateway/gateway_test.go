package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// backends runs a test against both backends with the same front.
func backends(t *testing.T, o Options, test func(t *testing.T, h *harness, upstream bool)) {
	t.Run("builtin", func(t *testing.T) {
		o := o
		o.Engine = &fakeEngine{models: []engine.Model{{ID: "llama-3-8b", ContextLength: 8192}}, chunks: []string{"ok"}, finish: "stop"}
		test(t, newHarness(t, o), false)
	})
	t.Run("upstream", func(t *testing.T) {
		f := newFakeVLLM(t, nil)
		test(t, newUpstreamHarness(t, f, o), true)
	})
}

func TestFrontErrors(t *testing.T) {
	const chat = "/v1/chat/completions"
	big := `{"model":"llama-3-8b","prompt":"` + strings.Repeat("x", 5000) + `"}`
	for _, tc := range []struct {
		name        string
		method      string // default POST
		path        string // default chat
		ctype       string // default application/json; "-" for none
		body        string
		status      int
		code, param string
		builtinOnly bool
	}{
		{name: "GET a completion endpoint", method: "GET", status: 405, code: "method_not_allowed"},
		{name: "POST models", method: "POST", path: "/v1/models", status: 405, code: "method_not_allowed"},
		{name: "DELETE metrics", method: "DELETE", path: "/metrics", status: 405, code: "method_not_allowed"},
		{name: "unknown URL", path: "/v1/embeddings", body: `{}`, status: 404, code: "unknown_url"},
		{name: "text/plain", ctype: "text/plain", body: `{"model":"llama-3-8b"}`, status: 415, code: "unsupported_media_type"},
		{name: "form", ctype: "application/x-www-form-urlencoded", body: `a=b`, status: 415, code: "unsupported_media_type"},
		{name: "no content type", ctype: "-", body: `{"model":"llama-3-8b"}`, status: 415, code: "unsupported_media_type"},
		{name: "too large", body: big, status: 413, code: "request_too_large"},
		{name: "not JSON", body: `{"model":`, status: 400},
		{name: "not an object", body: `["llama-3-8b"]`, status: 400},
		{name: "empty", body: ``, status: 400},
		{name: "no model", body: `{"messages":[]}`, status: 400, param: "model"},
		{name: "model not a string", body: `{"model":7}`, status: 400, param: "model"},
		{name: "unknown model", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, status: 404, code: "model_not_found", param: "model"},
		{name: "model twice", body: `{"model":"llama-3-8b","model":"gpt-4o"}`, status: 400, param: "model"},
		{name: "model twice, escaped", body: `{"model":"llama-3-8b","\u006dodel":"gpt-4o"}`, status: 400, param: "model"},
		{name: "max_tokens 0", body: `{"model":"llama-3-8b","max_tokens":0}`, status: 400, param: "max_tokens"},
		{name: "max_tokens fraction", body: `{"model":"llama-3-8b","max_tokens":1.5}`, status: 400, param: "max_tokens"},
		{name: "max_tokens string", body: `{"model":"llama-3-8b","max_tokens":"9"}`, status: 400, param: "max_tokens"},
		{name: "max_tokens above the bound", body: `{"model":"llama-3-8b","max_tokens":101}`, status: 400, param: "max_tokens"},
		{name: "max_completion_tokens above the bound", body: `{"model":"llama-3-8b","max_completion_tokens":101}`, status: 400, param: "max_tokens"},
		{name: "max tokens disagree", body: `{"model":"llama-3-8b","max_tokens":5,"max_completion_tokens":6}`, status: 400, param: "max_completion_tokens"},
		{name: "stream not boolean", body: `{"model":"llama-3-8b","stream":"yes"}`, status: 400, param: "stream"},
		{name: "stream_options without stream", body: `{"model":"llama-3-8b","stream_options":{"include_usage":true}}`, status: 400, param: "stream_options"},
		{name: "include_usage not boolean", body: `{"model":"llama-3-8b","stream":true,"stream_options":{"include_usage":1}}`, status: 400, param: "stream_options"},
		{name: "no messages", body: `{"model":"llama-3-8b"}`, status: 400, param: "messages", builtinOnly: true},
		{name: "messages not an array", body: `{"model":"llama-3-8b","messages":"hi"}`, status: 400, param: "messages", builtinOnly: true},
		{name: "tool role", body: `{"model":"llama-3-8b","messages":[{"role":"tool","content":"x"}]}`, status: 400, code: "unsupported_parameter", param: "messages[0].role", builtinOnly: true},
		{name: "no role", body: `{"model":"llama-3-8b","messages":[{"content":"x"}]}`, status: 400, param: "messages[0].role", builtinOnly: true},
		{name: "image part", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:"}}]}]}`, status: 400, code: "unsupported_parameter", param: "messages[0].content[0].type", builtinOnly: true},
		{name: "null user content", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":null}]}`, status: 400, param: "messages[0].content", builtinOnly: true},
		{name: "temperature 3", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"temperature":3}`, status: 400, param: "temperature", builtinOnly: true},
		{name: "temperature string", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"temperature":"hot"}`, status: 400, param: "temperature", builtinOnly: true},
		{name: "n 2", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"n":2}`, status: 400, code: "unsupported_parameter", param: "n", builtinOnly: true},
		{name: "tools", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}`, status: 400, code: "unsupported_parameter", param: "tools", builtinOnly: true},
		{name: "logprobs", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"logprobs":true}`, status: 400, code: "unsupported_parameter", param: "logprobs", builtinOnly: true},
		{name: "five stops", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}`, status: 400, param: "stop", builtinOnly: true},
		{name: "penalty", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"presence_penalty":0.5}`, status: 400, code: "unsupported_parameter", param: "presence_penalty", builtinOnly: true},
		{name: "JSON mode", body: `{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`, status: 400, code: "unsupported_parameter", param: "response_format", builtinOnly: true},
		{name: "no prompt", path: "/v1/completions", body: `{"model":"llama-3-8b"}`, status: 400, param: "prompt", builtinOnly: true},
		{name: "token prompt", path: "/v1/completions", body: `{"model":"llama-3-8b","prompt":[1,2,3]}`, status: 400, code: "unsupported_parameter", param: "prompt", builtinOnly: true},
		{name: "echo", path: "/v1/completions", body: `{"model":"llama-3-8b","prompt":"x","echo":true}`, status: 400, code: "unsupported_parameter", param: "echo", builtinOnly: true},
	} {
		backends(t, Options{MaxBodyBytes: 4096, MaxTokens: 100}, func(t *testing.T, h *harness, upstream bool) {
			if upstream && tc.builtinOnly {
				return
			}
			t.Run(tc.name, func(t *testing.T) {
				method, path, ctype := tc.method, tc.path, tc.ctype
				if method == "" {
					method = "POST"
				}
				if path == "" {
					path = chat
				}
				if ctype == "" {
					ctype = "application/json"
				}
				req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(tc.body))
				if ctype != "-" {
					req.Header.Set("Content-Type", ctype)
				}
				resp, err := h.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body := readAll(t, resp)
				typ, code, param, msg := errorOf(t, body)
				if resp.StatusCode != tc.status || code != tc.code || param != tc.param || typ != typeInvalidRequest || msg == "" {
					t.Errorf("status %d body %s; want %d code %q param %q", resp.StatusCode, body, tc.status, tc.code, tc.param)
				}
				if resp.StatusCode == 405 && resp.Header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
				if strings.Contains(string(body), "gpt-4o") {
					t.Errorf("client input echoed: %s", body)
				}
				if path == chat || path == "/v1/completions" {
					rec := h.recs.next(t)
					if rec.Status != tc.status || rec.Usage != (engine.Usage{}) || rec.Model != "" && tc.status == 404 {
						t.Errorf("record %+v", rec)
					}
				}
			})
		})
	}
}

func TestModelsEndpoint(t *testing.T) {
	backends(t, Options{}, func(t *testing.T, h *harness, upstream bool) {
		resp := h.get(t, "/v1/models")
		body := readAll(t, resp)
		want := `{"object":"list","data":[{"id":"llama-3-8b","object":"model","created":1793613601,"owned_by":"cocoon","max_model_len":8192}]}`
		if upstream {
			want = strings.Replace(want, "cocoon", "vllm", 1)
		}
		if resp.StatusCode != 200 || string(body) != want || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("status %d body\n%s\nwant\n%s", resp.StatusCode, body, want)
		}
	})
}

func TestHealthz(t *testing.T) {
	backends(t, Options{}, func(t *testing.T, h *harness, upstream bool) {
		resp := h.get(t, "/healthz")
		if body := readAll(t, resp); resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
			t.Errorf("status %d body %s", resp.StatusCode, body)
		}
	})
	f := newFakeVLLM(t, func(f *fakeVLLM) { f.health = 503 })
	h := newUpstreamHarness(t, f, Options{})
	if resp := h.get(t, "/healthz"); resp.StatusCode != 503 {
		t.Errorf("upstream unhealthy: %d", resp.StatusCode)
	}
	h = newHarness(t, Options{Engine: &fakeEngine{}})
	if resp := h.get(t, "/healthz"); resp.StatusCode != 503 {
		t.Errorf("engine without models: %d", resp.StatusCode)
	}
}

// The commitment is HMAC-SHA256 under the worker's key: the same body
// under another key commits differently, and nobody without the key can
// recompute it from a guessed body.
func TestRequestHash(t *testing.T) {
	body := `{"model":"stories15M","prompt":"yes"}`
	var hashes [][32]byte
	for _, key := range [][]byte{testKey, []byte(strings.Repeat("k", 32))} {
		h := newHarness(t, Options{Engine: newFakeEngine("x"), HashKey: key})
		readAll(t, h.post(t, "/v1/completions", body))
		hashes = append(hashes, h.recs.next(t).RequestHash)
	}
	if hashes[0] != mac(body) {
		t.Errorf("hash %x, want HMAC-SHA256 %x", hashes[0], mac(body))
	}
	if hashes[0] == hashes[1] || hashes[0] == sha256.Sum256([]byte(body)) {
		t.Error("the commitment does not depend on the key")
	}
	m := hmac.New(sha256.New, []byte(strings.Repeat("k", 32)))
	m.Write([]byte(body))
	if !hmac.Equal(hashes[1][:], m.Sum(nil)) {
		t.Error("second key's hash is not its HMAC")
	}
}

// Every completion request, served or refused, gets exactly one Record.
func TestOneRecordPerRequest(t *testing.T) {
	h := newHarness(t, Options{Engine: newFakeEngine("x")})
	for _, body := range []string{`{"model":"stories15M","prompt":"x"}`, `{"model":"nope","prompt":"x"}`, `{`} {
		readAll(t, h.post(t, "/v1/completions", body))
	}
	readAll(t, h.get(t, "/v1/models"))
	readAll(t, h.get(t, "/metrics"))
	var statuses []int
	for range 3 {
		statuses = append(statuses, h.recs.next(t).Status)
	}
	select {
	case rec := <-h.recs.ch:
		t.Errorf("extra record %+v", rec)
	default:
	}
	if want := []int{200, 404, 400}; !equalInts(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestErrorBodyShape(t *testing.T) {
	b := invalid(ErrBadParam, "", "x %d", 1).body()
	if string(b) != `{"error":{"message":"x 1","type":"invalid_request_error","param":null,"code":null}}`+"\n" {
		t.Errorf("%s", b)
	}
	var v map[string]map[string]any
	if err := json.Unmarshal(modelNotFound().body(), &v); err != nil || v["error"]["code"] != "model_not_found" || v["error"]["param"] != "model" {
		t.Errorf("%v %v", v, err)
	}
}

func TestContentTypeParameters(t *testing.T) {
	h := newHarness(t, Options{Engine: newFakeEngine("x")})
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON"} {
		resp, err := h.srv.Client().Post(h.srv.URL+"/v1/completions", ct, strings.NewReader(`{"model":"stories15M","prompt":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		if readAll(t, resp); resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%q: status %d", ct, resp.StatusCode)
		}
		h.recs.next(t)
	}
}

// A chunked body has no Content-Length to refuse early: it is cut off at
// the limit as it is read.
func TestChunkedBodyLimit(t *testing.T) {
	h := newHarness(t, Options{Engine: newFakeEngine("x"), MaxBodyBytes: 64})
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"model":"stories15M","prompt":"x"}`, 200},
		{`{"model":"stories15M","prompt":"` + strings.Repeat("x", 64) + `"}`, 413},
	} {
		// A reader of unknown length makes the client send it chunked.
		req, _ := http.NewRequest("POST", h.srv.URL+"/v1/completions", io.MultiReader(strings.NewReader(tc.body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if readAll(t, resp); resp.StatusCode != tc.status || req.ContentLength != 0 {
			t.Errorf("%d bytes: status %d, want %d", len(tc.body), resp.StatusCode, tc.status)
		}
		if rec := h.recs.next(t); rec.Status != tc.status {
			t.Errorf("record %+v", rec)
		}
	}
}
