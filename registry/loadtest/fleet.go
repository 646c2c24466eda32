package loadtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// The one model the workers serve and its operator bounds. The workers ask
// exactly the floor: a receipt's credit is tokens × min(ask, market) / 1M
// (registry/market.Credit) and the market price never goes below the
// floor, so every receipt earns tokens × floor / 1M whatever the demand
// does to the price during the run, and the books can be checked to the
// nanoton.
const (
	model      = "loadtest-model"
	priceFloor = 1_000_000 // nanoton per 1M tokens: the workers' ask
	priceBase  = 2_000_000
	priceCeil  = 8_000_000
)

// Every receipt is one request of 700 prompt and 300 completion tokens.
const (
	promptTokens     = 700
	completionTokens = 300
	// perReceipt is what one receipt is worth, nanoton.
	perReceipt = (promptTokens + completionTokens) * priceFloor / 1_000_000
)

// staticConfig is the simulated guests' static config: it fixes their
// image hash, which the registry allowlists.
const staticConfig = `{"loadtest":true}`

// registry is the API under test, serving on loopback TCP.
type registry struct {
	st   store.Store
	srv  *http.Server
	url  string
	done chan error
}

// startRegistry opens a SQLite store in dir, prices the model, allowlists
// image and serves an api.Server configured as a deployment is (the
// default price cache; simulated evidence from root admitted).
func startRegistry(ctx context.Context, dir string, image string, root *sim.Simulator) (_ *registry, err error) {
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "registry.db"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	now := time.Now()
	if err := st.AllowImage(ctx, store.AllowedImage{Hash: image, Note: "loadtest", Added: now}); err != nil {
		return nil, err
	}
	if err := st.SetPrice(ctx, store.Price{Model: model, Base: priceBase, Min: priceFloor, Max: priceCeil}); err != nil {
		return nil, err
	}
	srv := &api.Server{
		Store: st,
		// Successful requests log at debug level; refusals are counted as
		// errors by the load test itself.
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Policy:  &policy.Policy{AllowSimulated: true},
		SimRoot: root.Root(),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &registry{
		st:   st,
		srv:  &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second},
		url:  "http://" + l.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { r.done <- r.srv.Serve(l) }()
	return r, nil
}

// close stops the server and closes the store.
func (r *registry) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if serr := <-r.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, r.st.Close())
}

// worker is one simulated worker: its key and RA-TLS certificate.
type worker struct {
	key    ed25519.PrivateKey
	pubHex string
	id     string
	cert   tls.Certificate
}

// bootSimulator boots the TDX simulator all workers share (one image, as
// a fleet of one release would be) and returns it with its image hash.
func bootSimulator() (*sim.Simulator, [32]byte, error) {
	s, err := sim.New(sim.Options{Seed: bytes.Repeat([]byte{0x1d}, sim.SeedSize)})
	if err != nil {
		return nil, [32]byte{}, err
	}
	for _, e := range runtime.BootLog([]byte(staticConfig), nil) {
		if err := s.Extend(e); err != nil {
			return nil, [32]byte{}, err
		}
	}
	m, err := s.Measurements()
	if err != nil {
		return nil, [32]byte{}, err
	}
	return s, m.ImageHash(), nil
}

// newWorker makes worker i's key (fixed by i, so runs are repeatable) and
// a certificate issued now, valid for validity.
func newWorker(ctx context.Context, s *sim.Simulator, image [32]byte, i int, now time.Time, validity time.Duration) (*worker, error) {
	seed := sha256.Sum256(fmt.Appendf(nil, "cocoon loadtest worker %d", i))
	key := ed25519.NewKeyFromSeed(seed[:])
	claims := ratls.Claims{ConfigHash: sha256.Sum256([]byte(staticConfig)), WorkerID: fmt.Sprintf("loadtest-%d", i), ImageHash: &image}
	cert, err := ratls.NewCertificate(ctx, s, claims, key, now, validity)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return &worker{key: key, pubHex: hex.EncodeToString(pub), id: api.WorkerID(pub), cert: cert}, nil
}

// register lists w through POST /v1/workers (the full attestation check).
func (w *worker) register(ctx context.Context, c *api.Client, i int) error {
	h := sha256.Sum256(fmt.Appendf(nil, "cocoon loadtest payout %d", i))
	_, err := c.RegisterTLS(ctx, w.cert, api.Registration{
		Payout:   address.NewAddress(0, 0, h[:]).String(),
		Endpoint: fmt.Sprintf("worker-%d.loadtest.invalid:8443", i),
		Models:   []string{model},
		Price:    priceFloor,
	})
	if err != nil {
		return fmt.Errorf("loadtest: registering worker %d: %w", i, err)
	}
	return nil
}
