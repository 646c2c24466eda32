package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

var upstreamModel = engine.Model{ID: "llama-3-8b", ContextLength: 8192, OwnedBy: "vllm"}

func newUpstreamHarness(t *testing.T, f *fakeVLLM, o Options) *harness {
	o.Upstream = &Upstream{URL: f.srv.URL, Models: []engine.Model{upstreamModel}}
	return newHarness(t, o)
}

const chatBody = `{"model":"llama-3-8b","messages":[{"role":"user","content":"` + secretPrompt + `"}],"max_tokens":64}`

func TestUpstreamNonStream(t *testing.T) {
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		t.Run(path, func(t *testing.T) {
			f := newFakeVLLM(t, nil)
			h := newUpstreamHarness(t, f, Options{})
			body := chatBody
			if path == "/v1/completions" {
				body = `{"model":"llama-3-8b","prompt":"` + secretPrompt + `","n":2,"logprobs":3,"vendor_extension":{"a":1}}`
			}
			resp := h.post(t, path, body)
			got := readAll(t, resp)
			// The client gets the upstream's bytes, the upstream the
			// client's: nothing re-encoded.
			direct, err := http.Post(f.srv.URL+path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			want := readAll(t, direct)
			if resp.StatusCode != 200 || string(got) != string(want) {
				t.Errorf("status %d body\n%s\nwant\n%s", resp.StatusCode, got, want)
			}
			fwd, hd := f.request(0)
			if string(fwd) != body {
				t.Errorf("upstream got %s, want the client's body", fwd)
			}
			rec := h.recs.next(t)
			if hd.Get("X-Request-Id") != rec.ID || hd.Get("Authorization") != "" {
				t.Errorf("upstream headers %v", hd)
			}
			wantRec := Record{ID: rec.ID, Endpoint: path, Model: "llama-3-8b", Usage: engine.Usage{PromptTokens: 7, CompletionTokens: 2},
				Start: rec.Start, End: rec.End, Status: 200, RequestHash: mac(body)}
			if rec != wantRec {
				t.Errorf("record %+v, want %+v", rec, wantRec)
			}
			if resp.Header.Get("Content-Length") != "" && resp.ContentLength != int64(len(want)) {
				t.Errorf("Content-Length %d, body %d", resp.ContentLength, len(want))
			}
		})
	}
}

// streamOf reads a whole stream through the gateway and directly.
func TestUpstreamStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*fakeVLLM)
		body      string
		// forwarded is what the upstream must receive.
		forwarded string
		// clientSeesUsage: the usage chunk reaches the client.
		clientSeesUsage bool
	}{
		{
			name:      "client did not ask for usage",
			body:      `{"model":"llama-3-8b","stream":true,"messages":[{"role":"user","content":"` + secretPrompt + `"}]}`,
			forwarded: `{"stream_options":{"include_usage":true},"model":"llama-3-8b","stream":true,"messages":[{"role":"user","content":"` + secretPrompt + `"}]}`,
		},
		{
			name:            "client asked for usage",
			body:            `{"model":"llama-3-8b","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			forwarded:       `{"model":"llama-3-8b","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			clientSeesUsage: true,
		},
		{
			name:      "client said include_usage false, with vLLM's continuous stats",
			body:      `{"model":"llama-3-8b","stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true} ,"prompt":"x"}`,
			forwarded: `{"model":"llama-3-8b","stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":true} ,"prompt":"x"}`,
		},
		{
			name:      "stream_options null",
			body:      `{"model":"llama-3-8b","stream":true,"stream_options":null,"prompt":"x"}`,
			forwarded: `{"model":"llama-3-8b","stream":true,"stream_options":{"include_usage":true},"prompt":"x"}`,
		},
		{
			name:      "CRLF line endings",
			configure: func(f *fakeVLLM) { f.crlf = true },
			body:      `{"model":"llama-3-8b","stream":true,"prompt":"x"}`,
			forwarded: `{"stream_options":{"include_usage":true},"model":"llama-3-8b","stream":true,"prompt":"x"}`,
		},
		{
			name:            "llama.cpp: usage on the finish chunk is kept",
			configure:       func(f *fakeVLLM) { f.llamaCpp = true },
			body:            `{"model":"llama-3-8b","stream":true,"prompt":"x"}`,
			forwarded:       `{"stream_options":{"include_usage":true},"model":"llama-3-8b","stream":true,"prompt":"x"}`,
			clientSeesUsage: true,
		},
	} {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
			t.Run(tc.name+path, func(t *testing.T) {
				f := newFakeVLLM(t, tc.configure)
				h := newUpstreamHarness(t, f, Options{})
				resp := h.post(t, path, tc.body)
				got := string(readAll(t, resp))
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
					t.Fatalf("status %d %v", resp.StatusCode, resp.Header)
				}
				if string(f.lastBody()) != tc.forwarded {
					t.Errorf("forwarded\n%s\nwant\n%s", f.lastBody(), tc.forwarded)
				}
				// What the upstream sent for the forwarded body, less the
				// usage-only chunk unless the client asked for it.
				var in struct {
					StreamOptions struct {
						ContinuousUsageStats bool `json:"continuous_usage_stats"`
					} `json:"stream_options"`
				}
				json.Unmarshal([]byte(tc.forwarded), &in)
				events := f.events(path == "/v1/chat/completions", "llama-3-8b", true, in.StreamOptions.ContinuousUsageStats)
				var want strings.Builder
				for _, ev := range events {
					if strings.Contains(ev, `"choices":[],"usage"`) && !tc.clientSeesUsage {
						continue
					}
					want.WriteString(ev)
				}
				if got != want.String() {
					t.Errorf("client got\n%q\nwant\n%q", got, want.String())
				}
				rec := h.recs.next(t)
				if rec.Usage != (engine.Usage{PromptTokens: 7, CompletionTokens: 2}) || rec.Unaccounted || rec.Cancelled || rec.Status != 200 {
					t.Errorf("record %+v", rec)
				}
			})
		}
	}
}

func TestUpstreamUnaccounted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*fakeVLLM)
		body      string
	}{
		{"no usage, whole", func(f *fakeVLLM) { f.noUsage = true }, chatBody},
		{"no usage, stream", func(f *fakeVLLM) { f.noUsage = true }, `{"model":"llama-3-8b","stream":true,"prompt":"x"}`},
		{"total does not add up, whole", func(f *fakeVLLM) { f.badTotal = true }, chatBody},
		{"total does not add up, stream", func(f *fakeVLLM) { f.badTotal = true }, `{"model":"llama-3-8b","stream":true,"prompt":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeVLLM(t, tc.configure)
			h := newUpstreamHarness(t, f, Options{})
			resp := h.post(t, "/v1/chat/completions", tc.body)
			readAll(t, resp)
			rec := h.recs.next(t)
			if resp.StatusCode != 200 || !rec.Unaccounted || rec.Usage != (engine.Usage{}) {
				t.Errorf("status %d record %+v", resp.StatusCode, rec)
			}
			if !strings.Contains(h.logs.String(), "unaccounted") {
				t.Errorf("no warning logged:\n%s", h.logs.String())
			}
		})
	}
}

func TestUpstreamErrorPassesThrough(t *testing.T) {
	f := newFakeVLLM(t, func(f *fakeVLLM) { f.errStatus = 400 })
	h := newUpstreamHarness(t, f, Options{})
	resp := h.post(t, "/v1/chat/completions", chatBody)
	body := readAll(t, resp)
	// vLLM's error object, its numeric code included, as the upstream sent it.
	want := `{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"BadRequestError","param":null,"code":400}}`
	if resp.StatusCode != 400 || string(body) != want || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("status %d body %s", resp.StatusCode, body)
	}
	if rec := h.recs.next(t); rec.Status != 400 || rec.Unaccounted || rec.Usage != (engine.Usage{}) {
		t.Errorf("record %+v", rec)
	}
}

func TestUpstreamDown(t *testing.T) {
	f := newFakeVLLM(t, nil)
	h := newUpstreamHarness(t, f, Options{})
	f.srv.Close()
	resp := h.post(t, "/v1/chat/completions", chatBody)
	body := readAll(t, resp)
	typ, code, _, _ := errorOf(t, body)
	if resp.StatusCode != 502 || typ != typeServer || code != "upstream_unavailable" {
		t.Errorf("status %d body %s", resp.StatusCode, body)
	}
	if rec := h.recs.next(t); rec.Status != 502 || rec.Unaccounted {
		t.Errorf("record %+v", rec)
	}
	if resp := h.get(t, "/healthz"); resp.StatusCode != 503 {
		t.Errorf("healthz with the upstream down: %d", resp.StatusCode)
	}
}

// Requests the gateway refuses never reach the upstream.
func TestUpstreamNotAskedForRefusedRequests(t *testing.T) {
	f := newFakeVLLM(t, nil)
	h := newUpstreamHarness(t, f, Options{})
	for _, body := range []string{
		`{"model":"gpt-4o","messages":[]}`,
		`{"model":"llama-3-8b","max_tokens":8193}`,
		`{"model":"llama-3-8b","stream_options":{"include_usage":true}}`,
		`{"model":"llama-3-8b","model":"gpt-4o"}`,
		`[1]`,
	} {
		resp := h.post(t, "/v1/chat/completions", body)
		if readAll(t, resp); resp.StatusCode/100 != 4 {
			t.Errorf("%s: status %d", body, resp.StatusCode)
		}
		h.recs.next(t)
	}
	if n := f.requests(); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
}

// The client leaves mid-stream: the upstream's request context ends (so
// vLLM aborts the generation), and the record says so.
func TestUpstreamClientDisconnect(t *testing.T) {
	f := newFakeVLLM(t, func(f *fakeVLLM) { f.block = true })
	h := newUpstreamHarness(t, f, Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/completions", strings.NewReader(`{"model":"llama-3-8b","stream":true,"prompt":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for n := 0; n < 2; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			n++
		}
	}
	<-f.blocked
	resp.Body.Close()
	<-f.gone
	rec := h.recs.next(t)
	if !rec.Cancelled || !rec.Unaccounted || rec.Status != 200 {
		t.Errorf("record %+v", rec)
	}
}

// With vLLM's continuous usage stats every chunk carries the counts so
// far, so even a cancelled stream is accounted.
func TestUpstreamCancelledWithContinuousUsage(t *testing.T) {
	f := newFakeVLLM(t, func(f *fakeVLLM) { f.block = true; f.tokens = []string{"a", "b", "c"} })
	h := newUpstreamHarness(t, f, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/v1/completions",
		strings.NewReader(`{"model":"llama-3-8b","stream":true,"stream_options":{"continuous_usage_stats":true},"prompt":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-f.blocked
	br := bufio.NewReader(resp.Body)
	for n := 0; n < 2; {
		line, _ := br.ReadString('\n')
		if strings.HasPrefix(line, "data: ") {
			n++
		}
	}
	cancel()
	resp.Body.Close()
	<-f.gone
	rec := h.recs.next(t)
	if !rec.Cancelled || rec.Unaccounted || rec.Usage != (engine.Usage{PromptTokens: 7, CompletionTokens: 2}) {
		t.Errorf("record %+v", rec)
	}
}

// A body too big to hold is still relayed, unaccounted.
func TestUpstreamResponseTooLargeToAccount(t *testing.T) {
	f := newFakeVLLM(t, func(f *fakeVLLM) { f.tokens = []string{strings.Repeat("x", 4000)} })
	o := Options{Upstream: &Upstream{URL: f.srv.URL, Models: []engine.Model{upstreamModel}, MaxResponseBytes: 1000}}
	h := newHarness(t, o)
	resp := h.post(t, "/v1/completions", `{"model":"llama-3-8b","prompt":"x"}`)
	body := readAll(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(string(body), strings.Repeat("x", 4000)) || !json.Valid(body) {
		t.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	if rec := h.recs.next(t); !rec.Unaccounted {
		t.Errorf("record %+v", rec)
	}
}

func TestUpstreamEventTooLarge(t *testing.T) {
	f := newFakeVLLM(t, func(f *fakeVLLM) { f.tokens = []string{"a", strings.Repeat("x", 100<<10)} })
	o := Options{Upstream: &Upstream{URL: f.srv.URL, Models: []engine.Model{upstreamModel}, MaxEventBytes: 64 << 10}}
	h := newHarness(t, o)
	readAll(t, h.post(t, "/v1/completions", `{"model":"llama-3-8b","prompt":"x","stream":true}`))
	if rec := h.recs.next(t); !rec.Unaccounted || rec.Cancelled {
		t.Errorf("record %+v", rec)
	}
	if !strings.Contains(h.logs.String(), ErrEventTooLarge.Error()) {
		t.Errorf("log:\n%s", h.logs.String())
	}
}

func TestUpstreamConfig(t *testing.T) {
	rec := RecorderFunc(func(Record) {})
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"neither backend", Options{Recorder: rec, HashKey: testKey}},
		{"both backends", Options{Engine: newFakeEngine(), Upstream: &Upstream{URL: "http://127.0.0.1:8000", Models: []engine.Model{upstreamModel}}, Recorder: rec, HashKey: testKey}},
		{"no recorder", Options{Engine: newFakeEngine(), HashKey: testKey}},
		{"short key", Options{Engine: newFakeEngine(), Recorder: rec, HashKey: testKey[:31]}},
		{"negative max tokens", Options{Engine: newFakeEngine(), Recorder: rec, HashKey: testKey, MaxTokens: -1}},
		{"bad URL", Options{Upstream: &Upstream{URL: "127.0.0.1:8000", Models: []engine.Model{upstreamModel}}, Recorder: rec, HashKey: testKey}},
		{"URL with query", Options{Upstream: &Upstream{URL: "http://127.0.0.1:8000/?a=b", Models: []engine.Model{upstreamModel}}, Recorder: rec, HashKey: testKey}},
		{"no models", Options{Upstream: &Upstream{URL: "http://127.0.0.1:8000"}, Recorder: rec, HashKey: testKey}},
		{"repeated model", Options{Upstream: &Upstream{URL: "http://127.0.0.1:8000", Models: []engine.Model{upstreamModel, upstreamModel}}, Recorder: rec, HashKey: testKey}},
	} {
		if _, err := New(tc.o); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", tc.name, err)
		}
	}
}

func TestFetchModels(t *testing.T) {
	f := newFakeVLLM(t, nil)
	models, err := FetchModels(context.Background(), nil, f.srv.URL+"/")
	want := []engine.Model{{ID: "llama-3-8b", ContextLength: 8192, OwnedBy: "vllm"}}
	if err != nil || !reflect.DeepEqual(models, want) {
		t.Errorf("FetchModels = %+v, %v; want %+v", models, err, want)
	}
	f.srv.Close()
	if _, err := FetchModels(context.Background(), nil, f.srv.URL); !errors.Is(err, ErrUpstream) {
		t.Errorf("upstream down: err = %v", err)
	}
}

func TestParseModelList(t *testing.T) {
	good := map[string][]engine.Model{
		// llama.cpp server: no max_model_len.
		`{"object":"list","data":[{"id":"qwen2.5-7b-q4.gguf","object":"model","created":1,"owned_by":"llamacpp","meta":{"n_ctx_train":32768}}]}`: {{ID: "qwen2.5-7b-q4.gguf", OwnedBy: "llamacpp"}},
		// SGLang.
		`{"object":"list","data":[{"id":"a","object":"model","owned_by":"sglang","root":"a","max_model_len":4096},{"id":"b","max_model_len":null}]}`: {{ID: "a", OwnedBy: "sglang", ContextLength: 4096}, {ID: "b"}},
	}
	for in, want := range good {
		if got, err := parseModelList([]byte(in)); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		``, `[]`, `{"data":[{"id":"a"}]}`, `{"object":"model","data":[{"id":"a"}]}`,
		`{"object":"list","data":[]}`, `{"object":"list","data":[{"owned_by":"x"}]}`,
		`{"object":"list","data":[{"id":""}]}`, `{"object":"list","data":[{"id":"a"},{"id":"a"}]}`,
		`{"object":"list","data":[{"id":"a","max_model_len":-1}]}`, `{"object":"list","data":[{"id":"a","max_model_len":1e12}]}`,
		`{"object":"list","data":[{"id":7}]}`,
	} {
		if _, err := parseModelList([]byte(in)); !errors.Is(err, ErrModelList) {
			t.Errorf("%s: err = %v, want ErrModelList", in, err)
		}
	}
}

func FuzzModelList(f *testing.F) {
	f.Add([]byte(`{"object":"list","data":[{"id":"llama-3-8b","object":"model","owned_by":"vllm","max_model_len":8192}]}`))
	f.Add([]byte(`{"object":"list","data":[{"id":"a"},{"id":"b","max_model_len":null}]}`))
	f.Add([]byte(`{"object":"list","data":[{"id":"a"},{"id":"a"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		models, err := parseModelList(in)
		if err != nil {
			if !errors.Is(err, ErrModelList) {
				t.Fatalf("err %v is not ErrModelList", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range models {
			if m.ID == "" || seen[m.ID] || m.ContextLength < 0 {
				t.Fatalf("bad model %+v in %+v", m, models)
			}
			seen[m.ID] = true
		}
	})
}

// The upstream dies mid-stream: the client's stream ends without [DONE],
// the record is neither cancelled nor accounted, and a warning says why.
func TestUpstreamBreaksOffMidStream(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // net/http drops the connection
	}))
	defer up.Close()
	h := newHarness(t, Options{Upstream: &Upstream{URL: up.URL, Models: []engine.Model{upstreamModel}}})
	got := readAll(t, h.post(t, "/v1/completions", `{"model":"llama-3-8b","prompt":"x","stream":true}`))
	if string(got) != "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n" {
		t.Errorf("client got %q", got)
	}
	rec := h.recs.next(t)
	if rec.Cancelled || !rec.Unaccounted || rec.Status != 200 {
		t.Errorf("record %+v", rec)
	}
	if !strings.Contains(h.logs.String(), "upstream stream failed") {
		t.Errorf("log:\n%s", h.logs.String())
	}
}
