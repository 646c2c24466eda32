package service_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/config"
	"github.com/cocoon-appliance/cocoon/registry/payout"
	"github.com/cocoon-appliance/cocoon/registry/service"
)

// t0 is when the worker's certificate is issued; the registry's clock
// starts a minute later.
var t0 = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

const (
	adminToken = "service-test-admin-token-0123456789abcdef"
	model      = "tiny"
	// The worker asks the model's floor, so its credit does not depend on
	// the market price: 10,000 tokens at 0.1 TON per 1M is 1,000,000
	// nanoton per receipt.
	floor      = 100_000_000
	perReceipt = 10_000 * floor / 1_000_000
	fund       = 1_000 * 1_000_000_000
)

// clock is the registry's and the ledger's settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// fixture is a config folder and the simulated worker it admits.
type fixture struct {
	dir, config string
	sim         *sim.Simulator
	image       string
	key         ed25519.PrivateKey
	cert        tls.Certificate
	payout      *address.Address
}

// newFixture writes a registry's files to a fresh folder: config, admin
// token, a policy allowing simulated quotes, the simulator's root, with
// the simulated worker's image allowlisted.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := sim.New(sim.Options{Seed: bytes.Repeat([]byte{0x5e}, sim.SeedSize)})
	if err != nil {
		t.Fatal(err)
	}
	const static = `{"worker":"service-test"}`
	for _, e := range runtime.BootLog([]byte(static), nil) {
		if err := s.Extend(e); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	h := m.ImageHash()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))
	cert, err := ratls.NewCertificate(context.Background(), s,
		ratls.Claims{ConfigHash: sha256.Sum256([]byte(static)), WorkerID: "service-test", ImageHash: &h}, key, t0, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("service test payout"))
	f := &fixture{dir: t.TempDir(), sim: s, image: hex.EncodeToString(h[:]), key: key, cert: cert, payout: address.NewAddress(0, 0, sum[:])}
	f.config = filepath.Join(f.dir, "registry.json")
	f.write(t, "admin.token", adminToken+"\n")
	f.write(t, "policy.json", `{"schema": "cocoon-policy/v1", "allow_simulated": true, "image_hashes": ["`+f.image+`"]}`)
	f.write(t, "sim-root.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Root().Raw})))
	f.write(t, "registry.json", `{
  "schema": "cocoon-registry/v1",
  "listen": "127.0.0.1:0",
  "store": "sqlite:registry.db",
  "admin_token_file": "admin.token",
  "policy": "policy.json",
  "simulator_root": "sim-root.pem",
  "allow": ["`+f.image+`"],
  "models": {"tiny": {"base": 1000000000, "min": 100000000, "max": 10000000000}},
  "chain": {"kind": "emulated", "state": "ledger.json", "fund": 1000000000000},
  "wallet": {"key_file": "hot-wallet.key", "timeout_s": 600},
  "payout": {"min": 1000000, "every_s": 60, "interval_s": 0}
}`)
	return f
}

func (f *fixture) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// running is a Service serving on loopback.
type running struct {
	svc    *service.Service
	url    string
	client *api.Client
	stop   func()
}

// start loads the config, assembles the registry with rand for a new
// wallet key and serves it until stop.
func start(t *testing.T, f *fixture, c *clock, rand io.Reader) *running {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(f.config)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, cfg, service.Options{Now: c.Now, Rand: rand, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Serve(sctx, l) }()
	r := &running{svc: svc, url: "http://" + l.Addr().String()}
	r.client = &api.Client{BaseURL: r.url, Token: adminToken, Now: c.Now}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := svc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// receipts are n signed receipts of the fixture's worker from seq first.
func (f *fixture) receipts(t *testing.T, first uint64, n int, end time.Time) []receipt.Signed {
	t.Helper()
	pub := hex.EncodeToString(f.key.Public().(ed25519.PublicKey))
	out := make([]receipt.Signed, n)
	for i := range out {
		seq := first + uint64(i)
		r := receipt.Receipt{
			V: receipt.Version, Worker: pub, Seq: seq, Request: "req", Model: model,
			Usage: receipt.Usage{Prompt: 7_000, Completion: 3_000},
			Start: end.Add(-time.Second).UnixMilli(), End: end.UnixMilli(),
			Commitment: hex.EncodeToString(bytes.Repeat([]byte{byte(seq)}, 32)),
		}
		s, err := receipt.Sign(r, f.key)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

// TestServiceLifecycle runs a registry from its config file, drives it
// through the API as a worker and an operator would, pays the worker on
// the emulated ledger, and opens it again from the same files.
func TestServiceLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	c := &clock{t: t0.Add(time.Minute)}
	r := start(t, f, c, bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	cl := r.client
	wallet := r.svc.Wallet.Address().String()

	// A worker registers and is listed.
	info, err := cl.RegisterTLS(ctx, f.cert, api.Registration{
		Payout: f.payout.String(), Endpoint: "worker.example:8443", Models: []string{model}, Price: floor,
	})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	id := api.WorkerID(f.key.Public().(ed25519.PublicKey))
	if info.ID != id || info.Status != api.StatusAttested {
		t.Fatalf("registered %s status %q, want %s attested", info.ID, info.Status, id)
	}
	ws, err := cl.Workers(ctx, model)
	if err != nil || len(ws) != 1 || ws[0].ID != id {
		t.Fatalf("workers %+v, %v: want just %s", ws, err, id)
	}

	// It submits receipts; the books credit them.
	const n = 3
	ack, err := cl.SubmitReceipts(ctx, id, f.receipts(t, 1, n, c.Now()))
	if err != nil || ack.AckedThrough != n || ack.Added != n {
		t.Fatalf("receipts: %+v, %v: want %d added", ack, err, n)
	}
	const earned = n * perReceipt
	wantBalance(t, cl, id, api.Balance{Worker: id, Earned: earned, Unpaid: earned})

	// The operator's allowlist, round trip.
	other := strings.Repeat("ab", 32)
	if _, err := cl.AllowImage(ctx, other, "next release"); err != nil {
		t.Fatalf("allow: %v", err)
	}
	wantAllowlist(t, cl, f.image, other)
	if err := cl.DisallowImage(ctx, other); err != nil {
		t.Fatalf("disallow: %v", err)
	}
	wantAllowlist(t, cl, f.image)

	// Payouts: the worker's address receives exactly what it earned.
	raw, err := cl.RunPayouts(ctx)
	if err != nil {
		t.Fatalf("run payouts: %v", err)
	}
	var rep payout.Report
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Confirmed != 1 || rep.Paid != earned {
		t.Fatalf("payout report %s (%v): want one batch confirmed paying %d", raw, err, earned)
	}
	wantBalance(t, cl, id, api.Balance{Worker: id, Earned: earned, Paid: earned})
	acc, err := r.svc.Ledger.Account(ctx, f.payout)
	if err != nil {
		t.Fatal(err)
	}
	// A recipient pays its own transactions' fees (storage) out of what it
	// receives, as on mainnet: balance + those fees is what it was sent.
	if got, fee := acc.Balance, r.svc.Ledger.FeesPaid(f.payout); got+fee != earned {
		t.Fatalf("payout address holds %d + paid %d in fees = %d nanoton, want %d", got, fee, got+fee, earned)
	}
	t.Logf("paid %d nanoton in one batch, wallet fees %d, recipient fees %d", earned, rep.Fees, r.svc.Ledger.FeesPaid(f.payout))
	hot, err := r.svc.Ledger.Account(ctx, r.svc.Wallet.Address())
	if err != nil {
		t.Fatal(err)
	}
	if hot.Balance+earned+rep.Fees != fund {
		t.Fatalf("hot wallet holds %d, want fund %d - paid %d - fees %d", hot.Balance, fund, earned, rep.Fees)
	}

	// The dashboard, and the admin API without the token.
	wantDashboard(t, r.url)
	anon := &api.Client{BaseURL: r.url}
	wrong := &api.Client{BaseURL: r.url, Token: strings.Repeat("x", 40)}
	for name, ac := range map[string]*api.Client{"no token": anon, "wrong token": wrong} {
		_, err := ac.Balances(ctx)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Errorf("%s: balances answered %v, want 401", name, err)
		}
	}
	r.stop()

	// Again from the same files, with other randomness: the same wallet
	// key (so the same hot wallet, not funded twice) and the same books.
	r2 := start(t, f, c, bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if got := r2.svc.Wallet.Address().String(); got != wallet {
		t.Fatalf("hot wallet %s after a restart, want %s", got, wallet)
	}
	hot2, err := r2.svc.Ledger.Account(ctx, r2.svc.Wallet.Address())
	if err != nil || hot2.Balance != hot.Balance {
		t.Fatalf("hot wallet holds %d (%v) after a restart, want %d", hot2.Balance, err, hot.Balance)
	}
	ws, err = r2.client.Workers(ctx, "")
	if err != nil || len(ws) != 1 || ws[0].ID != id || ws[0].Payout != f.payout.String() {
		t.Fatalf("workers after a restart %+v, %v: want %s", ws, err, id)
	}
	wantBalance(t, r2.client, id, api.Balance{Worker: id, Earned: earned, Paid: earned})
	// The worker goes on where it left off.
	ack, err = r2.client.SubmitReceipts(ctx, id, f.receipts(t, n+1, 1, c.Now()))
	if err != nil || ack.AckedThrough != n+1 || ack.Added != 1 {
		t.Fatalf("receipt after a restart: %+v, %v", ack, err)
	}
	wantBalance(t, r2.client, id, api.Balance{Worker: id, Earned: earned + perReceipt, Unpaid: perReceipt, Paid: earned})
}

func wantBalance(t *testing.T, cl *api.Client, id string, want api.Balance) {
	t.Helper()
	bs, err := cl.Balances(context.Background())
	if err != nil {
		t.Fatalf("balances: %v", err)
	}
	if len(bs) != 1 || bs[0] != want {
		t.Fatalf("balances %+v, want [%+v]", bs, want)
	}
}

func wantAllowlist(t *testing.T, cl *api.Client, hashes ...string) {
	t.Helper()
	imgs, err := cl.Allowlist(context.Background())
	if err != nil {
		t.Fatalf("allowlist: %v", err)
	}
	var got []string
	for _, im := range imgs {
		got = append(got, im.Hash)
	}
	if strings.Join(got, ",") != strings.Join(hashes, ",") {
		t.Fatalf("allowlist %q, want %q", got, hashes)
	}
}

func wantDashboard(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("GET / answered %d %q: %.200s", resp.StatusCode, ct, body)
	}
	if !bytes.Contains(body, []byte("Cocoon registry")) {
		t.Fatalf("GET /: no title in %.200s", body)
	}
}

// TestBadConfig: files the config names but that are missing or wrong
// stop New with an error naming the file.
func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(f *fixture) error
		is    error  // what the error wraps
		says  string // part of its message
	}{
		{"missing policy", func(f *fixture) error { return os.Remove(filepath.Join(f.dir, "policy.json")) }, fs.ErrNotExist, "policy.json"},
		{"bad policy", func(f *fixture) error {
			return os.WriteFile(filepath.Join(f.dir, "policy.json"), []byte(`{"schema": "cocoon-policy/v1"}`), 0o600)
		}, nil, "neither image_hashes nor measurements"},
		{"missing simulator root", func(f *fixture) error { return os.Remove(filepath.Join(f.dir, "sim-root.pem")) }, config.ErrConfig, "sim-root.pem"},
		{"simulator root not PEM", func(f *fixture) error {
			return os.WriteFile(filepath.Join(f.dir, "sim-root.pem"), []byte("not a certificate"), 0o600)
		}, config.ErrConfig, "no PEM CERTIFICATE"},
		{"short admin token", func(f *fixture) error {
			return os.WriteFile(filepath.Join(f.dir, "admin.token"), []byte("short\n"), 0o600)
		}, config.ErrConfig, "want at least 32"},
		{"bad wallet key", func(f *fixture) error {
			return os.WriteFile(filepath.Join(f.dir, "hot-wallet.key"), []byte("nothex\n"), 0o600)
		}, config.ErrConfig, "hot-wallet.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if err := tc.spoil(f); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(f.config)
			if err != nil {
				t.Fatal(err)
			}
			c := &clock{t: t0}
			svc, err := service.New(context.Background(), cfg, service.Options{Now: c.Now, Rand: bytes.NewReader(make([]byte, 32)), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil {
				svc.Close()
				t.Fatal("New succeeded")
			}
			if (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want one wrapping %v that says %q", err, tc.is, tc.says)
			}
		})
	}
}
