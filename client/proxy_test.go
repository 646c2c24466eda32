package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/client/clienttest"
)

// sdkRequest is a request as the OpenAI Node SDK (openai@4.104.0 on Node
// 20) sends it: its fixed headers, a bearer key, JSON both ways.
func sdkRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"Accept":                      "application/json",
		"User-Agent":                  "OpenAI/JS 4.104.0",
		"X-Stainless-Lang":            "js",
		"X-Stainless-Package-Version": "4.104.0",
		"X-Stainless-OS":              "Linux",
		"X-Stainless-Arch":            "x64",
		"X-Stainless-Runtime":         "node",
		"X-Stainless-Runtime-Version": "v20.20.2",
		"X-Stainless-Retry-Count":     "0",
		"X-Stainless-Timeout":         "600",
		"Authorization":               "Bearer unused",
	} {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// openAIError checks an OpenAI-shaped error answer and returns its code.
func openAIError(t *testing.T, resp *http.Response, b []byte, status int) string {
	t.Helper()
	var e struct {
		Error *struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if resp.StatusCode != status || json.Unmarshal(b, &e) != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, want %d with an OpenAI error: %s", resp.StatusCode, status, b)
	}
	return e.Error.Code
}

// TestProxy drives the proxy with requests shaped as the OpenAI Node
// SDK's: models, a whole chat completion, a streamed one (SSE ending in
// data: [DONE]), a legacy completion, and its own errors.
func TestProxy(t *testing.T) {
	n := clienttest.New(t)
	w := n.StartWorker(clienttest.WorkerOptions{Allow: true})
	n.Register(w, "", 1_000_000)
	c := tofu(t, n)
	c.MaxBodyBytes = 4 << 10
	defer c.Close()
	srv := httptest.NewServer(c.Proxy())
	defer srv.Close()
	base := srv.URL + "/v1"

	resp, b := do(t, sdkRequest(t, "GET", base+"/models", ""))
	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &models) != nil || models.Object != "list" || len(models.Data) != 1 ||
		models.Data[0].ID != clienttest.Model || models.Data[0].Object != "model" {
		t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, b)
	}
	if resp, b := do(t, sdkRequest(t, "GET", base+"/models/"+clienttest.Model, "")); resp.StatusCode != 200 || !strings.Contains(string(b), `"id":"cocoon-test"`) {
		t.Errorf("GET /v1/models/%s: %d %s", clienttest.Model, resp.StatusCode, b)
	}

	// Whole.
	resp, b = do(t, sdkRequest(t, "POST", base+"/chat/completions", clienttest.ChatBody("Once upon a time", 12, false)))
	var cc struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Role, Content string
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &cc) != nil || cc.Object != "chat.completion" || len(cc.Choices) != 1 ||
		cc.Choices[0].Message.Content == "" || cc.Usage.Prompt == 0 || cc.Usage.Completion == 0 {
		t.Fatalf("chat: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get(client.HeaderWorker) != w.ID || resp.Header.Get(client.HeaderAttempts) != "1" ||
		resp.Header.Get(client.HeaderSimulated) != "true" || resp.Header.Get(client.HeaderEvidence) != "sim" {
		t.Errorf("headers %v", resp.Header)
	}

	// Streamed, read as the SDK reads it: event by event as they come.
	req := sdkRequest(t, "POST", base+"/chat/completions", clienttest.ChatBody("Once upon a time", 12, true))
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != 200 || !strings.HasPrefix(sresp.Header.Get("Content-Type"), "text/event-stream") || sresp.Header.Get(client.HeaderWorker) != w.ID {
		t.Fatalf("stream: %d %v", sresp.StatusCode, sresp.Header)
	}
	var text strings.Builder
	var events []string
	sc := bufio.NewScanner(sresp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		events = append(events, data)
		if data == "[DONE]" {
			continue
		}
		var ch struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil || ch.Object != "chat.completion.chunk" {
			t.Fatalf("event %q: %v", data, err)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events %q, want chunks then [DONE]", events)
	}
	if text.String() != cc.Choices[0].Message.Content {
		t.Errorf("streamed %q, whole %q (temperature 0)", text.String(), cc.Choices[0].Message.Content)
	}

	// The legacy completions endpoint.
	legacy := `{"model":"cocoon-test","prompt":"Once upon a time","max_tokens":8,"temperature":0}`
	resp, b = do(t, sdkRequest(t, "POST", base+"/completions", legacy))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"text_completion"`) {
		t.Fatalf("completions: %d %s", resp.StatusCode, b)
	}

	// The worker's own refusals pass through as they are.
	resp, b = do(t, sdkRequest(t, "POST", base+"/chat/completions", `{"model":"cocoon-test","messages":[],"max_tokens":"x"}`))
	if code := openAIError(t, resp, b, 400); resp.Header.Get(client.HeaderWorker) != w.ID {
		t.Errorf("worker's 400 (%s) not relayed from the worker", code)
	}

	// The proxy's own errors.
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"not JSON", "POST", "/chat/completions", "application/json", `{"model":`, 400, "invalid_body"},
		{"an array", "POST", "/chat/completions", "application/json", `[1,2]`, 400, "invalid_body"},
		{"no model", "POST", "/chat/completions", "application/json", `{"messages":[]}`, 400, "invalid_body"},
		{"trailing data", "POST", "/chat/completions", "application/json", `{"model":"cocoon-test"} {}`, 400, "invalid_body"},
		{"text/plain", "POST", "/chat/completions", "text/plain", `{"model":"cocoon-test"}`, 415, "unsupported_media_type"},
		{"too large", "POST", "/chat/completions", "application/json", `{"model":"cocoon-test","x":"` + strings.Repeat("a", 5<<10) + `"}`, 413, "request_too_large"},
		{"unknown model", "POST", "/chat/completions", "application/json", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found"},
		{"GET a completion", "GET", "/chat/completions", "", "", 405, "method_not_allowed"},
		{"unknown path", "POST", "/embeddings", "application/json", `{"model":"cocoon-test"}`, 404, "unknown_url"},
		{"unknown model's entry", "GET", "/models/gpt-4o", "", "", 404, "model_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := sdkRequest(t, tc.method, base+tc.path, tc.body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, b := do(t, req)
			if code := openAIError(t, resp, b, tc.status); code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
		})
	}
}

// TestProxyNoVerifiedWorker: 503 with an OpenAI error when the only
// listed worker fails local verification, and when none is listed.
func TestProxyNoVerifiedWorker(t *testing.T) {
	n := clienttest.New(t)
	c := tofu(t, n)
	srv := httptest.NewServer(c.Proxy())
	defer srv.Close()
	body := clienttest.ChatBody("hi", 4, true)

	resp, b := do(t, sdkRequest(t, "POST", srv.URL+"/v1/chat/completions", body))
	if code := openAIError(t, resp, b, 503); code != "no_verified_worker" {
		t.Errorf("empty registry: code %q", code)
	}

	w := n.StartWorker(clienttest.WorkerOptions{Allow: true})
	n.Register(w, "", 1_000_000)
	n.Disallow(w.ImageHash)
	c2 := tofu(t, n) // the registry's policy now allowlists nothing
	srv2 := httptest.NewServer(c2.Proxy())
	defer srv2.Close()
	resp, b = do(t, sdkRequest(t, "POST", srv2.URL+"/v1/chat/completions", body))
	if code := openAIError(t, resp, b, 503); code != "no_verified_worker" || !strings.Contains(string(b), "no image hash is allowlisted") {
		t.Errorf("refused worker: code %q: %s", code, b)
	}
	if resp, b := do(t, sdkRequest(t, "GET", srv2.URL+"/v1/models", "")); resp.StatusCode != 200 || !strings.Contains(string(b), `"data":[]`) {
		t.Errorf("models with no verified worker: %d %s", resp.StatusCode, b)
	}
}

// TestProxyFailover: a dead first choice is skipped before any byte is
// relayed; the answer says which worker gave it after how many attempts.
func TestProxyFailover(t *testing.T) {
	n := clienttest.New(t)
	dead := n.StartWorker(clienttest.WorkerOptions{Name: "dead", Allow: true})
	live := n.StartWorker(clienttest.WorkerOptions{Name: "live"})
	n.Register(dead, clienttest.DeadEndpoint(t), 500_000)
	n.Register(live, "", 5_000_000)
	c := tofu(t, n)
	defer c.Close()
	srv := httptest.NewServer(c.Proxy())
	defer srv.Close()
	resp, b := do(t, sdkRequest(t, "POST", srv.URL+"/v1/chat/completions", clienttest.ChatBody("Once upon a time", 8, true)))
	if resp.StatusCode != 200 || resp.Header.Get(client.HeaderWorker) != live.ID || resp.Header.Get(client.HeaderAttempts) != "2" ||
		!strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Fatalf("%d %v\n%s", resp.StatusCode, resp.Header, b)
	}
}

// TestServeProxy: ServeProxy answers until its context ends.
func TestServeProxy(t *testing.T) {
	n := clienttest.New(t)
	c := tofu(t, n)
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ServeProxy(ctx, ln) }()
	resp, b := do(t, sdkRequest(t, "GET", "http://"+ln.Addr().String()+"/v1/models", ""))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"object":"list"`) {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeProxy: %v", err)
	}
}
