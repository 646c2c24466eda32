package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/attest/tdx"
	"github.com/cocoon-appliance/cocoon/guest/attest/vtpm"
	"github.com/cocoon-appliance/cocoon/guest/engine"
	"github.com/cocoon-appliance/cocoon/guest/engine/llama2"
	"github.com/cocoon-appliance/cocoon/guest/gateway"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	initconfig "github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// Version is the worker's version, in /healthz.
const Version = "0.2.0"

// devPolicy is init/boot.DevPolicy: the static-config policy under which a
// guest may run without measurement hardware.
const devPolicy = "dev"

// ErrNoAttestation is returned when no attestation provider is available
// and the policy does not allow the simulator.
var ErrNoAttestation = errors.New("worker: no attestation provider")

// Deps are the worker's ties to the machine, replaced in tests.
type Deps struct {
	Rand   io.Reader                            // keys, request IDs; nil: crypto/rand
	Now    func() time.Time                     // nil: time.Now
	After  func(time.Duration) <-chan time.Time // nil: time.After
	Logger *slog.Logger                         // nil: slog.Default()
	// Open opens the attestation provider of a kind ("tdx", "vtpm",
	// "sim"); nil opens the real ones (the simulator seeded from
	// Config.SimSeedFile when set).
	Open func(kind string) (attest.Provider, error)
	// HTTP calls the registry; nil: a client with a 30 s timeout, so a
	// registry that hangs delays a heartbeat, never stops them.
	HTTP *http.Client
}

func (d *Deps) fill() {
	if d.Rand == nil {
		d.Rand = rand.Reader
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.After == nil {
		d.After = time.After
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.HTTP == nil {
		d.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
}

// openReal opens the real provider of a kind.
func (w *Worker) openReal(kind string) (attest.Provider, error) {
	switch kind {
	case "tdx":
		return tdx.Open()
	case "vtpm":
		return vtpm.Open(vtpm.Options{})
	case "sim":
		var seed []byte
		if f := w.cfg.SimSeedFile; f != "" {
			var err error
			if seed, err = readSeed(f); err != nil {
				return nil, err
			}
		}
		return sim.New(sim.Options{Seed: seed})
	}
	return nil, fmt.Errorf("%w: unknown kind %q", ErrNoAttestation, kind)
}

// readSeed reads a simulator seed file: 64 hex digits, surrounding white
// space allowed. The seed is a (test) signing secret: errors never quote
// the file's content.
func readSeed(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: sim_seed_file: %w", ErrConfig, err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != sim.SeedSize {
		return nil, fmt.Errorf("%w: sim_seed_file %s: want %d hex digits", ErrConfig, path, 2*sim.SeedSize)
	}
	return seed, nil
}

// Worker is the assembled worker.
type Worker struct {
	cfg      *Config
	deps     Deps
	provider attest.Provider
	kind     string
	key      ed25519.PrivateKey
	claims   ratls.Claims
	gw       *gateway.Gateway
	eng      io.Closer
	store    *receipt.Store

	mu   sync.Mutex
	cert *tls.Certificate

	// certChanged is signalled (never blocking) at each new certificate,
	// for the registry loop to register it.
	certChanged chan struct{}
	// registered is closed at the first successful registration.
	registered     chan struct{}
	registeredOnce sync.Once
	beats          beatStats
}

// New opens the provider, makes the key and first certificate, opens the
// engine and the receipts journal, and builds the gateway.
func New(ctx context.Context, cfg *Config, deps Deps) (*Worker, error) {
	deps.fill()
	w := &Worker{cfg: cfg, deps: deps, certChanged: make(chan struct{}, 1), registered: make(chan struct{})}
	if w.deps.Open == nil {
		w.deps.Open = w.openReal
	}
	if err := w.open(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

func (w *Worker) open(ctx context.Context) (err error) {
	cfg, deps := w.cfg, w.deps
	static, err := os.ReadFile(cfg.StaticConfig)
	if err != nil {
		return fmt.Errorf("worker: the measured static config: %w", err)
	}
	var st initconfig.Static
	if err := json.Unmarshal(static, &st); err != nil {
		return fmt.Errorf("worker: %s: %w", cfg.StaticConfig, err)
	}
	if w.provider, w.kind, err = w.openProvider(st.Policy); err != nil {
		return err
	}
	if w.kind == "sim" {
		// The simulator's RTMR3 starts empty: replay what the init
		// measured in a real guest, so verifiers see the same runtime log.
		for _, e := range runtime.BootLog(static, nil) {
			if err := w.provider.Extend(e); err != nil {
				return fmt.Errorf("worker: simulator extend: %w", err)
			}
		}
	}
	_, w.key, err = ed25519.GenerateKey(deps.Rand)
	if err != nil {
		return err
	}
	w.claims = ratls.Claims{ConfigHash: sha256.Sum256(static), WorkerID: cfg.WorkerID}
	if err := w.renew(ctx); err != nil {
		return err
	}
	eng, up, err := w.openEngine()
	if err != nil {
		return err
	}
	if w.store, err = receipt.Open(cfg.ReceiptsDir); err != nil {
		return fmt.Errorf("worker: receipts: %w", err)
	}
	if w.store.Truncated > 0 {
		deps.Logger.Warn("receipts journal had a torn tail from a crash; dropped it", "bytes", w.store.Truncated)
	}
	hashKey := make([]byte, 32)
	if _, err := io.ReadFull(deps.Rand, hashKey); err != nil {
		return err
	}
	w.gw, err = gateway.New(gateway.Options{
		Engine: eng, Upstream: up, Recorder: gateway.RecorderFunc(w.record), HashKey: hashKey,
		Clock: nowFunc(deps.Now), Rand: deps.Rand, Logger: deps.Logger, MaxInFlight: cfg.MaxInFlight,
	})
	if err != nil {
		return err
	}
	return nil
}

// openProvider picks the provider: the configured kind, or for "auto" TDX,
// then the vTPM, then (dev policy only) the simulator.
func (w *Worker) openProvider(policy string) (attest.Provider, string, error) {
	log := w.deps.Logger
	kinds := []string{w.cfg.Attestation}
	if w.cfg.Attestation == "auto" {
		kinds = []string{"tdx", "vtpm"}
		if policy == devPolicy {
			kinds = append(kinds, "sim")
		}
	}
	var errs []error
	for _, k := range kinds {
		if k == "sim" && policy != devPolicy {
			return nil, "", fmt.Errorf("%w: the simulator is only for a guest whose static config has policy %q (this one: %q)", ErrNoAttestation, devPolicy, policy)
		}
		p, err := w.deps.Open(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		if k == "sim" {
			log.Warn("ATTESTATION SIMULATOR: no TDX or TPM here; quotes are signed by a test key and every production policy refuses them")
		}
		log.Info("attestation provider", "kind", k)
		return p, k, nil
	}
	return nil, "", fmt.Errorf("%w: %w", ErrNoAttestation, errors.Join(errs...))
}

func (w *Worker) openEngine() (engine.Engine, *gateway.Upstream, error) {
	m := w.cfg.Model
	if m.Engine == "openai" {
		return nil, &gateway.Upstream{URL: m.UpstreamURL, Models: []engine.Model{{ID: m.ID, ContextLength: m.ContextLength, OwnedBy: "cocoon"}}}, nil
	}
	e, err := llama2.Open(m.Checkpoint, m.Tokenizer, llama2.Options{ModelID: m.ID, OwnedBy: "cocoon", ContextLength: m.ContextLength, MaxWaiting: w.cfg.MaxInFlight})
	if err != nil {
		return nil, nil, fmt.Errorf("worker: model %s: %w", m.ID, err)
	}
	w.eng = e
	return e, nil, nil
}

// renew makes a fresh certificate (a fresh quote over fresh claims).
func (w *Worker) renew(ctx context.Context) error {
	c, err := ratls.NewCertificate(ctx, w.provider, w.claims, w.key, w.deps.Now(), w.cfg.CertValidity())
	if err != nil {
		return fmt.Errorf("worker: RA-TLS certificate: %w", err)
	}
	w.mu.Lock()
	w.cert = &c
	w.mu.Unlock()
	select {
	case w.certChanged <- struct{}{}:
	default: // one is pending already: the loop reads the newest cert
	}
	return nil
}

// Certificate is the current RA-TLS certificate.
func (w *Worker) Certificate() *tls.Certificate {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cert
}

// Kind is the attestation provider's kind ("tdx", "vtpm", "sim").
func (w *Worker) Kind() string { return w.kind }

// PublicKey is the worker key: the RA-TLS certificate's and the receipts'.
func (w *Worker) PublicKey() ed25519.PublicKey { return w.key.Public().(ed25519.PublicKey) }

// ID is the worker's ID in a registry (wire.WorkerID): the hex SHA-256 of
// its public key. A new process has a new key, hence a new ID.
func (w *Worker) ID() string { return wire.WorkerID(w.PublicKey()) }

// Registered is closed once the registry first accepted the worker; it is
// never closed without a registry section.
func (w *Worker) Registered() <-chan struct{} { return w.registered }

// record turns a gateway record into a signed, journalled receipt. Only
// successful, accounted requests are receipts: a worker is paid for tokens
// its engine counted, never for estimates.
func (w *Worker) record(r gateway.Record) {
	w.beats.add(r)
	if r.Status != http.StatusOK || r.Unaccounted || r.Model == "" {
		return
	}
	u := r.Usage
	rc := receipt.Receipt{
		Worker: hex.EncodeToString(w.PublicKey()), Request: r.ID, Model: r.Model,
		Usage: receipt.Usage{Prompt: int64(u.PromptTokens), Cached: int64(u.CachedTokens), Completion: int64(u.CompletionTokens), Reasoning: int64(u.ReasoningTokens)},
		Start: r.Start.UnixMilli(), End: r.End.UnixMilli(), Commitment: hex.EncodeToString(r.RequestHash[:]), Cancelled: r.Cancelled,
	}
	if rc.End < rc.Start {
		rc.End = rc.Start
	}
	if _, err := w.store.Append(rc, w.key); err != nil {
		w.deps.Logger.Error("receipt not stored", "request", r.ID, "err", err)
	}
}

// Receipts is the receipts journal.
func (w *Worker) Receipts() *receipt.Store { return w.store }

// Handler is the RA-TLS side: the OpenAI API and /metrics.
func (w *Worker) Handler() http.Handler { return w.gw }

// HealthHandler is the plain side for the host: GET /healthz only (no
// prompts, no metrics with model names).
func HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(rw, "ok cocoon-worker %s\n", Version)
	})
	return mux
}

// TLSConfig is the RA-TLS server config, presenting the current
// certificate.
func (w *Worker) TLSConfig() *tls.Config {
	c := ratls.ServerConfig(*w.Certificate(), nil)
	c.Certificates = nil
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return w.Certificate(), nil }
	return c
}

// Serve serves the OpenAI API over RA-TLS on ln and renews the
// certificate at half its validity, until ctx ends. With a registry
// section it also joins the registry (join): registration of every
// certificate, heartbeats and receipt delivery. Whatever the registry
// answers, Serve goes on serving; it returns once in-flight requests are
// drained (at most 5 s) and, after a registration, the receipts flushed
// once (at most 5 s).
func (w *Worker) Serve(ctx context.Context, ln net.Listener) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{Handler: w.Handler(), TLSConfig: w.TLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(w.deps.Logger.Handler(), slog.LevelWarn)}
	// drained is closed once the server has stopped and its requests
	// ended: their receipts are journalled, and the final flush takes them.
	drained := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(drained)
		for {
			select {
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				srv.Shutdown(sctx)
				cancel()
				return
			case <-w.deps.After(w.cfg.CertValidity() / 2):
				if err := w.renew(ctx); err != nil {
					w.deps.Logger.Error("RA-TLS certificate not renewed; serving the old one until it expires", "err", err)
				}
			}
		}
	})
	if w.cfg.Registry != nil {
		wg.Go(func() { w.join(ctx, drained) })
	}
	err := srv.ServeTLS(ln, "", "")
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return parent.Err()
	}
	return err
}

// Close releases the engine, the journal and the gateway.
func (w *Worker) Close() {
	if w.gw != nil {
		w.gw.Close()
	}
	if w.eng != nil {
		w.eng.Close()
	}
	if w.store != nil {
		w.store.Close()
	}
	if c, ok := w.provider.(io.Closer); ok {
		c.Close()
	}
}
