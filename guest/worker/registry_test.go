package worker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/hostlink/hostlinktest"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/gateway"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/store"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// t0 is when the tests' worlds start: the worker's and the registry's
// clocks are one fake clock, so certificates, signed timestamps and
// receipts agree.
var t0 = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

const payoutAddr = "EQD4FPq-PRDieyQKkizFTRtSDyucUIqrj0v_zXJmqaDp6_0t"

// syncBuffer is a log the test reads while the worker writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// eventually polls cond (which may advance the fake clock) until it holds;
// the real-time bound is on a hang, not a timing assertion.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func simRoot(t *testing.T, seed byte) *x509.Certificate {
	t.Helper()
	s, err := sim.New(sim.Options{Seed: bytes.Repeat([]byte{seed}, sim.SeedSize)})
	if err != nil {
		t.Fatal(err)
	}
	return s.Root()
}

// testRegistry is a registry in-process on a fresh SQLite store, on the
// test's clock, trusting the simulator root it is given and pricing the
// test model. down makes it drop every connection unanswered.
type testRegistry struct {
	st            store.Store
	cl            *wire.Client
	down          atomic.Bool
	registrations atomic.Int64
}

func newRegistry(t *testing.T, clk *hostlinktest.Clock, root *x509.Certificate) *testRegistry {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SetPrice(ctx, store.Price{Model: "cocoon-test", Base: 2_000_000, Min: 500_000, Max: 8_000_000}); err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Store: st, Now: clk.Now, Log: quiet(), AdminToken: "admin-token",
		Policy: &policy.Policy{AllowSimulated: true}, SimRoot: root, PriceTTL: -1}
	r := &testRegistry{st: st}
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && req.URL.Path == "/v1/workers" {
			r.registrations.Add(1)
		}
		if r.down.Load() {
			c, _, err := rw.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		h.ServeHTTP(rw, req)
	}))
	t.Cleanup(ts.Close)
	r.cl = &wire.Client{BaseURL: ts.URL, Token: "admin-token", Now: clk.Now}
	return r
}

// allow allowlists the image the simulator measured.
func (r *testRegistry) allow(t *testing.T, s *sim.Simulator) {
	t.Helper()
	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	h := m.ImageHash()
	if err := r.st.AllowImage(context.Background(), store.AllowedImage{Hash: hex.EncodeToString(h[:]), Note: "test", Added: t0}); err != nil {
		t.Fatal(err)
	}
}

func (r *testRegistry) worker(t *testing.T, id string) *wire.WorkerInfo {
	t.Helper()
	info, err := r.cl.Worker(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// servingWorker is a worker serving on loopback under the fake clock.
type servingWorker struct {
	w    *Worker
	sim  *sim.Simulator
	clk  *hostlinktest.Clock
	log  *syncBuffer
	addr string
	done chan error
	stop context.CancelFunc
}

func startWorker(t *testing.T, reg *testRegistry, clk *hostlinktest.Clock, mutate func(*Config)) *servingWorker {
	t.Helper()
	cfg := testConfig(t, "dev")
	cfg.Registry = &Registry{URL: reg.cl.BaseURL, Payout: payoutAddr, Endpoint: "worker.test:8443", Price: 1_000_000}
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sw := &servingWorker{clk: clk, log: &syncBuffer{}, done: make(chan error, 1)}
	var err error
	sw.w, err = New(context.Background(), cfg, Deps{Open: simOnly(&sw.sim), Now: clk.Now, After: clk.After,
		Logger: slog.New(slog.NewTextHandler(sw.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.w.Close)
	reg.allow(t, sw.sim)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sw.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	sw.stop = cancel
	go func() { sw.done <- sw.w.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-sw.done
	})
	return sw
}

// chat makes a completion over RA-TLS, verified as a client of a dev
// registry would.
func (sw *servingWorker) chat(t *testing.T) {
	t.Helper()
	m, err := sw.sim.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	pol := &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{m.ImageHash()}}
	v := &ratls.Verifier{Now: sw.clk.Now, Evidence: map[attest.Kind]ratls.EvidenceVerifier{attest.Sim: &ratls.SimVerifier{Root: sw.sim.Root(), Policy: pol}}}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ratls.ClientConfig(v)}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	body := `{"model":"cocoon-test","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8,"temperature":0}`
	resp, err := client.Post("https://"+sw.addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

func (sw *servingWorker) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-sw.done:
		t.Fatalf("Serve returned %v", err)
	default:
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestRegistryJoin is a worker's life in a registry: it registers with its
// endpoint, payout and price, heartbeats with the counts of what it
// served, delivers its receipts (the registry credits them), re-registers
// its renewed certificate, and drops the journalled receipts of a
// previous key the registry never knew instead of stalling on them.
func TestRegistryJoin(t *testing.T) {
	clk := hostlinktest.NewClock(t0)
	reg := newRegistry(t, clk, simRoot(t, 7))
	ctx := context.Background()

	// A previous process (another key) left a receipt in the journal.
	var receiptsDir string
	sw := startWorker(t, reg, clk, func(c *Config) {
		receiptsDir = c.ReceiptsDir
		old, err := receipt.Open(receiptsDir)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		oldKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
		if _, err := old.Append(receipt.Receipt{Worker: hex.EncodeToString(oldKey.Public().(ed25519.PublicKey)), Request: "r-old", Model: "cocoon-test",
			Usage: receipt.Usage{Prompt: 1, Completion: 1}, Start: t0.UnixMilli(), End: t0.UnixMilli(), Commitment: strings.Repeat("ab", 32)}, oldKey); err != nil {
			t.Fatal(err)
		}
	})
	w := sw.w
	eventually(t, "registration", func() bool { return closed(w.Registered()) })
	if sw.w.ID() != wire.WorkerID(w.PublicKey()) || len(w.ID()) != 64 {
		t.Errorf("ID %q", w.ID())
	}
	list, err := reg.cl.Workers(ctx, "cocoon-test")
	if err != nil || len(list) != 1 {
		t.Fatalf("workers %+v, %v", list, err)
	}
	if got := list[0]; got.ID != w.ID() || got.Endpoint != "worker.test:8443" || got.Payout != payoutAddr || got.Price != 1_000_000 || got.Status != wire.StatusAttested {
		t.Errorf("listed as %+v", got)
	}
	first := list[0].CertExpires
	// The first heartbeat goes out right after the registration.
	eventually(t, "the first heartbeat", func() bool { return reg.worker(t, w.ID()).Heartbeats >= 1 })

	sw.chat(t)
	eventually(t, "the receipt credited and a heartbeat counting it", func() bool {
		clk.Advance(5 * time.Second)
		info := reg.worker(t, w.ID())
		bal, err := reg.st.Balance(ctx, w.ID())
		if err != nil {
			t.Fatal(err)
		}
		return info.Served == 1 && bal.Earned > 0 && w.Receipts().Len() == 0
	})
	if info := reg.worker(t, w.ID()); info.Failed != 0 {
		t.Errorf("failed %d, want 0", info.Failed)
	}
	if !strings.Contains(sw.log.String(), "dropping receipts of a previous worker key") {
		t.Errorf("the old key's receipt was not reported dropped:\n%s", sw.log)
	}

	// Renewal at half the certificate's validity registers the new one.
	eventually(t, "the renewed certificate registered", func() bool {
		clk.Advance(time.Minute)
		return reg.worker(t, w.ID()).CertExpires.After(first)
	})
	if n := reg.registrations.Load(); n < 2 {
		t.Errorf("%d registrations, want the first and the renewal's", n)
	}
	if l := sw.log.String(); strings.Contains(l, "refused") || strings.Contains(l, "unreachable") {
		t.Errorf("unexpected failures logged:\n%s", l)
	}
	sw.running(t)

	// At shutdown, receipts still journalled are flushed.
	sw.chat(t)
	sw.stop()
	if err := <-sw.done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
	sw.done <- nil // for the cleanup
	if n := w.Receipts().Len(); n != 0 {
		t.Errorf("%d receipts left after the shutdown flush", n)
	}
	if rs, err := reg.st.Receipts(ctx, w.ID(), 0, 0); err != nil || len(rs) != 2 {
		t.Errorf("the registry holds %d receipts of the worker (%v), want 2", len(rs), err)
	}
}

// A registry that refuses the worker (it does not trust this simulator)
// is logged with its reason and asked again slowly; the worker serves on.
func TestRegistryRefuses(t *testing.T) {
	clk := hostlinktest.NewClock(t0)
	reg := newRegistry(t, clk, simRoot(t, 8))
	sw := startWorker(t, reg, clk, nil)
	eventually(t, "the refusal logged", func() bool { return strings.Contains(sw.log.String(), "refused this worker") })
	l := sw.log.String()
	if !strings.Contains(l, "status=403") || !strings.Contains(l, "code=attestation_refused") || !strings.Contains(l, "reason=") {
		t.Errorf("refusal logged without the registry's reason:\n%s", l)
	}
	sw.chat(t)
	// The retry comes between 2.5 and 5 minutes later, not sooner.
	clk.Advance(2 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	if n := reg.registrations.Load(); n != 1 {
		t.Errorf("%d registrations within 2 minutes of a refusal, want 1", n)
	}
	eventually(t, "a second attempt", func() bool {
		clk.Advance(30 * time.Second)
		return reg.registrations.Load() >= 2
	})
	if closed(sw.w.Registered()) {
		t.Error("Registered closed by a refusal")
	}
	sw.running(t)
}

// A registry that is down is retried with a growing backoff; the worker
// registers once it is back.
func TestRegistryDown(t *testing.T) {
	clk := hostlinktest.NewClock(t0)
	reg := newRegistry(t, clk, simRoot(t, 7))
	reg.down.Store(true)
	sw := startWorker(t, reg, clk, nil)
	eventually(t, "three attempts", func() bool {
		clk.Advance(time.Second)
		return reg.registrations.Load() >= 3
	})
	if !strings.Contains(sw.log.String(), "registry unreachable") || closed(sw.w.Registered()) {
		t.Errorf("down registry: registered %v, log:\n%s", closed(sw.w.Registered()), sw.log)
	}
	reg.down.Store(false)
	eventually(t, "registration once the registry is back", func() bool {
		clk.Advance(5 * time.Second)
		return closed(sw.w.Registered())
	})
	if _, err := reg.cl.Worker(context.Background(), sw.w.ID()); err != nil {
		t.Error(err)
	}
	sw.running(t)
}

func TestBeatStats(t *testing.T) {
	var s beatStats
	for _, r := range []struct {
		status int
		ms     int
	}{{200, 30}, {200, 10}, {200, 20}, {200, 40}, {500, 1}, {429, 1}, {400, 1}, {499, 1}} {
		s.add(gatewayRecord(r.status, time.Duration(r.ms)*time.Millisecond))
	}
	c := s.take()
	if c.served != 4 || c.failed != 2 || c.median() != 25 {
		t.Errorf("served %d failed %d median %v, want 4 2 25", c.served, c.failed, c.median())
	}
	if s.take().served != 0 {
		t.Error("take did not reset")
	}
	s.add(gatewayRecord(200, 5*time.Millisecond))
	s.restore(c)
	if c2 := s.take(); c2.served != 5 || c2.failed != 2 || c2.median() != 20 {
		t.Errorf("after restore: served %d failed %d median %v", c2.served, c2.failed, c2.median())
	}
	if (beatCounts{}).median() != 0 {
		t.Error("median of nothing")
	}
}

func gatewayRecord(status int, latency time.Duration) gateway.Record {
	return gateway.Record{Status: status, Start: t0, End: t0.Add(latency)}
}

func TestJitter(t *testing.T) {
	w := &Worker{deps: Deps{Rand: bytes.NewReader(bytes.Repeat([]byte{0xff}, 64))}}
	for _, d := range []time.Duration{time.Second, time.Minute} {
		if j := w.jitter(d); j < d/2 || j >= d {
			t.Errorf("jitter(%v) = %v, want [%v, %v)", d, j, d/2, d)
		}
	}
	w.deps.Rand = bytes.NewReader(nil)
	if j := w.jitter(time.Second); j != time.Second {
		t.Errorf("jitter without randomness = %v", j)
	}
}

func TestSimSeedFile(t *testing.T) {
	seed := bytes.Repeat([]byte{0x42}, sim.SeedSize)
	want, err := sim.New(sim.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sim.seed")
	if err := os.WriteFile(file, []byte(hex.EncodeToString(seed)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the same root at every start
		cfg := testConfig(t, "dev")
		cfg.Attestation, cfg.SimSeedFile = "sim", file
		w, err := New(context.Background(), cfg, Deps{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.provider.(*sim.Simulator).Root(); !got.Equal(want.Root()) {
			t.Error("the simulator's root is not the seed's")
		}
		w.Close()
	}
	for _, bad := range []string{"", "zz", hex.EncodeToString(seed[:31])} {
		if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, "dev")
		cfg.Attestation, cfg.SimSeedFile = "sim", file
		if _, err := New(context.Background(), cfg, Deps{Logger: quiet()}); !errors.Is(err, ErrConfig) {
			t.Errorf("seed %q: %v, want ErrConfig", bad, err)
		}
	}
	cfg := testConfig(t, "dev")
	cfg.Attestation, cfg.SimSeedFile = "sim", filepath.Join(t.TempDir(), "none")
	if _, err := New(context.Background(), cfg, Deps{Logger: quiet()}); !errors.Is(err, ErrConfig) {
		t.Errorf("missing seed file: %v", err)
	}
}

func TestConfigRegistry(t *testing.T) {
	const model = `"model":{"id":"m","engine":"openai","upstream_url":"http://127.0.0.1:8000"}`
	doc := func(listen, registry string) string {
		return `{"schema":"cocoon-worker/v1","listen":"` + listen + `",` + model + `,"registry":` + registry + `}`
	}
	for _, tc := range []struct{ name, listen, registry string }{
		{"ftp url", ":8443", `{"url":"ftp://r.example","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1}`},
		{"no url", ":8443", `{"payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1}`},
		{"user info", ":8443", `{"url":"https://u:p@r.example","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1}`},
		{"query", ":8443", `{"url":"https://r.example/?token=x","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1}`},
		{"bad payout", ":8443", `{"url":"https://r.example","payout":"EQnotanaddress","endpoint":"w.example:8443","price":1}`},
		{"no payout", ":8443", `{"url":"https://r.example","endpoint":"w.example:8443","price":1}`},
		{"endpoint without port", ":8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","endpoint":"w.example","price":1}`},
		{"endpoint port 0", ":8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","endpoint":"w.example:0","price":1}`},
		{"no endpoint, listen without host", ":8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","price":1}`},
		{"no endpoint, listen on every address", "0.0.0.0:8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","price":1}`},
		{"no price", ":8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","endpoint":"w.example:8443"}`},
		{"negative payout_every_s", ":8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1,"payout_every_s":-1}`},
		{"heartbeat_s too long", ":8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1,"heartbeat_s":86400}`},
		{"unknown field", ":8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1,"tip":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseConfig(strings.NewReader(doc(tc.listen, tc.registry))); !errors.Is(err, ErrConfig) {
				t.Errorf("err = %v, want ErrConfig", err)
			}
		})
	}
	for _, tc := range []struct{ listen, registry, endpoint string }{
		{":8443", `{"url":"http://127.0.0.1:8080","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":1}`, "w.example:8443"},
		{"10.0.0.2:8443", `{"url":"https://r.example/api","payout":"` + payoutAddr + `","price":1,"min_payout":5,"payout_every_s":3600,"heartbeat_s":10}`, "10.0.0.2:8443"},
		{"w1.example:8443", `{"url":"https://r.example","payout":"` + payoutAddr + `","price":1}`, "w1.example:8443"},
	} {
		c, err := ParseConfig(strings.NewReader(doc(tc.listen, tc.registry)))
		if err != nil {
			t.Errorf("%s: %v", tc.registry, err)
			continue
		}
		if c.Endpoint() != tc.endpoint {
			t.Errorf("endpoint %q, want %q", c.Endpoint(), tc.endpoint)
		}
	}
}
