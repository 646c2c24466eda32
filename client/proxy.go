package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers the proxy adds to answers it relays.
const (
	HeaderWorker    = "X-Cocoon-Worker"    // the worker's ID
	HeaderAttempts  = "X-Cocoon-Attempts"  // workers tried (failover)
	HeaderEvidence  = "X-Cocoon-Evidence"  // the verified evidence kind: tdx, vtpm, sim
	HeaderSimulated = "X-Cocoon-Simulated" // "true" when the evidence is simulated
)

// Proxy is a local OpenAI-compatible endpoint (point an SDK's base URL at
// its /v1):
//
//	GET  /v1/models             the models verified workers offer
//	GET  /v1/models/{model}
//	POST /v1/chat/completions   } forwarded unchanged, streamed or not, to
//	POST /v1/completions        } a verified worker over RA-TLS
//
// The request body is forwarded byte for byte; of the request headers
// only Content-Type and Accept are, so an API key the SDK sends (it
// needs one, any string) and its telemetry headers stay here. Requests
// must be application/json, which also keeps a web page's "simple"
// cross-site POSTs from spending the user's money through it. The answer
// is relayed as it arrives, flushed after every read, with the worker's
// status and headers plus X-Cocoon-Worker, X-Cocoon-Attempts,
// X-Cocoon-Evidence and, for simulated evidence, X-Cocoon-Simulated.
// Failover is the package's rule: only before the answer's headers were
// relayed. Errors of its own are OpenAI's {"error":{"message","type",
// "code"}}: 400 for a body that is not a JSON object with a model, 413
// over MaxBodyBytes, 415 for another media type, 404 for a model no listed
// worker offers, 503 when no verified worker offers it, 502 when the
// registry cannot be reached or every worker failed.
//
// Anyone who can reach it can spend the user's money: serve it on loopback.
func (c *Client) Proxy() http.Handler {
	return http.HandlerFunc(c.serveProxy)
}

func (c *Client) serveProxy(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/v1/chat/completions" || p == "/v1/completions":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", r.Method+" "+p+": use POST")
			return
		}
		c.forward(w, r)
	case p == "/v1/models" || strings.HasPrefix(p, "/v1/models/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", r.Method+" "+p+": use GET")
			return
		}
		c.models(w, r, strings.TrimPrefix(strings.TrimPrefix(p, "/v1/models"), "/"))
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "unknown URL "+p+": this proxy serves /v1/models, /v1/chat/completions and /v1/completions")
	}
}

// writeError writes OpenAI's error object.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, code
	b, _ := json.Marshal(e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (c *Client) models(w http.ResponseWriter, r *http.Request, one string) {
	list, err := c.verified(r.Context())
	if err != nil {
		c.log().Warn("proxy: registry unreachable", "err", err)
		writeError(w, http.StatusBadGateway, "server_error", "registry_unavailable", err.Error())
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	data := []model{}
	for _, m := range Models(list) {
		if one == "" || m == one {
			data = append(data, model{ID: m, Object: "model", OwnedBy: "cocoon"})
		}
	}
	var v any = map[string]any{"object": "list", "data": data}
	if one != "" {
		if len(data) == 0 {
			writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("no verified worker offers model %q", one))
			return
		}
		v = data[0]
	}
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// forward relays a completion request to a verified worker.
func (c *Client) forward(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.maxBody()))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", fmt.Sprintf("the request body is over %d bytes", tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "bad_body", "reading the request body: "+err.Error())
		return
	}
	model, err := requestModel(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_body", err.Error())
		return
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "application/json"
	}
	var answered bool
	var status, tried int
	var worker string
	_, err = c.failover(ctx, model, func(wk *Checked) (bool, error) {
		tried++
		resp, err := c.send(ctx, wk, r.URL.Path, body, accept)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if retryableStatus(resp.StatusCode) {
			return false, readAPIError(resp, wk.Info.ID)
		}
		h := w.Header()
		for k, vs := range resp.Header {
			if !hopByHop[http.CanonicalHeaderKey(k)] {
				h[k] = vs
			}
		}
		h.Set(HeaderWorker, wk.Info.ID)
		h.Set(HeaderAttempts, strconv.Itoa(tried))
		h.Set(HeaderEvidence, string(wk.Kind()))
		if wk.Simulated() {
			h.Set(HeaderSimulated, "true")
		}
		w.WriteHeader(resp.StatusCode)
		answered, status, worker = true, resp.StatusCode, wk.Info.ID
		return true, relay(w, resp.Body)
	})
	log := c.log().With("path", r.URL.Path, "model", model, "attempts", tried, "ms", time.Since(start).Milliseconds())
	switch {
	case answered && err != nil:
		log.Warn("proxy: the answer broke off", "worker", short(worker), "status", status, "err", err)
	case answered:
		log.Info("proxy: answered", "worker", short(worker), "status", status)
	case ctx.Err() != nil:
		log.Info("proxy: the client left", "err", ctx.Err())
	case errors.Is(err, ErrNoWorker):
		log.Warn("proxy: no verified worker", "err", err)
		if c.unknownModel(ctx, model) {
			writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("no listed worker offers model %q", model))
			return
		}
		writeError(w, http.StatusServiceUnavailable, "server_error", "no_verified_worker", err.Error())
	case tried == 0:
		log.Warn("proxy: registry unreachable", "err", err)
		writeError(w, http.StatusBadGateway, "server_error", "registry_unavailable", err.Error())
	default:
		log.Warn("proxy: every verified worker failed", "err", err)
		writeError(w, http.StatusBadGateway, "server_error", "workers_failed", err.Error())
	}
}

// unknownModel: some worker is verified, yet no listed worker, verified
// or not, offers model (OpenAI's 404 model_not_found, rather than 503).
func (c *Client) unknownModel(ctx context.Context, model string) bool {
	list, err := c.verified(ctx)
	if err != nil {
		return false
	}
	anyVerified := false
	for i := range list {
		if list[i].Offers(model) {
			return false
		}
		anyVerified = anyVerified || list[i].Verified()
	}
	return anyVerified
}

// requestModel reads "model" of a JSON object; the body is otherwise left
// to the worker.
func requestModel(body []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	var obj map[string]json.RawMessage
	if err := d.Decode(&obj); err != nil || obj == nil {
		return "", fmt.Errorf("the body must be a JSON object: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return "", errors.New("the body must be one JSON object, with nothing after it")
	}
	var model string
	if err := json.Unmarshal(obj["model"], &model); err != nil || model == "" {
		return "", errors.New(`"model" must be a non-empty string`)
	}
	return model, nil
}

// send posts body to the worker and returns its answer, whatever the status.
func (c *Client) send(ctx context.Context, w *Checked, path string, body []byte, accept string) (*http.Response, error) {
	hc, err := c.HTTPClient(w)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, WorkerURL(w, path), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: worker %s: %w", ErrWorker, short(w.Info.ID), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: worker %s at %s: %w", ErrWorker, short(w.Info.ID), w.Info.Endpoint, err)
	}
	return resp, nil
}

// relay copies the answer as it arrives, flushing after every read so
// that stream events are not held.
func relay(w http.ResponseWriter, r io.Reader) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrPartial, err)
		}
	}
}

// hopByHop are the headers of one connection, not relayed (RFC 9110
// §7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// ServeProxy serves Proxy on ln until ctx ends, then shuts down (waiting
// up to 5 s for answers in flight).
func (c *Client) ServeProxy(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: c.Proxy(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	return nil
}
