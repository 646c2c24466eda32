package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// t0 is when the test workers' certificates are issued; the registry's
// clock starts a minute later.
var t0 = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

const (
	model      = "tiny"
	otherModel = "other"
	adminToken = "s3cret-admin-token"
	payoutAddr = "EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N"
)

// simWorker is a simulated worker: a TDX simulator that booted with a
// static config, an Ed25519 key, and its RA-TLS certificate.
type simWorker struct {
	sim    *sim.Simulator
	key    ed25519.PrivateKey
	cert   tls.Certificate
	image  string // hex image hash
	claims ratls.Claims
	id     string
	pubHex string
}

func (w *simWorker) der() []byte { return w.cert.Certificate[0] }

// newSimWorker boots a simulator (seed: which simulator root; config: its
// static config, hence its image hash) and makes a certificate for the
// key with tag keyTag, valid from issued for validity.
func newSimWorker(t testing.TB, seed byte, config string, keyTag byte, issued time.Time, validity time.Duration) *simWorker {
	t.Helper()
	return newSimWorkerBody(t, seed, nil, config, keyTag, issued, validity)
}

// newSimWorkerBody is newSimWorker with a TD quote body of its own.
func newSimWorkerBody(t testing.TB, seed byte, body *sim.Body, config string, keyTag byte, issued time.Time, validity time.Duration) *simWorker {
	t.Helper()
	s, err := sim.New(sim.Options{Seed: bytes.Repeat([]byte{seed}, sim.SeedSize), Body: body})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range runtime.BootLog([]byte(config), nil) {
		if err := s.Extend(e); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	h := m.ImageHash()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{keyTag}, ed25519.SeedSize))
	w := &simWorker{sim: s, key: key, image: hex.EncodeToString(h[:])}
	w.claims = ratls.Claims{ConfigHash: sha256.Sum256([]byte(config)), WorkerID: "w-" + string(rune('a'+keyTag%26)), ImageHash: &h}
	w.renew(t, issued, validity)
	pub := key.Public().(ed25519.PublicKey)
	w.id, w.pubHex = WorkerID(pub), hex.EncodeToString(pub)
	return w
}

// renew makes a new certificate for the same key.
func (w *simWorker) renew(t testing.TB, issued time.Time, validity time.Duration) {
	t.Helper()
	var err error
	w.cert, err = ratls.NewCertificate(context.Background(), w.sim, w.claims, w.key, issued, validity)
	if err != nil {
		t.Fatal(err)
	}
}

// receipt is a signed receipt of w.
func (w *simWorker) receipt(t testing.TB, seq uint64, m string, prompt, completion int64, end time.Time) receipt.Signed {
	t.Helper()
	r := receipt.Receipt{
		V: receipt.Version, Worker: w.pubHex, Seq: seq, Request: "req-" + utoa(seq), Model: m,
		Usage: receipt.Usage{Prompt: prompt, Completion: completion},
		Start: end.Add(-time.Second).UnixMilli(), End: end.UnixMilli(),
		Commitment: hex.EncodeToString(bytes.Repeat([]byte{byte(seq)}, 32)),
	}
	s, err := receipt.Sign(r, w.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Workers are deterministic and read-only once made: share them.
var (
	fixturesOnce sync.Once
	fxWorker     *simWorker // allowlisted image, key 1
	fxWorker2    *simWorker // same image, key 2
	fxOtherImage *simWorker // another static config: an image not allowlisted
	fxOtherRoot  *simWorker // a simulator with another root
	fxDebug      *simWorker // a debug TD (the host can read its memory)
)

func fixtures(t testing.TB) {
	t.Helper()
	fixturesOnce.Do(func() {
		fxWorker = newSimWorker(t, 1, `{"worker":"a"}`, 1, t0, 0)
		fxWorker2 = newSimWorker(t, 1, `{"worker":"a"}`, 2, t0, 0)
		fxOtherImage = newSimWorker(t, 1, `{"worker":"b"}`, 3, t0, 0)
		fxOtherRoot = newSimWorker(t, 2, `{"worker":"a"}`, 4, t0, 0)
		debug := sim.DefaultBody()
		debug.TDAttributes |= sim.AttrDebug
		fxDebug = newSimWorkerBody(t, 1, &debug, `{"worker":"a"}`, 5, t0, 0)
	})
	if fxWorker == nil {
		t.Fatal("fixtures failed")
	}
}

// clock is the registry's settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a registry on a fresh SQLite store: fxWorker's image allowlisted,
// models "tiny" and "other" priced, a dev policy (allow_simulated) and
// the simulator's root, admin token set.
type env struct {
	t     testing.TB
	st    store.Store
	srv   *Server
	ts    *httptest.Server
	clock *clock
	cl    *Client
}

const (
	basePrice = 2_000_000
	minPrice  = 500_000
	maxPrice  = 8_000_000
)

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+t.TempDir()+"/r.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newEnv(t testing.TB, configure ...func(*Server)) *env {
	t.Helper()
	fixtures(t)
	ctx := context.Background()
	st := openStore(t)
	if err := st.AllowImage(ctx, store.AllowedImage{Hash: fxWorker.image, Note: "test image", Added: t0}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{model, otherModel} {
		if err := st.SetPrice(ctx, store.Price{Model: m, Base: basePrice, Min: minPrice, Max: maxPrice}); err != nil {
			t.Fatal(err)
		}
	}
	c := &clock{t: t0.Add(time.Minute)}
	srv := &Server{
		Store:      st,
		Now:        c.Now,
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		AdminToken: adminToken,
		Policy:     &policy.Policy{AllowSimulated: true},
		SimRoot:    fxWorker.sim.Root(),
		PriceTTL:   -1,
	}
	for _, f := range configure {
		f(srv)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, st: st, srv: srv, ts: ts, clock: c,
		cl: &Client{BaseURL: ts.URL, HTTP: ts.Client(), Token: adminToken, Now: c.Now}}
}

// registration is a valid registration of w at the env's clock.
func (e *env) registration(w *simWorker) Registration {
	return Registration{
		Certificate: w.der(), Payout: payoutAddr, Endpoint: "worker.example:8443",
		Models: []string{model}, Price: 1_000_000, MinPayout: 1_000_000_000, PayoutEveryS: 3600,
		At: e.clock.Now().UnixMilli(),
	}
}

// register registers w, or fails the test.
func (e *env) register(w *simWorker) *WorkerInfo {
	e.t.Helper()
	info, err := e.cl.Register(context.Background(), w.der(), w.key, e.registration(w))
	if err != nil {
		e.t.Fatalf("register: %v", err)
	}
	return info
}

// seed puts w in the books directly, whatever the server's policy.
func (e *env) seed(w *simWorker) {
	e.t.Helper()
	err := e.st.PutWorker(context.Background(), store.Worker{
		ID: w.id, PublicKey: w.pubHex, Payout: payoutAddr, Endpoint: "seeded.example:1", Models: []string{model},
		Price: 1_000_000, Certificate: w.der(), Evidence: json.RawMessage(`{"kind":"sim"}`),
		RegisteredAt: e.clock.Now(), CertExpires: w.cert.Leaf.NotAfter,
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// do sends a raw request.
func (e *env) do(method, path, contentType string, body []byte, hdr ...string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantError checks an error answer's status and code.
func wantError(t testing.TB, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("status %d, body %q is not an error object: %v", status, body, err)
	}
	if status != wantStatus || eb.Error.Code != wantCode {
		t.Fatalf("status %d code %q (%s), want %d %q", status, eb.Error.Code, eb.Error.Message, wantStatus, wantCode)
	}
	if eb.Error.Message == "" {
		t.Fatalf("status %d: empty message", status)
	}
}

// books is what a refused request must not change.
type books struct {
	Workers   []store.Worker
	Balances  []store.Balance
	Allowlist []store.AllowedImage
	Prices    []store.Price
	Receipts  map[string][]store.Receipt
}

func (e *env) books() books {
	e.t.Helper()
	ctx := context.Background()
	var b books
	var err error
	if b.Workers, err = e.st.Workers(ctx); err != nil {
		e.t.Fatal(err)
	}
	if b.Balances, err = e.st.Balances(ctx); err != nil {
		e.t.Fatal(err)
	}
	if b.Allowlist, err = e.st.Allowlist(ctx); err != nil {
		e.t.Fatal(err)
	}
	if b.Prices, err = e.st.Prices(ctx); err != nil {
		e.t.Fatal(err)
	}
	b.Receipts = map[string][]store.Receipt{}
	for _, w := range b.Workers {
		if b.Receipts[w.ID], err = e.st.Receipts(ctx, w.ID, 0, 100000); err != nil {
			e.t.Fatal(err)
		}
	}
	return b
}

func (e *env) unchanged(before books) {
	e.t.Helper()
	if after := e.books(); !reflect.DeepEqual(before, after) {
		e.t.Fatalf("the books changed:\nbefore %+v\nafter  %+v", before, after)
	}
}
