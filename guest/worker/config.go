// Package worker assembles the appliance's worker process: the attestation
// provider, the RA-TLS certificate (renewed before it expires), the
// inference gateway over the built-in engine or a loopback upstream, the
// receipts journal, and the plain health endpoint the host may poll.
// cmd/cocoon-worker is its thin main.
package worker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

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
//	 "max_in_flight": 8, "cert_validity_s": 3600}
//
// "auto" attestation uses TDX, else the vTPM; only a guest whose measured
// static config names the "dev" policy falls back to the simulator.
type Config struct {
	Schema        string `json:"schema"`
	WorkerID      string `json:"worker_id"`
	Listen        string `json:"listen"`
	HealthListen  string `json:"health_listen"`
	Attestation   string `json:"attestation"`
	StaticConfig  string `json:"static_config"`
	Model         Model  `json:"model"`
	ReceiptsDir   string `json:"receipts_dir"`
	MaxInFlight   int    `json:"max_in_flight"`
	CertValidityS int    `json:"cert_validity_s"`
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
	return nil
}
