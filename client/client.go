package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// Defaults of the zero values of Client's tuning fields.
const (
	DefaultDialTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 15 * time.Second
	DefaultListTTL          = 10 * time.Second
	// DefaultMaxBodyBytes is the gateway's own limit (guest/gateway):
	// a larger request would be refused by every worker anyway.
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxAnswerBytes = 16 << 20
)

// Client lists, verifies and uses workers. Set its fields, then use it;
// do not change them afterwards (the verifier is built from Policy and Now
// at first use). It is safe for concurrent use. Close it to drop its idle
// connections.
type Client struct {
	// Registry lists the workers. Required.
	Registry *wire.Client
	// Policy decides which workers are accepted; see PolicyFromRegistry
	// and LoadPolicy.
	Policy Policy
	// Now is the clock certificates are checked at; nil means time.Now.
	Now func() time.Time
	// Log gets worker IDs, endpoints, statuses and errors, never prompts
	// or answers; nil means slog.Default().
	Log *slog.Logger

	// Dial connects to a worker's listed endpoint; nil means a
	// net.Dialer with DialTimeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout and HandshakeTimeout bound connecting and the RA-TLS
	// handshake (which includes verifying the quote); 0 means the
	// defaults. Generation itself is bounded by the request's context.
	DialTimeout, HandshakeTimeout time.Duration
	// ListTTL is how long Chat and the proxy reuse a verified worker list
	// before asking the registry again; 0 means DefaultListTTL, negative
	// means ask every time. Each connection is verified anyway.
	ListTTL time.Duration
	// MaxBodyBytes bounds the request bodies the proxy accepts (413 over
	// it); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxAnswerBytes bounds a non-streamed answer Chat reads, and one
	// event of a streamed one; 0 means DefaultMaxAnswerBytes.
	MaxAnswerBytes int64

	initOnce sync.Once
	ver      *ratls.Verifier

	mu         sync.Mutex
	transports map[string]*http.Transport // by worker ID and endpoint
	warned     map[string]bool            // simulated workers already logged

	listMu sync.Mutex // one registry fetch at a time
	list   []Checked
	listAt time.Time
}

func (c *Client) init() {
	c.initOnce.Do(func() {
		c.ver = c.Policy.verifier(c.now)
	})
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

func (c *Client) maxBody() int64 {
	if c.MaxBodyBytes > 0 {
		return c.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

func (c *Client) maxAnswer() int64 {
	if c.MaxAnswerBytes > 0 {
		return c.MaxAnswerBytes
	}
	return DefaultMaxAnswerBytes
}

// Close closes the idle connections to workers.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.transports {
		t.CloseIdleConnections()
	}
	c.transports = nil
}

// Workers lists the workers the registry publishes (those serving model,
// when it is not ""), each with this client's own verification of it. Only
// a failure to list is an error; a refused worker has Checked.Err.
func (c *Client) Workers(ctx context.Context, model string) ([]Checked, error) {
	if c.Registry == nil {
		return nil, fmt.Errorf("client: no registry")
	}
	c.init()
	infos, err := c.Registry.Workers(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("client: listing workers: %w", err)
	}
	out := make([]Checked, len(infos))
	for i := range infos {
		out[i] = c.check(infos[i], model)
		c.logChecked(&out[i])
	}
	return out, nil
}

// logChecked logs refusals at debug level, and each simulated worker once
// at warning level.
func (c *Client) logChecked(ck *Checked) {
	log := c.log()
	id := short(ck.Info.ID)
	if ck.Err != nil {
		log.Debug("worker refused", "worker", id, "endpoint", ck.Info.Endpoint, "err", ck.Err)
		return
	}
	if ck.Simulated() {
		c.mu.Lock()
		first := !c.warned[ck.Info.ID]
		if c.warned == nil {
			c.warned = map[string]bool{}
		}
		c.warned[ck.Info.ID] = true
		c.mu.Unlock()
		if first {
			log.Warn("SIMULATED attestation accepted: this worker's quotes are signed by a TEST key and prove nothing; development only",
				"worker", id, "endpoint", ck.Info.Endpoint)
		}
	}
}

// verified is the whole worker list, reused for ListTTL.
func (c *Client) verified(ctx context.Context) ([]Checked, error) {
	c.listMu.Lock()
	defer c.listMu.Unlock()
	ttl := c.ListTTL
	if ttl == 0 {
		ttl = DefaultListTTL
	}
	if now := c.now(); c.list != nil && ttl > 0 && now.Sub(c.listAt) < ttl && !now.Before(c.listAt) {
		return c.list, nil
	}
	list, err := c.Workers(ctx, "")
	if err != nil {
		return nil, err
	}
	c.list, c.listAt = list, c.now()
	return list, nil
}

// Refresh drops the cached worker list, so the next request lists again.
func (c *Client) Refresh() {
	c.listMu.Lock()
	c.list = nil
	c.listMu.Unlock()
}
