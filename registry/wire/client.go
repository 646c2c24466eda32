package wire

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
)

// maxResponse bounds a response the client reads.
const maxResponse = 64 << 20

// Client calls a registry's API. Errors the registry answers come back
// as *Error (errors.Is matches the status's sentinel, ErrNotFound...).
type Client struct {
	BaseURL string       // "https://registry.example:8443"
	HTTP    *http.Client // nil: http.DefaultClient
	Token   string       // admin bearer token, for the admin calls
	// Now stamps registrations and heartbeats; nil means time.Now (the
	// client's one read of the wall clock).
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// do sends in (JSON, when not nil) and decodes the answer into out (when
// not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" && strings.HasPrefix(path, "/v1/admin/") {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("registry: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &Error{Status: resp.StatusCode, Message: truncate(strings.TrimSpace(string(data)), 200)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("registry: %s %s: %w", method, path, err)
	}
	return nil
}

// Register registers (or renews) the worker whose RA-TLS certificate is
// der and whose key is key; reg.Certificate is set to der, and reg.At to
// the client's clock when it is 0.
func (c *Client) Register(ctx context.Context, der []byte, key ed25519.PrivateKey, reg Registration) (*WorkerInfo, error) {
	reg.Certificate = der
	if reg.At == 0 {
		reg.At = c.now().UnixMilli()
	}
	req, err := SignRegistration(reg, key)
	if err != nil {
		return nil, err
	}
	var out WorkerInfo
	return &out, c.do(ctx, http.MethodPost, "/v1/workers", req, &out)
}

// RegisterTLS is Register with the certificate and Ed25519 key of a
// tls.Certificate (as guest/ratls.NewCertificate makes it).
func (c *Client) RegisterTLS(ctx context.Context, cert tls.Certificate, reg Registration) (*WorkerInfo, error) {
	key, ok := cert.PrivateKey.(ed25519.PrivateKey)
	if !ok || len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("registry: RegisterTLS needs a certificate with an ed25519.PrivateKey, have %T", cert.PrivateKey)
	}
	return c.Register(ctx, cert.Certificate[0], key, reg)
}

// Heartbeat reports the worker of key alive; hb.At is set to the client's
// clock when it is 0.
func (c *Client) Heartbeat(ctx context.Context, key ed25519.PrivateKey, hb Heartbeat) (*HeartbeatResponse, error) {
	if hb.At == 0 {
		hb.At = c.now().UnixMilli()
	}
	req, err := SignHeartbeat(hb, key)
	if err != nil {
		return nil, err
	}
	var out HeartbeatResponse
	id := WorkerID(key.Public().(ed25519.PublicKey))
	return &out, c.do(ctx, http.MethodPost, "/v1/workers/"+id+"/heartbeat", req, &out)
}

// Workers lists the workers, those serving model when it is not "".
func (c *Client) Workers(ctx context.Context, model string) ([]WorkerInfo, error) {
	p := "/v1/workers"
	if model != "" {
		p += "?model=" + url.QueryEscape(model)
	}
	var out WorkersResponse
	return out.Workers, c.do(ctx, http.MethodGet, p, nil, &out)
}

// Worker is one worker.
func (c *Client) Worker(ctx context.Context, id string) (*WorkerInfo, error) {
	var out WorkerInfo
	return &out, c.do(ctx, http.MethodGet, "/v1/workers/"+url.PathEscape(id), nil, &out)
}

// SubmitReceipts posts a batch of the worker id's receipts.
func (c *Client) SubmitReceipts(ctx context.Context, id string, batch []receipt.Signed) (*ReceiptsResponse, error) {
	var out ReceiptsResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/workers/"+url.PathEscape(id)+"/receipts", ReceiptsRequest{Receipts: batch}, &out)
}

// Prices is the market.
func (c *Client) Prices(ctx context.Context) (*PricesResponse, error) {
	var out PricesResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/prices", nil, &out)
}

// Policy is what the registry admits.
func (c *Client) Policy(ctx context.Context) (*PolicyInfo, error) {
	var out PolicyInfo
	return &out, c.do(ctx, http.MethodGet, "/v1/policy", nil, &out)
}

// Healthz checks that the registry and its store answer.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

// Submitter submits one worker's receipts: a guest/receipt.Submitter.
type Submitter struct {
	Client *Client
	Worker string // worker ID
}

var _ receipt.Submitter = (*Submitter)(nil)

// Submitter is a receipt.Submitter for the worker of key pub.
func (c *Client) Submitter(pub ed25519.PublicKey) *Submitter {
	return &Submitter{Client: c, Worker: WorkerID(pub)}
}

// Submit implements receipt.Submitter: the registry acknowledges the
// batch's highest seq, also for a batch it already held.
func (s *Submitter) Submit(ctx context.Context, batch []receipt.Signed) (uint64, error) {
	r, err := s.Client.SubmitReceipts(ctx, s.Worker, batch)
	if err != nil {
		return 0, err
	}
	return r.AckedThrough, nil
}

// Admin calls (Client.Token).

// Allowlist lists the allowlisted image hashes.
func (c *Client) Allowlist(ctx context.Context) ([]AllowedImage, error) {
	var out AllowlistResponse
	return out.Images, c.do(ctx, http.MethodGet, "/v1/admin/allowlist", nil, &out)
}

// AllowImage allowlists an image hash (64 hex digits), or updates its note.
func (c *Client) AllowImage(ctx context.Context, hash, note string) (*AllowedImage, error) {
	var out AllowedImage
	return &out, c.do(ctx, http.MethodPut, "/v1/admin/allowlist/"+url.PathEscape(hash), AllowRequest{Note: note}, &out)
}

// DisallowImage removes an image hash from the allowlist.
func (c *Client) DisallowImage(ctx context.Context, hash string) error {
	return c.do(ctx, http.MethodDelete, "/v1/admin/allowlist/"+url.PathEscape(hash), nil, nil)
}

// SetPrice sets a model's price bounds (nanoton per 1M tokens); a priced
// model is an admitted model.
func (c *Client) SetPrice(ctx context.Context, model string, p SetPriceRequest) error {
	return c.do(ctx, http.MethodPut, "/v1/admin/prices/"+escapeModel(model), p, nil)
}

// escapeModel escapes each segment of a model name ("org/model" names are
// common); the route's wildcard takes the rest of the path.
func escapeModel(m string) string {
	parts := strings.Split(m, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Balances lists every worker's money.
func (c *Client) Balances(ctx context.Context) ([]Balance, error) {
	var out BalancesResponse
	return out.Balances, c.do(ctx, http.MethodGet, "/v1/admin/balances", nil, &out)
}

// Payouts lists the newest payout batches (limit 0: the server's default).
func (c *Client) Payouts(ctx context.Context, limit int) ([]Batch, error) {
	p := "/v1/admin/payouts"
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var out PayoutsResponse
	return out.Batches, c.do(ctx, http.MethodGet, p, nil, &out)
}

// RunPayouts runs the payout pipeline once and returns its report.
func (c *Client) RunPayouts(ctx context.Context) (json.RawMessage, error) {
	var out RunResponse
	return out.Result, c.do(ctx, http.MethodPost, "/v1/admin/payouts/run", nil, &out)
}

// truncate shortens a foreign answer quoted in an error.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
