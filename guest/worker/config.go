// Package worker assembles the appliance's worker process: the attestation
// provider, the RA-TLS certificate (renewed before it expires), the
// inference gateway over the built-in engine or a loopback upstream, the
// receipts journal, the plain health endpoint the host may poll, and, when
// configured, its membership of a registry (registry.go: registration of
// every certificate, heartbeats, receipt delivery).
// cmd/cocoon-worker is its thin main.
package worker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/wire"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// ConfigSchema names the worker config format.
const ConfigSchema = "cocoon-worker/v1"

// DefaultConfigPath is where the image puts the worker's config.
const DefaultConfigPath = "/etc/cocoon/worker.json"

// ErrConfig is returned for an invalid worker config.
var ErrConfig = errors.New("worker: invalid config")

// Config is the worker's config file (strict JSON):
//
//	{"schema": "cocoon-worker/v1",
//	 "worker_id": "worker-1",
//	 "listen": ":8443",                       // RA-TLS: the OpenAI API
//	 "health_listen": ":8080",                // plain HTTP: /healthz only
//	 "attestation": "auto",                   // auto | tdx | vtpm | sim
//	 "static_config": "/run/cocoon/static.json",
//	 "model": {"id": "cocoon-test", "engine": "builtin",
//	           "checkpoint": "/usr/share/cocoon/models/test/model.bin",
//	           "tokenizer": "/usr/share/cocoon/models/test/tokenizer.bin"},
//	 "receipts_dir": "/run/cocoon/receipts",
//	 "max_in_flight": 8, "cert_validity_s": 3600,
//	 "sim_seed_file": "/run/cocoon/sim.seed",   // optional, simulator only
//	 "registry": {                              // optional: join a registry
//	   "url": "https://registry.example:8443",
//	   "payout": "EQD4FPq-PRDieyQKkizFTRtSDyucUIqrj0v_zXJmqaDp6_0t",
//	   "endpoint": "worker1.example:8443",      // what clients dial
//	   "price": 1000000,                        // nanoton per 1M tokens
//	   "min_payout": 0, "payout_every_s": 0,    // 0: the registry's defaults
//	   "heartbeat_s": 0,                        // 0: what the registry asks (else 30)
//	   "receipts_every_s": 0}}                  // 0: 10 s between receipt submissions
//
// "auto" attestation uses TDX, else the vTPM; only a guest whose measured
// static config names the "dev" policy falls back to the simulator.
//
// sim_seed_file holds the simulator's 32-byte seed as 64 hex digits: with
// it the simulator's root, which a registry pins (api.Server.SimRoot), is
// the same at every start. It is read only when the provider is the
// simulator, so it may stay in a config that also runs on hardware.
//
// With "registry" the worker registers its RA-TLS certificate, sends
// heartbeats and delivers its receipts (Worker.Serve). The endpoint may be
// left out only when listen names a host clients can dial (not ":8443",
// not "0.0.0.0:8443"); the URL may carry a path but no user info, query or
// fragment (it is logged).
type Config struct {
	Schema        string    `json:"schema"`
	WorkerID      string    `json:"worker_id"`
	Listen        string    `json:"listen"`
	HealthListen  string    `json:"health_listen"`
	Attestation   string    `json:"attestation"`
	StaticConfig  string    `json:"static_config"`
	Model         Model     `json:"model"`
	ReceiptsDir   string    `json:"receipts_dir"`
	MaxInFlight   int       `json:"max_in_flight"`
	CertValidityS int       `json:"cert_validity_s"`
	SimSeedFile   string    `json:"sim_seed_file,omitempty"`
	Registry      *Registry `json:"registry,omitempty"`
}

// Registry is the registry the worker joins (registry/api), and what it
// asks to be listed with.
type Registry struct {
	// URL is the registry's API base, http:// or https://.
	URL string `json:"url"`
	// Payout is the TON address earnings are paid to.
	Payout string `json:"payout"`
	// Endpoint is the host:port clients dial for the RA-TLS API; ""
	// derives it from Config.Listen when that names a host.
	Endpoint string `json:"endpoint,omitempty"`
	// Price is the asking price, nanoton per 1,000,000 tokens; it must be
	// inside the registry's bounds for the model.
	Price uint64 `json:"price"`
	// MinPayout (nanoton) and PayoutEveryS (seconds) are the payout
	// threshold and schedule; 0 takes the registry operator's defaults.
	MinPayout    uint64 `json:"min_payout,omitempty"`
	PayoutEveryS int64  `json:"payout_every_s,omitempty"`
	// HeartbeatS is the heartbeat interval; 0 follows the registry's
	// answer (30 s until it gave one).
	HeartbeatS int `json:"heartbeat_s,omitempty"`
	// ReceiptsEveryS is how long the receipt sender waits once everything
	// journalled was sent (0: 10 s). Lower means earlier credit and more
	// requests; the demo uses 1.
	ReceiptsEveryS int `json:"receipts_every_s,omitempty"`
}

// Model is the one served model.
type Model struct {
	ID            string `json:"id"`
	Engine        string `json:"engine"` // "builtin" or "openai"
	Checkpoint    string `json:"checkpoint,omitempty"`
	Tokenizer     string `json:"tokenizer,omitempty"`
	ContextLength int    `json:"context_length,omitempty"`
	// UpstreamURL is the loopback OpenAI-compatible server (engine openai).
	UpstreamURL string `json:"upstream_url,omitempty"`
}

// ParseConfig reads a config, fills defaults and validates it.
func ParseConfig(r io.Reader) (*Config, error) {
	var c Config
	if err := strictjson.Decode(r, 1<<20, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads the config file at path.
func LoadConfig(path string) (*Config, error) {
	return strictjson.Load(path, ParseConfig)
}

func (c *Config) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Listen, ":8443")
	def(&c.HealthListen, ":8080")
	def(&c.Attestation, "auto")
	def(&c.StaticConfig, "/run/cocoon/static.json")
	def(&c.ReceiptsDir, "/run/cocoon/receipts")
	def(&c.WorkerID, "worker")
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 8
	}
	if c.CertValidityS == 0 {
		c.CertValidityS = 3600
	}
}

// CertValidity is the RA-TLS certificate lifetime.
func (c *Config) CertValidity() time.Duration { return time.Duration(c.CertValidityS) * time.Second }

// Validate checks the fields.
func (c *Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(f, a...)) }
	if c.Schema != ConfigSchema {
		return bad("schema %q, want %q", c.Schema, ConfigSchema)
	}
	for _, l := range []struct{ name, v string }{{"listen", c.Listen}, {"health_listen", c.HealthListen}} {
		if _, _, err := net.SplitHostPort(l.v); err != nil {
			return bad("%s %q: want host:port", l.name, l.v)
		}
	}
	switch c.Attestation {
	case "auto", "tdx", "vtpm", "sim":
	default:
		return bad("attestation %q, want auto, tdx, vtpm or sim", c.Attestation)
	}
	if len(c.WorkerID) > 256 {
		return bad("worker_id longer than 256 bytes")
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 4096 {
		return bad("max_in_flight %d, want 1..4096", c.MaxInFlight)
	}
	if c.CertValidityS < 60 || c.CertValidityS > 24*3600 {
		return bad("cert_validity_s %d, want 60..86400", c.CertValidityS)
	}
	m := c.Model
	if m.ID == "" {
		return bad("model.id is required")
	}
	switch m.Engine {
	case "builtin":
		if m.Checkpoint == "" || m.Tokenizer == "" || m.UpstreamURL != "" {
			return bad("model engine builtin needs checkpoint and tokenizer, and no upstream_url")
		}
	case "openai":
		u, err := url.Parse(m.UpstreamURL)
		if err != nil || u.Scheme != "http" || u.Host == "" || m.Checkpoint != "" || m.Tokenizer != "" {
			return bad("model engine openai needs upstream_url http://HOST:PORT (a loopback server), and no checkpoint")
		}
		if h := u.Hostname(); h != "127.0.0.1" && h != "::1" && h != "localhost" {
			// Prompts travel to it in the clear: it must be inside the TD.
			return bad("upstream_url host %q: the upstream must be on loopback, inside the appliance", h)
		}
	default:
		return bad("model engine %q, want builtin or openai", m.Engine)
	}
	if m.ContextLength < 0 {
		return bad("negative context_length")
	}
	if c.Registry != nil {
		if err := c.Registry.validate(c.Listen); err != nil {
			return fmt.Errorf("%w: registry.%v", ErrConfig, err)
		}
	}
	return nil
}

// maxPayoutEveryS mirrors the registry's bound (a year and a day), so a
// worker learns of a value it would refuse at startup, not at each retry.
const maxPayoutEveryS = 366 * 24 * 3600

func (r *Registry) validate(listen string) error {
	u, err := url.Parse(r.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("url %q: want http(s)://HOST[:PORT][/PATH]", r.URL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		// The URL is logged with every failed call: no credentials in it.
		return fmt.Errorf("url %q: no user info, query or fragment", u.Redacted())
	}
	if _, err := address.ParseAddr(r.Payout); err != nil {
		return fmt.Errorf("payout %q is not a TON address: %v", r.Payout, err)
	}
	if r.Endpoint != "" {
		if err := wire.CheckEndpoint(r.Endpoint); err != nil {
			return fmt.Errorf("endpoint %q: %v", r.Endpoint, err)
		}
	} else if dialable(listen) == "" {
		return fmt.Errorf("endpoint is required: listen %q names no host clients can dial", listen)
	}
	switch {
	case r.Price == 0:
		return errors.New("price is required (nanoton per 1M tokens)")
	case r.PayoutEveryS < 0 || r.PayoutEveryS > maxPayoutEveryS:
		return fmt.Errorf("payout_every_s %d, want 0..%d", r.PayoutEveryS, maxPayoutEveryS)
	case r.HeartbeatS < 0 || r.HeartbeatS > 3600:
		return fmt.Errorf("heartbeat_s %d, want 0..3600", r.HeartbeatS)
	case r.ReceiptsEveryS < 0 || r.ReceiptsEveryS > 3600:
		return fmt.Errorf("receipts_every_s %d, want 0..3600", r.ReceiptsEveryS)
	}
	return nil
}

// dialable is listen when clients could dial it: it names a host, and not
// the unspecified address (which means every interface, not one).
func dialable(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		return ""
	}
	if wire.CheckEndpoint(listen) != nil {
		return ""
	}
	return listen
}

// Endpoint is what the worker registers clients to dial: the registry
// section's endpoint, else listen when it names a host.
func (c *Config) Endpoint() string {
	if c.Registry != nil && c.Registry.Endpoint != "" {
		return c.Registry.Endpoint
	}
	return dialable(c.Listen)
}
