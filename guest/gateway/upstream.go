package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// Upstream is an OpenAI-compatible inference server (vLLM, SGLang,
// llama.cpp server) that the gateway fronts, on loopback inside the
// appliance.
type Upstream struct {
	// URL is the server's base, e.g. "http://127.0.0.1:8000"; the
	// gateway appends /v1/chat/completions, /v1/completions, /health.
	URL string
	// Models are the models it serves (FetchModels reads them from it).
	// Requests naming any other get 404 without reaching it.
	Models []engine.Model
	// Transport carries the requests; nil: NewTransport(MaxInFlight).
	Transport http.RoundTripper
	// MaxResponseBytes bounds the non-streaming response the gateway
	// holds to read its usage; a larger one is passed on but unaccounted.
	// 0: 64 MiB.
	MaxResponseBytes int
	// MaxEventBytes bounds one streamed event. 0: DefaultMaxEventBytes.
	MaxEventBytes int
}

// NewTransport is a Transport tuned for one upstream on loopback: as many
// idle connections kept as requests may be in flight (a new TCP connection
// per request would cost more than the whole proxy), no compression (the
// body is relayed as is and its usage read), no proxy from the
// environment.
func NewTransport(maxConns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		// Below uvicorn's default keep-alive of 5 s (vLLM, SGLang): a
		// connection the server is about to close is not reused, so a POST
		// is not lost to that race (it could not be retried safely).
		IdleConnTimeout:    4 * time.Second,
		DisableCompression: true,
		ReadBufferSize:     32 << 10,
		WriteBufferSize:    32 << 10,
	}
}

const (
	defaultMaxResponse = 64 << 20
	relayBufferSize    = 32 << 10
)

type upstream struct {
	base        string // no trailing slash
	served      []engine.Model
	rt          http.RoundTripper
	maxResponse int
	maxEvent    int
	log         *slog.Logger
	bufs        sync.Pool // *[]byte of relayBufferSize
	responses   sync.Pool // *bytes.Buffer
}

func newUpstream(o *Upstream, maxConns int, log *slog.Logger) (*upstream, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: upstream URL %q, want http://host:port[/prefix]", ErrConfig, o.URL)
	}
	if len(o.Models) == 0 {
		return nil, fmt.Errorf("%w: upstream serves no model", ErrConfig)
	}
	seen := map[string]bool{}
	for _, m := range o.Models {
		if m.ID == "" || seen[m.ID] {
			return nil, fmt.Errorf("%w: upstream model ID %q empty or repeated", ErrConfig, m.ID)
		}
		seen[m.ID] = true
	}
	up := &upstream{
		base: strings.TrimSuffix(o.URL, "/"), served: append([]engine.Model(nil), o.Models...), rt: o.Transport,
		maxResponse: o.MaxResponseBytes, maxEvent: o.MaxEventBytes, log: log,
	}
	if up.rt == nil {
		up.rt = NewTransport(maxConns)
	}
	if up.maxResponse <= 0 {
		up.maxResponse = defaultMaxResponse
	}
	if up.maxEvent <= 0 {
		up.maxEvent = DefaultMaxEventBytes
	}
	up.bufs.New = func() any { b := make([]byte, relayBufferSize); return &b }
	up.responses.New = func() any { return new(bytes.Buffer) }
	return up, nil
}

func (u *upstream) models() []engine.Model { return u.served }

func (u *upstream) close() {
	if t, ok := u.rt.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// healthy asks the upstream's /health, which vLLM, SGLang and llama.cpp
// all serve.
func (u *upstream) healthy(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := u.rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upstream /health: status %d", resp.StatusCode)
	}
	return nil
}

// serve forwards the request and relays the answer.
func (u *upstream) serve(x *exchange) {
	ctx := x.r.Context()
	body := forceIncludeUsage(x.body, &x.env)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.base+x.ep.path(), bytes.NewReader(body))
	if err != nil {
		x.fail(internalError(), 0)
		return
	}
	// A fresh header set: the client's own headers (its credentials
	// for this gateway, cookies) are not the upstream's business. vLLM
	// takes X-Request-Id as its request ID, which ties its logs to ours.
	req.Header = http.Header{
		"Content-Type": {"application/json"},
		"Accept":       {"application/json, text/event-stream"},
		"X-Request-Id": {x.rec.ID},
	}
	resp, err := u.rt.RoundTrip(req)
	if err != nil {
		if ctx.Err() != nil {
			x.rec.Cancelled = true
			return
		}
		u.log.Warn("gateway: upstream request failed", "id", x.rec.ID, "err", err)
		x.fail(upstreamError(), 0)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 && isEventStream(resp.Header.Get("Content-Type")) {
		u.relayStream(x, resp)
		return
	}
	u.relayBody(x, resp)
}

func upstreamError() *apiError {
	return &apiError{status: http.StatusBadGateway, typ: typeServer, code: "upstream_unavailable",
		msg: "the inference server did not answer; retry later", err: ErrUpstream}
}

func isEventStream(ct string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "text/event-stream")
}

// copyHeaders passes on the upstream's headers that mean something to the
// client; hop-by-hop and server-identifying ones stay behind.
func copyHeaders(dst, src http.Header) {
	for _, k := range []string{"Content-Type", "Cache-Control", "Retry-After"} {
		if v := src.Values(k); len(v) > 0 {
			dst[k] = v
		}
	}
}

// relayBody reads a whole (non-streaming) response, then sends it in one
// write with its exact length, and reads its usage.
func (u *upstream) relayBody(x *exchange, resp *http.Response) {
	ctx := x.r.Context()
	buf := u.responses.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 { // do not pin a rare huge buffer
			u.responses.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, int64(u.maxResponse)+1))
	if err != nil {
		if ctx.Err() != nil {
			x.rec.Cancelled = true
			return
		}
		u.log.Warn("gateway: reading the upstream response failed", "id", x.rec.ID, "status", resp.StatusCode, "err", err)
		x.fail(upstreamError(), 0)
		return
	}
	ok2xx := resp.StatusCode/100 == 2
	h := x.w.Header()
	copyHeaders(h, resp.Header)
	x.rec.Status = resp.StatusCode
	if buf.Len() > u.maxResponse {
		// Too big to hold: pass it on as it comes; its usage is out of reach.
		h.Del("Content-Length")
		x.w.WriteHeader(resp.StatusCode)
		_, err = x.w.Write(buf.Bytes())
		if err == nil {
			_, err = io.Copy(x.w, resp.Body)
		}
		switch {
		case ctx.Err() != nil:
			x.rec.Cancelled = true
		case err != nil: // either side; the client has a cut-off body
			u.log.Warn("gateway: relaying a large upstream response failed", "id", x.rec.ID, "err", err)
		}
		x.rec.Unaccounted = ok2xx
		return
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	x.w.WriteHeader(resp.StatusCode)
	if _, err := x.w.Write(buf.Bytes()); err != nil {
		x.rec.Cancelled = true
	}
	// Out to the client before the usage is read: that is bookkeeping
	// the client need not wait for.
	http.NewResponseController(x.w).Flush()
	if !ok2xx {
		return // an error answer: nothing generated, nothing to count
	}
	usage, found, _, err := usageOf(buf.Bytes())
	switch {
	case err != nil:
		u.log.Warn("gateway: upstream usage unusable", "id", x.rec.ID, "err", err)
		x.rec.Unaccounted = true
	case !found:
		x.rec.Unaccounted = true
	default:
		x.rec.Usage = usage
	}
}

// relayStream passes the upstream's events on as they come.
func (u *upstream) relayStream(x *exchange, resp *http.Response) {
	ctx := x.r.Context()
	h := x.w.Header()
	copyHeaders(h, resp.Header)
	h.Set("X-Accel-Buffering", "no")
	x.rec.Status = resp.StatusCode
	x.w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(x.w)
	bp := u.bufs.Get().(*[]byte)
	defer u.bufs.Put(bp)
	s := sseRelay{keepUsageChunk: x.env.includeUsage}
	// Headers out now: the client's SDK is waiting for them while the
	// upstream works on the first token.
	err := rc.Flush()
	if err == nil {
		err = s.run(resp.Body, x.w, rc.Flush, *bp, u.maxEvent)
	}
	var werr clientWriteError
	switch {
	case err == nil:
	case ctx.Err() != nil || errors.As(err, &werr):
		x.rec.Cancelled = true
	default:
		// The upstream broke off; the client sees the stream end without
		// [DONE]. Whatever usage came is still counted.
		u.log.Warn("gateway: upstream stream failed", "id", x.rec.ID, "err", err)
	}
	if s.badUsage != nil {
		u.log.Warn("gateway: upstream usage unusable", "id", x.rec.ID, "err", s.badUsage)
	}
	if s.gotUsage {
		x.rec.Usage = s.usage
	} else {
		x.rec.Unaccounted = true
	}
}
