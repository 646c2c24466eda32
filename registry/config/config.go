// Package config is the registry's config file, "cocoon-registry/v1":
// strict JSON (unknown fields and trailing data are errors), relative paths
// resolved against the file's folder, every field checked with a message
// that says what was expected and what was found.
//
//	{
//	  "schema": "cocoon-registry/v1",
//	  "listen": "127.0.0.1:8480",
//	  "store": "sqlite:registry.db",
//	  "admin_token_file": "admin.token",
//	  "policy": "policy.json",
//	  "simulator_root": "sim-root.pem",
//	  "vtpm_policy": "",
//	  "allow": ["<image hash>"],
//	  "models": {"tiny": {"base": 1000000000, "min": 100000000, "max": 10000000000}},
//	  "chain": {"kind": "emulated", "state": "ledger.json", "fund": 1000000000000},
//	  "wallet": {"key_file": "hot-wallet.key", "subwallet": 0, "timeout_s": 3600},
//	  "payout": {"min": 100000000, "every_s": 3600, "max_batch": 200, "interval_s": 60}
//	}
//
// Fields:
//   - listen: the API's TCP address (default 127.0.0.1:8480; the registry
//     serves plain HTTP: put TLS in front of it, or keep it on loopback).
//   - store: "sqlite:PATH" (default "sqlite:registry.db") or a postgres:// DSN.
//   - admin_token_file: a file holding the admin bearer token (at least 32
//     characters). Without it the admin API is disabled: never open by default.
//   - policy: a measure/policy file ("cocoon-policy/v1") used as the template
//     for TDX and simulated evidence; its image hashes are replaced by the
//     allowlist kept in the store. Required unless vtpm_policy is given
//     (a registry of vTPM workers only, which refuses TDX and simulated
//     evidence).
//   - simulator_root: PEM of the TDX simulator's root certificate; simulated
//     evidence is refused without it, and with it still needs the policy's
//     allow_simulated. Development only.
//   - vtpm_policy: a "cocoon-vtpm-policy/v1" file admitting QEMU + swtpm
//     workers (development boot path). Optional.
//   - allow: image hashes added to the store's allowlist at start.
//   - models: models admitted, with the operator's price bounds in nanoton
//     per 1M tokens (min <= base <= max); written to the store at start.
//   - chain.kind: "emulated" (in-process ledger running the real wallet
//     contract, state in chain.state; chain.fund nanoton are minted to the
//     hot wallet when it has no account yet: development and the demo only)
//     or "lite" (chain.global_config: a TON global config file of lite servers).
//   - wallet.key_file: 32-byte Ed25519 seed in hex; created (0600) when
//     missing. subwallet and timeout_s (highload v3 message timeout, default
//     3600) fix the wallet's address.
//   - payout: default threshold (min, nanoton) and schedule (every_s) per
//     worker, the batch size (max_batch, default 200), and how often the
//     payout loop runs (interval_s, default 60; 0 disables the loop: run
//     payouts with `cocoon registry payouts --run`).
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/cocoon-appliance/cocoon/internal/durable"
	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Schema is the config's schema name.
const Schema = "cocoon-registry/v1"

// ErrConfig is every config error.
var ErrConfig = errors.New("registry config")

// Config is the parsed file, paths absolute.
type Config struct {
	Schema         string           `json:"schema"`
	Listen         string           `json:"listen"`
	Store          string           `json:"store"`
	AdminTokenFile string           `json:"admin_token_file"`
	Policy         string           `json:"policy"`
	SimulatorRoot  string           `json:"simulator_root"`
	VTPMPolicy     string           `json:"vtpm_policy"`
	Allow          []string         `json:"allow"`
	Models         map[string]Price `json:"models"`
	Chain          Chain            `json:"chain"`
	Wallet         Wallet           `json:"wallet"`
	Payout         Payout           `json:"payout"`
}

// Price is a model's price bounds, nanoton per 1M tokens.
type Price struct {
	Base uint64 `json:"base"`
	Min  uint64 `json:"min"`
	Max  uint64 `json:"max"`
}

// Chain selects the ledger.
type Chain struct {
	Kind         string `json:"kind"`
	State        string `json:"state"`
	Fund         uint64 `json:"fund"`
	GlobalConfig string `json:"global_config"`
}

// Wallet is the hot wallet.
type Wallet struct {
	KeyFile   string `json:"key_file"`
	Subwallet uint32 `json:"subwallet"`
	TimeoutS  int64  `json:"timeout_s"`
}

// Payout is the payout defaults.
type Payout struct {
	Min       uint64 `json:"min"`
	EveryS    int64  `json:"every_s"`
	MaxBatch  int    `json:"max_batch"`
	IntervalS *int64 `json:"interval_s"`
}

// Timeout is the wallet's message timeout.
func (w Wallet) Timeout() time.Duration { return time.Duration(w.TimeoutS) * time.Second }

// Every is the default payout schedule.
func (p Payout) Every() time.Duration { return time.Duration(p.EveryS) * time.Second }

// Interval is the payout loop's period (0: no loop).
func (p Payout) Interval() time.Duration {
	if p.IntervalS == nil {
		return time.Minute
	}
	return time.Duration(*p.IntervalS) * time.Second
}

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Load reads and checks a config file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c, err := Parse(f, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a config; relative paths are resolved against dir.
func Parse(r io.Reader, dir string) (*Config, error) {
	var c Config
	if err := strictjson.Decode(r, 1<<20, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(f, a...)) }
	if c.Schema != Schema {
		return nil, bad("schema %q, want %q", c.Schema, Schema)
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8480"
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, bad("listen %q: want host:port", c.Listen)
	}
	if c.Store == "" {
		c.Store = "sqlite:registry.db"
	}
	if p, ok := strings.CutPrefix(c.Store, "sqlite:"); ok {
		if p == "" {
			return nil, bad("store %q: no path", c.Store)
		}
		if p != ":memory:" {
			c.Store = "sqlite:" + abs(dir, p)
		}
	} else if !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		return nil, bad("store %q: want sqlite:PATH or postgres://...", RedactDSN(c.Store))
	}
	if c.Policy == "" && c.VTPMPolicy == "" {
		return nil, bad("policy: required (a cocoon-policy/v1 file), unless vtpm_policy admits the workers")
	}
	for _, p := range []*string{&c.AdminTokenFile, &c.Policy, &c.SimulatorRoot, &c.VTPMPolicy, &c.Chain.State, &c.Chain.GlobalConfig, &c.Wallet.KeyFile} {
		if *p != "" {
			*p = abs(dir, *p)
		}
	}
	for i, h := range c.Allow {
		h = strings.ToLower(h)
		if !hashRE.MatchString(h) {
			return nil, bad("allow[%d] %q: want 64 hex digits (an image hash)", i, c.Allow[i])
		}
		c.Allow[i] = h
	}
	for m, p := range c.Models {
		if m == "" || len(m) > 256 {
			return nil, bad("models: name %q: want 1..256 bytes", m)
		}
		if p.Min > p.Base || p.Base > p.Max || p.Max == 0 {
			return nil, bad("models[%q]: want 0 <= min <= base <= max, max > 0; got min %d base %d max %d", m, p.Min, p.Base, p.Max)
		}
	}
	switch c.Chain.Kind {
	case "emulated":
		if c.Chain.State == "" {
			c.Chain.State = abs(dir, "ledger.json")
		}
		if c.Chain.GlobalConfig != "" {
			return nil, bad("chain.global_config is for kind lite")
		}
	case "lite":
		if c.Chain.GlobalConfig == "" {
			return nil, bad("chain.global_config: required for kind lite")
		}
		if c.Chain.Fund != 0 || c.Chain.State != "" {
			return nil, bad("chain.fund and chain.state are for kind emulated: a real wallet is funded by a real transfer")
		}
	default:
		return nil, bad("chain.kind %q, want emulated or lite", c.Chain.Kind)
	}
	if c.Wallet.KeyFile == "" {
		c.Wallet.KeyFile = abs(dir, "hot-wallet.key")
	}
	if c.Wallet.TimeoutS == 0 {
		c.Wallet.TimeoutS = 3600
	}
	// highload-wallet-contract-v3: timeout < 2^22 s; tonutils-go wants > 5.
	if c.Wallet.TimeoutS <= 5 || c.Wallet.TimeoutS >= 1<<22 {
		return nil, bad("wallet.timeout_s %d: want 6..%d", c.Wallet.TimeoutS, 1<<22-1)
	}
	if c.Payout.MaxBatch == 0 {
		c.Payout.MaxBatch = 200
	}
	if c.Payout.MaxBatch < 1 || c.Payout.MaxBatch > 254*254 {
		return nil, bad("payout.max_batch %d: want 1..%d", c.Payout.MaxBatch, 254*254)
	}
	if c.Payout.EveryS < 0 || (c.Payout.IntervalS != nil && *c.Payout.IntervalS < 0) {
		return nil, bad("payout.every_s and interval_s must not be negative")
	}
	return &c, nil
}

func abs(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// RedactDSN hides a DSN's password, for messages and what is printed.
func RedactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 {
		if j := strings.LastIndex(dsn[:i], ":"); j > strings.Index(dsn, "//") {
			return dsn[:j+1] + "***" + dsn[i:]
		}
	}
	return dsn
}

// AdminToken reads the admin token; "" when no file is configured.
func (c *Config) AdminToken() (string, error) {
	if c.AdminTokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("%w: admin token: %w", ErrConfig, err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 32 {
		return "", fmt.Errorf("%w: admin token in %s is %d characters, want at least 32", ErrConfig, c.AdminTokenFile, len(t))
	}
	return t, nil
}

// WalletKey reads the hot wallet's seed, creating it with rand when the file
// does not exist. created says it did.
func (c *Config) WalletKey(rand io.Reader) (seed []byte, created bool, err error) {
	b, err := os.ReadFile(c.Wallet.KeyFile)
	if errors.Is(err, os.ErrNotExist) {
		seed = make([]byte, 32)
		if _, err := io.ReadFull(rand, seed); err != nil {
			return nil, false, err
		}
		if err := durable.CreateNew(c.Wallet.KeyFile, []byte(hex.EncodeToString(seed)+"\n"), 0o600); err != nil {
			return nil, false, fmt.Errorf("%w: wallet key: %w", ErrConfig, err)
		}
		return seed, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: wallet key: %w", ErrConfig, err)
	}
	seed, err = hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != 32 {
		return nil, false, fmt.Errorf("%w: wallet key %s: want 64 hex digits (an Ed25519 seed)", ErrConfig, c.Wallet.KeyFile)
	}
	return seed, false, nil
}
