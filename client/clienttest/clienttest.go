// Package clienttest runs a Cocoon network inside one test process: a
// registry (registry/api on an httptest server, its SQLite store in
// t.TempDir()) and workers (guest/worker with the built-in engine and the
// tiny test model of guest/engine/llama2/testdata), attested by the TDX
// quote SIMULATOR. Nothing in it is attestation: it is for tests of the
// code around attestation (package client, the CLI).
//
// The registry admits simulated evidence from the network's simulator
// root (one fixed seed), under a policy with allow_simulated; workers are
// registered by the test itself, with whatever endpoint and price it
// wants, so a test can also list a worker the way a dishonest registry
// would.
package clienttest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/worker"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	mruntime "github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/store"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// Constants of the network.
const (
	Model      = "cocoon-test"
	AdminToken = "clienttest-admin-token-0123456789abcdef"
	// Payout is a TON address the workers register (registry/api's tests use it too).
	Payout = "EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N"
	// Price bounds of Model, nanoton per 1M tokens.
	MinPrice  = 100_000
	BasePrice = 2_000_000
	MaxPrice  = 100_000_000
	// DevStatic is the workers' default static config: policy "dev",
	// under which guest/worker may use the simulator.
	DevStatic = `{"model":"cocoon-test","gpu_required":false,"policy":"dev"}`
)

// Network is a registry with a simulator root.
type Network struct {
	t testing.TB
	// URL is the registry's base URL.
	URL string
	// Registry is an anonymous API client; Admin carries AdminToken.
	Registry, Admin *wire.Client
	// SimRoot is the root of every worker's simulator.
	SimRoot *x509.Certificate
	seed    []byte
}

// Quiet is a logger that drops everything.
func Quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// New starts a registry: model Model priced, simulated evidence from the
// network's simulator admitted, nothing allowlisted yet.
func New(t testing.TB) *Network {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SetPrice(ctx, store.Price{Model: Model, Base: BasePrice, Min: MinPrice, Max: MaxPrice}); err != nil {
		t.Fatal(err)
	}
	seed := bytes.Repeat([]byte{42}, sim.SeedSize)
	s, err := sim.New(sim.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{
		Store: st, Log: Quiet(), AdminToken: AdminToken,
		Policy: &policy.Policy{AllowSimulated: true}, SimRoot: s.Root(), PriceTTL: -1,
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &Network{
		t: t, URL: ts.URL, seed: seed, SimRoot: s.Root(),
		Registry: &wire.Client{BaseURL: ts.URL},
		Admin:    &wire.Client{BaseURL: ts.URL, Token: AdminToken},
	}
}

// WriteSimRoot writes the simulator root as PEM into dir and returns the
// file's path.
func (n *Network) WriteSimRoot(dir string) string {
	n.t.Helper()
	p := filepath.Join(dir, "sim-root.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.SimRoot.Raw}), 0o644); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// Worker is a running worker.
type Worker struct {
	// W is the worker; nil for a fake (StartFake).
	W *worker.Worker
	// cert is a fake's certificate.
	cert *tls.Certificate
	// Addr is where it serves RA-TLS (127.0.0.1:port).
	Addr string
	// ID is wire.WorkerID of its key.
	ID string
	// ImageHash is what its simulator measured (hex): a function of its
	// static config.
	ImageHash string
}

// WorkerOptions configure StartWorker.
type WorkerOptions struct {
	Name string // worker_id; "" means "w-test"
	// Static is the static config; "" means DevStatic. Another content
	// (it must keep policy "dev") is another image hash.
	Static string
	// Allow allowlists its image hash at the registry.
	Allow bool
}

// StartWorker starts a worker on 127.0.0.1:0, stopped at the test's end.
// It is not registered: see Register.
func (n *Network) StartWorker(o WorkerOptions) *Worker {
	t := n.t
	t.Helper()
	if o.Name == "" {
		o.Name = "w-test"
	}
	if o.Static == "" {
		o.Static = DevStatic
	}
	dir := t.TempDir()
	static := filepath.Join(dir, "static.json")
	if err := os.WriteFile(static, []byte(o.Static), 0o644); err != nil {
		t.Fatal(err)
	}
	td := testdata()
	cfgJSON, _ := json.Marshal(map[string]any{
		"schema": worker.ConfigSchema, "worker_id": o.Name, "attestation": "sim",
		"static_config": static, "receipts_dir": filepath.Join(dir, "receipts"),
		"model": map[string]any{"id": Model, "engine": "builtin",
			"checkpoint": filepath.Join(td, "model.bin"), "tokenizer": filepath.Join(td, "tokenizer.bin")},
	})
	cfg, err := worker.ParseConfig(bytes.NewReader(cfgJSON))
	if err != nil {
		t.Fatal(err)
	}
	var s *sim.Simulator
	open := func(kind string) (attest.Provider, error) {
		if kind != "sim" {
			return nil, attest.ErrUnavailable
		}
		p, err := sim.New(sim.Options{Seed: n.seed})
		s = p
		return p, err
	}
	w, err := worker.New(context.Background(), cfg, worker.Deps{Open: open, Logger: Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Measurements()
	if err != nil {
		w.Close()
		t.Fatal(err)
	}
	h := m.ImageHash()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; w.Close() })
	wk := &Worker{W: w, Addr: ln.Addr().String(), ID: wire.WorkerID(w.PublicKey()), ImageHash: hex.EncodeToString(h[:])}
	if o.Allow {
		n.Allow(wk.ImageHash)
	}
	return wk
}

// Allow allowlists an image hash at the registry.
func (n *Network) Allow(hash string) {
	n.t.Helper()
	if _, err := n.Admin.AllowImage(context.Background(), hash, "clienttest"); err != nil {
		n.t.Fatal(err)
	}
}

// Disallow removes an image hash from the registry's allowlist; workers
// registered with it stay listed.
func (n *Network) Disallow(hash string) {
	n.t.Helper()
	if err := n.Admin.DisallowImage(context.Background(), hash); err != nil {
		n.t.Fatal(err)
	}
}

// Register lists w at endpoint ("" means its own address) with price
// (nanoton per 1M tokens), signed with w's own key, as the worker does.
// An endpoint other than w's own is what a dishonest registry would list.
func (n *Network) Register(w *Worker, endpoint string, price uint64) {
	n.t.Helper()
	if endpoint == "" {
		endpoint = w.Addr
	}
	reg := wire.Registration{Payout: Payout, Endpoint: endpoint, Models: []string{Model}, Price: price}
	cert := w.cert
	if w.W != nil {
		cert = w.W.Certificate()
	}
	if _, err := n.Registry.RegisterTLS(context.Background(), *cert, reg); err != nil {
		n.t.Fatal(err)
	}
}

// StartFake serves h over RA-TLS on 127.0.0.1:0 under a certificate
// attested the way a worker's is (the network's simulator, extended with
// the static config static, "" meaning DevStatic, and boot-complete), for
// tests of workers that misbehave after the handshake: h answers what the
// test wants. Its image hash is allowlisted when allow is set.
func (n *Network) StartFake(static string, allow bool, h http.Handler) *Worker {
	t := n.t
	t.Helper()
	if static == "" {
		static = DevStatic
	}
	s, err := sim.New(sim.Options{Seed: n.seed})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range mruntime.BootLog([]byte(static), nil) {
		if err := s.Extend(e); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	ih := m.ImageHash()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := ratls.Claims{ConfigHash: sha256.Sum256([]byte(static)), WorkerID: "fake"}
	cert, err := ratls.NewCertificate(context.Background(), s, claims, key, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = ratls.ServerConfig(cert, nil)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	wk := &Worker{cert: &cert, Addr: srv.Listener.Addr().String(), ID: wire.WorkerID(key.Public().(ed25519.PublicKey)), ImageHash: hex.EncodeToString(ih[:])}
	if allow {
		n.Allow(wk.ImageHash)
	}
	return wk
}

// DeadEndpoint is a loopback address where nothing listens (a listener
// opened and closed).
func DeadEndpoint(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testdata is guest/engine/llama2/testdata of this checkout.
func testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "guest", "engine", "llama2", "testdata")
}

// ChatBody is a chat completion request body.
func ChatBody(prompt string, maxTokens int, stream bool) string {
	b, _ := json.Marshal(map[string]any{"model": Model, "messages": []map[string]string{{"role": "user", "content": prompt}},
		"max_tokens": maxTokens, "temperature": 0, "stream": stream})
	return string(b)
}
