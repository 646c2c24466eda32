package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxInFlight  = 256
	DefaultRetryAfter   = time.Second
)

// statusClientGone is nginx's "client closed request": the status of a
// Record whose client left before any response was sent.
const statusClientGone = 499

// Clock is where the gateway reads the time (Record.Start/End, "created",
// the latency histogram); tests pass a fixed one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configures a Gateway. Exactly one of Engine and Upstream is set.
type Options struct {
	// Engine is the built-in backend: the gateway decodes requests and
	// writes OpenAI responses itself.
	Engine engine.Engine
	// Upstream is the proxy backend: an OpenAI-compatible server (vLLM,
	// SGLang, llama.cpp) on loopback.
	Upstream *Upstream

	// Recorder receives one Record per completion request. Required.
	Recorder Recorder
	// HashKey is the per-worker secret that RequestHash is keyed with,
	// at least MinHashKey bytes. Required.
	HashKey []byte

	Clock  Clock        // nil: the system clock
	Rand   io.Reader    // request IDs; nil: crypto/rand
	Logger *slog.Logger // nil: slog.Default()

	// MaxBodyBytes bounds a request body; larger ones get 413. 0:
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxTokens bounds max_tokens (and max_completion_tokens) below the
	// model's context length; 0: the context length alone. The built-in
	// engine also uses it for requests that give none. An upstream applies
	// its own default to those.
	MaxTokens int
	// MaxInFlight bounds the completion requests served at once; more get
	// 429 with Retry-After. 0: DefaultMaxInFlight.
	MaxInFlight int
	// RetryAfter is what 429 and 503 answers tell the client to wait. 0:
	// DefaultRetryAfter.
	RetryAfter time.Duration
}

// backend is what serves an admitted, envelope-checked request.
type backend interface {
	models() []engine.Model
	serve(x *exchange)
	healthy(ctx context.Context) error
	close()
}

// Gateway is the OpenAI-compatible HTTP API of the worker. It serves
//
//	POST /v1/chat/completions, POST /v1/completions (JSON or SSE)
//	GET  /v1/models
//	GET  /metrics  (Prometheus text format)
//	GET  /healthz
//
// Mount it behind the RA-TLS listener; the http.Server there should set
// ReadHeaderTimeout and IdleTimeout (generation time bounds the rest).
type Gateway struct {
	o       Options
	b       backend
	sem     chan struct{}
	hash    *hasher
	metrics *metrics
	created int64 // "created" of /v1/models entries: when the gateway started
}

// New checks o and returns a Gateway.
func New(o Options) (*Gateway, error) {
	if (o.Engine == nil) == (o.Upstream == nil) {
		return nil, fmt.Errorf("%w: need exactly one of Engine and Upstream", ErrConfig)
	}
	if o.Recorder == nil {
		return nil, fmt.Errorf("%w: no Recorder: requests would go unaccounted", ErrConfig)
	}
	if len(o.HashKey) < MinHashKey {
		return nil, fmt.Errorf("%w: HashKey is %d bytes, want at least %d", ErrConfig, len(o.HashKey), MinHashKey)
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.MaxTokens < 0 {
		return nil, fmt.Errorf("%w: MaxTokens %d < 0", ErrConfig, o.MaxTokens)
	}
	g := &Gateway{
		o: o, sem: make(chan struct{}, o.MaxInFlight), hash: newHasher(o.HashKey),
		metrics: newMetrics(), created: o.Clock.Now().Unix(),
	}
	if o.Engine != nil {
		g.b = &builtin{e: o.Engine, log: o.Logger}
	} else {
		u, err := newUpstream(o.Upstream, o.MaxInFlight, o.Logger)
		if err != nil {
			return nil, err
		}
		g.b = u
	}
	return g, nil
}

// Close releases the upstream's idle connections. In-flight requests are
// the http.Server's to drain (Shutdown).
func (g *Gateway) Close() { g.b.close() }

// ServeHTTP routes a request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/chat/completions":
		g.serveCompletion(w, r, chatEndpoint)
	case "/v1/completions":
		g.serveCompletion(w, r, textEndpoint)
	case "/v1/models":
		if allowGET(w, r) {
			g.serveModels(w)
		}
	case "/metrics":
		if allowGET(w, r) {
			w.Header().Set("Content-Type", metricsContentType)
			g.metrics.writeTo(w)
		}
	case "/healthz":
		if allowGET(w, r) {
			g.serveHealth(w, r)
		}
	default:
		// OpenAI's wording for a path it does not serve.
		writeError(w, &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, code: "unknown_url",
			msg: fmt.Sprintf("unknown request URL: %s %s", r.Method, r.URL.Path), err: ErrUnknownURL}, 0)
	}
}

func allowGET(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeError(w, methodNotAllowed(r.Method, "GET"), 0)
	return false
}

func methodNotAllowed(got, want string) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, typ: typeInvalidRequest, code: "method_not_allowed",
		msg: fmt.Sprintf("method %s is not allowed here, use %s", got, want), err: ErrMethod}
}

// exchange is one completion request on its way through the gateway.
type exchange struct {
	w     http.ResponseWriter
	r     *http.Request
	ep    endpoint
	body  []byte
	env   envelope
	model engine.Model
	rec   Record
	log   *slog.Logger

	retryAfter       time.Duration // for 503 answers
	maxTokensDefault int           // Options.MaxTokens: the built-in engine's bound when the request gives none
}

// fail answers with e, unless a response has been started.
func (x *exchange) fail(e *apiError, retryAfter time.Duration) {
	if x.rec.Status != 0 {
		return
	}
	x.rec.Status = e.status
	writeError(x.w, e, retryAfter)
}

func (g *Gateway) serveCompletion(w http.ResponseWriter, r *http.Request, ep endpoint) {
	x := &exchange{w: w, r: r, ep: ep, log: g.o.Logger, retryAfter: g.o.RetryAfter, maxTokensDefault: g.o.MaxTokens}
	x.rec.Start = g.o.Clock.Now()
	x.rec.Endpoint = ep.path()
	defer g.finish(x)
	id, err := g.newID(ep)
	if err != nil {
		x.log.Error("gateway: request ID", "err", err)
		x.fail(internalError(), 0)
		return
	}
	x.rec.ID = id
	w.Header().Set("X-Request-Id", id)

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		x.fail(methodNotAllowed(r.Method, "POST"), 0)
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		x.fail(&apiError{status: http.StatusUnsupportedMediaType, typ: typeInvalidRequest, code: "unsupported_media_type",
			msg: "the request body must be JSON, sent with Content-Type: application/json", err: ErrMediaType}, 0)
		return
	}
	select {
	case g.sem <- struct{}{}:
		defer func() { <-g.sem }()
	default:
		x.fail(&apiError{status: http.StatusTooManyRequests, typ: typeRateLimit, code: "rate_limit_exceeded",
			msg: fmt.Sprintf("this worker is serving its limit of %d requests; retry later", g.o.MaxInFlight), err: ErrBusy}, g.o.RetryAfter)
		return
	}
	g.metrics.inFlight.Add(1)
	defer g.metrics.inFlight.Add(-1)

	body, err := readBody(w, r, g.o.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			x.fail(&apiError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest, code: "request_too_large",
				msg: fmt.Sprintf("the request body is larger than %d bytes", g.o.MaxBodyBytes), err: ErrBodyTooLarge}, 0)
			return
		}
		// The client stopped sending: nobody to answer.
		x.rec.Cancelled = true
		return
	}
	x.body = body
	x.rec.RequestHash = g.hash.sum(body)
	w.Header().Set("X-Request-Hash", hex.EncodeToString(x.rec.RequestHash[:]))

	if x.env, err = parseEnvelope(body); err != nil {
		x.fail(asAPIError(err), 0)
		return
	}
	m, ok := g.lookup(x.env.model)
	if !ok {
		x.fail(modelNotFound(), 0)
		return
	}
	x.model, x.rec.Model = m, m.ID
	limit := g.o.MaxTokens
	if m.ContextLength > 0 && (limit == 0 || m.ContextLength < limit) {
		limit = m.ContextLength
	}
	if limit > 0 && x.env.maxTokens > limit {
		x.fail(invalid(ErrBadParam, "max_tokens", "'max_tokens' is %d, at most %d for this model", x.env.maxTokens, limit), 0)
		return
	}
	g.b.serve(x)
}

// finish records the request: metrics, logs, then the Recorder, after the
// response has been flushed so the client is not kept waiting on either.
func (g *Gateway) finish(x *exchange) {
	if x.rec.Status == 0 {
		x.rec.Status = statusClientGone
		x.rec.Cancelled = true
	}
	if !x.rec.Cancelled {
		http.NewResponseController(x.w).Flush() // client gone: nothing to do about it
	}
	x.rec.End = g.o.Clock.Now()
	g.metrics.observe(&x.rec)
	// Only IDs, names and counts: the request and response texts never
	// reach a log.
	if x.rec.Unaccounted {
		x.log.Warn("gateway: response served without token counts; request unaccounted",
			"id", x.rec.ID, "model", x.rec.Model, "status", x.rec.Status, "cancelled", x.rec.Cancelled)
	}
	if x.log.Enabled(context.Background(), slog.LevelDebug) {
		x.log.Debug("gateway: request", "id", x.rec.ID, "endpoint", x.rec.Endpoint, "model", x.rec.Model,
			"status", x.rec.Status, "cancelled", x.rec.Cancelled,
			"prompt_tokens", x.rec.Usage.PromptTokens, "completion_tokens", x.rec.Usage.CompletionTokens,
			"duration", x.rec.End.Sub(x.rec.Start))
	}
	g.o.Recorder.Record(x.rec)
}

func (g *Gateway) lookup(id string) (engine.Model, bool) {
	for _, m := range g.b.models() {
		if m.ID == id {
			return m, true
		}
	}
	return engine.Model{}, false
}

// newID is "chatcmpl-" or "cmpl-" (OpenAI's prefixes) and 128 random bits.
func (g *Gateway) newID(ep endpoint) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(g.o.Rand, b[:]); err != nil {
		return "", err
	}
	prefix := "cmpl-"
	if ep == chatEndpoint {
		prefix = "chatcmpl-"
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// isJSON accepts application/json with any parameters (charset=utf-8).
func isJSON(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// readBody reads the whole body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength >= 0 {
		// Exact size known: one allocation, no growth.
		b := make([]byte, r.ContentLength)
		// net/http stops the body at Content-Length: nothing can follow.
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(rd)
}

type modelEntry struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	Created     int64  `json:"created"`
	OwnedBy     string `json:"owned_by"`
	MaxModelLen int    `json:"max_model_len,omitempty"` // vLLM's member; clients size prompts by it
}

func (g *Gateway) serveModels(w http.ResponseWriter) {
	list := struct {
		Object string       `json:"object"`
		Data   []modelEntry `json:"data"`
	}{Object: "list", Data: []modelEntry{}}
	for _, m := range g.b.models() {
		owner := m.OwnedBy
		if owner == "" {
			owner = "cocoon"
		}
		list.Data = append(list.Data, modelEntry{ID: m.ID, Object: "model", Created: g.created, OwnedBy: owner, MaxModelLen: m.ContextLength})
	}
	writeJSON(w, http.StatusOK, list)
}

func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	if err := g.b.healthy(r.Context()); err != nil {
		g.o.Logger.Warn("gateway: unhealthy", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// writeJSON sends v as the whole response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		writeError(w, internalError(), 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
