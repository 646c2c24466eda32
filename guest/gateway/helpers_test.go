package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// stepClock moves one second per reading, so Start < End and latencies
// are known without sleeping.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// zeroRand makes request IDs predictable: all zero bits.
type zeroRand struct{}

func (zeroRand) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

var testKey = bytes.Repeat([]byte{7}, 32)

// secretPrompt is in every test prompt; no log line may ever contain it.
const secretPrompt = "MY-SECRET-PROMPT-4711"

// syncBuffer is a log sink for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// records collects Records.
type records struct {
	mu   sync.Mutex
	list []Record
	ch   chan Record
}

func newRecords() *records { return &records{ch: make(chan Record, 100)} }

func (r *records) Record(rec Record) {
	r.mu.Lock()
	r.list = append(r.list, rec)
	r.mu.Unlock()
	r.ch <- rec
}

// next waits for the next Record. The handler records before it returns,
// which may be after the client has read the whole response. A Record
// that never comes is a hang for go test's -timeout to report.
func (r *records) next(t *testing.T) Record {
	t.Helper()
	return <-r.ch
}

// fakeEngine emits fixed chunks and reports what it was asked.
type fakeEngine struct {
	models []engine.Model
	chunks []string
	usage  engine.Usage // CompletionTokens grows by one per emitted chunk
	finish string
	err    error // returned before any chunk
	midErr error // returned after the chunks
	// block: after the chunks, wait for the context to end (a client
	// that leaves), then close ctxDone.
	block   bool
	ctxDone chan struct{}
	started chan struct{} // if set, receives once Generate begins
	release chan struct{} // if set, Generate waits for it first

	mu   sync.Mutex
	last engine.Request
}

func (f *fakeEngine) Models() []engine.Model { return f.models }

func (f *fakeEngine) Generate(ctx context.Context, req *engine.Request, emit func(engine.Chunk) error) (engine.Result, error) {
	f.mu.Lock()
	f.last = *req
	f.mu.Unlock()
	if f.started != nil {
		f.started <- struct{}{}
	}
	res := engine.Result{Usage: f.usage, FinishReason: f.finish}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	if f.err != nil {
		return engine.Result{}, f.err
	}
	for _, c := range f.chunks {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := emit(engine.Chunk{Text: c}); err != nil {
			return res, err
		}
		res.Usage.CompletionTokens++
	}
	if f.midErr != nil {
		return res, f.midErr
	}
	if f.block {
		<-ctx.Done()
		close(f.ctxDone)
		return res, ctx.Err()
	}
	return res, nil
}

func (f *fakeEngine) request() engine.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

var testModel = engine.Model{ID: "stories15M", ContextLength: 256, OwnedBy: "cocoon"}

func newFakeEngine(chunks ...string) *fakeEngine {
	return &fakeEngine{
		models: []engine.Model{testModel},
		chunks: chunks,
		usage:  engine.Usage{PromptTokens: 11, CachedTokens: 3},
		finish: engine.FinishStop,
	}
}

type harness struct {
	g    *Gateway
	srv  *httptest.Server
	recs *records
	logs *syncBuffer
}

// newHarness serves a gateway over loopback HTTP. o's Recorder, HashKey,
// Clock, Rand and Logger are filled in when unset.
func newHarness(t *testing.T, o Options) *harness {
	t.Helper()
	h := &harness{recs: newRecords(), logs: &syncBuffer{}}
	if o.Recorder == nil {
		o.Recorder = h.recs
	}
	if o.HashKey == nil {
		o.HashKey = testKey
	}
	if o.Clock == nil {
		o.Clock = &stepClock{now: t0}
	}
	if o.Rand == nil {
		o.Rand = zeroRand{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	h.srv = httptest.NewServer(g)
	t.Cleanup(func() {
		h.srv.Close()
		g.Close()
		if strings.Contains(h.logs.String(), secretPrompt) {
			t.Errorf("a log line holds the prompt:\n%s", h.logs.String())
		}
	})
	return h
}

// post sends body as JSON to path.
func (h *harness) post(t *testing.T, path, body string) *http.Response {
	t.Helper()
	resp, err := h.srv.Client().Post(h.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mac(body string) [32]byte {
	m := hmac.New(sha256.New, testKey)
	m.Write([]byte(body))
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// sseEvents splits a stream into its events' data, strictly: every event
// is one "data: " line followed by an empty line.
func sseEvents(t *testing.T, stream []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(stream))
	sc.Buffer(nil, 1<<20)
	expectBlank := false
	for sc.Scan() {
		line := sc.Text()
		if expectBlank {
			if line != "" {
				t.Fatalf("line %q where an empty line should end the event", line)
			}
			expectBlank = false
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data line", line)
		}
		out = append(out, data)
		expectBlank = true
	}
	if expectBlank {
		t.Fatalf("stream ends inside an event: %q", stream)
	}
	return out
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return m
}

// errorOf reads an OpenAI error body; it fails the test on any other
// shape.
func errorOf(t *testing.T, body []byte) (typ, code, param, msg string) {
	t.Helper()
	var e struct {
		Error *struct {
			Message *string `json:"message"`
			Type    *string `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Message == nil || e.Error.Type == nil {
		t.Fatalf("not an OpenAI error body (%v): %s", err, body)
	}
	// param and code must be present, as null or a string.
	raw := decodeJSON(t, string(body))["error"].(map[string]any)
	for _, k := range []string{"param", "code"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("error body has no %q: %s", k, body)
		}
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return *e.Error.Type, deref(e.Error.Code), deref(e.Error.Param), *e.Error.Message
}

func (h *harness) get(t *testing.T, path string) *http.Response {
	t.Helper()
	resp, err := h.srv.Client().Get(h.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
