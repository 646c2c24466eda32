package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// The proxy's cost: the same fake upstream on loopback, called directly
// and through the gateway, with the same tuned client transport.
// scripts/bench-gateway.sh runs both and prints the added p50 latency and
// the throughput ratio.
//
// Sub-benchmarks:
//   - nonstream, stream: one client, an upstream that answers at once
//     (a small chat completion; 16 token events plus the usage chunk).
//     Each request is timed; p50-us and p99-us are reported. This is the
//     gateway's added latency, nothing hides it.
//   - nonstream-parallel: 16 clients against the instant upstream; req/s.
//     Client, gateway and upstream share the machine's cores, so this is
//     the CPU cost of a second HTTP hop, not a GPU-bound server's.
//   - stream-gpu-parallel: a GPU-bound upstream as vLLM is one: at most
//     16 sequences decode at once (max_num_seqs), each emitting its 16
//     events 1 ms apart (a fast decode step); 32 clients keep it full;
//     req/s. The gateway passes if it does not keep the batch from
//     filling.

const benchEvents = 16

var benchRequest = []byte(`{"model":"llama-3-8b","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about the sea."}],"max_tokens":16,"temperature":0.7}`)

var benchStreamRequest = []byte(`{"model":"llama-3-8b","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about the sea."}],"max_tokens":16,"temperature":0.7}`)

var benchResponse = []byte(`{"id":"chatcmpl-b","object":"chat.completion","created":1718000000,"model":"llama-3-8b","choices":[{"index":0,"message":{"role":"assistant","reasoning_content":null,"content":"The sea keeps every secret the shore forgets, and returns a few with each tide.","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":31,"total_tokens":47,"completion_tokens":16,"prompt_tokens_details":null},"prompt_logprobs":null}`)

func benchStreamEvents() [][]byte {
	var evs [][]byte
	head := `data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":1718000000,"model":"llama-3-8b","choices":[`
	for i := range benchEvents {
		evs = append(evs, fmt.Appendf(nil, "%s{\"index\":0,\"delta\":{\"content\":\" tok%d\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", head, i))
	}
	evs = append(evs, []byte(head+`],"usage":{"prompt_tokens":31,"total_tokens":47,"completion_tokens":16}}`+"\n\n"))
	return append(evs, []byte("data: [DONE]\n\n"))
}

// benchUpstream is a fast vLLM stand-in: canned bytes, no parsing beyond
// reading the body.
func benchUpstream(b *testing.B, pace time.Duration) *httptest.Server {
	events := benchStreamEvents()
	slots := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if pace > 0 {
			slots <- struct{}{}
			defer func() { <-slots }()
		}
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(len(benchResponse)))
			w.Write(benchResponse)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		f := w.(http.Flusher)
		start := time.Now()
		for i, ev := range events {
			if pace > 0 {
				// Tokens are ready on the GPU's schedule, not later when
				// the CPU is busy: sleep to a deadline, not for a duration.
				time.Sleep(time.Until(start.Add(time.Duration(i+1) * pace)))
			}
			w.Write(ev)
			f.Flush()
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

type benchTarget struct {
	url    string
	client *http.Client
}

func newBenchTarget(b *testing.B, via bool, pace time.Duration) benchTarget {
	up := benchUpstream(b, pace)
	tr := NewTransport(256)
	b.Cleanup(tr.CloseIdleConnections)
	t := benchTarget{url: up.URL, client: &http.Client{Transport: tr}}
	if !via {
		return t
	}
	g, err := New(Options{
		Upstream: &Upstream{URL: up.URL, Models: []engine.Model{{ID: "llama-3-8b", ContextLength: 8192}}},
		Recorder: RecorderFunc(func(Record) {}),
		HashKey:  testKey,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(g)
	b.Cleanup(func() { gw.Close(); g.Close() })
	t.url = gw.URL
	return t
}

func (t benchTarget) do(b *testing.B, body []byte) {
	resp, err := t.client.Post(t.url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n == 0 {
		b.Fatalf("status %d, %d bytes, %v", resp.StatusCode, n, err)
	}
}

func BenchmarkUpstreamDirect(b *testing.B)     { benchProxy(b, false) }
func BenchmarkUpstreamViaGateway(b *testing.B) { benchProxy(b, true) }

func benchProxy(b *testing.B, via bool) {
	for _, mode := range []struct {
		name     string
		body     []byte
		pace     time.Duration
		parallel int // clients per GOMAXPROCS (2 here); 0: one client, timed per request
	}{
		{"nonstream", benchRequest, 0, 0},
		{"stream", benchStreamRequest, 0, 0},
		{"nonstream-parallel", benchRequest, 0, 8},
		{"stream-gpu-parallel", benchStreamRequest, time.Millisecond, 16},
	} {
		b.Run(mode.name, func(b *testing.B) {
			t := newBenchTarget(b, via, mode.pace)
			t.do(b, mode.body) // warm the connections
			b.ReportAllocs()
			if mode.parallel == 0 {
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for b.Loop() {
					s := time.Now()
					t.do(b, mode.body)
					lat = append(lat, time.Since(s))
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-us")
				return
			}
			start := time.Now()
			b.SetParallelism(mode.parallel)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t.do(b, mode.body)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// BenchmarkForceIncludeUsage is the one body edit on the proxy path.
func BenchmarkForceIncludeUsage(b *testing.B) {
	body := []byte(strings.Replace(string(benchStreamRequest), `"max_tokens":16`, `"max_tokens":16,"messages2":"`+strings.Repeat("x", 4000)+`"`, 1))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		env, err := parseEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		forceIncludeUsage(body, &env)
	}
}

// BenchmarkSSERelay is the per-event scan of a stream.
func BenchmarkSSERelay(b *testing.B) {
	var in bytes.Buffer
	for _, ev := range benchStreamEvents() {
		in.Write(ev)
	}
	buf := make([]byte, relayBufferSize)
	b.SetBytes(int64(in.Len()))
	for b.Loop() {
		s := sseRelay{}
		if err := s.run(bytes.NewReader(in.Bytes()), io.Discard, func() error { return nil }, buf, DefaultMaxEventBytes); err != nil || !s.gotUsage {
			b.Fatal(err)
		}
	}
}
