package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/registry/market"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

func TestWorkersList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.register(fxWorker)
	reg := e.registration(fxWorker2)
	reg.Models = []string{otherModel}
	if _, err := e.cl.Register(ctx, fxWorker2.der(), fxWorker2.key, reg); err != nil {
		t.Fatal(err)
	}
	all, err := e.cl.Workers(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("%d workers, %v", len(all), err)
	}
	tiny, err := e.cl.Workers(ctx, model)
	if err != nil || len(tiny) != 1 || tiny[0].ID != fxWorker.id {
		t.Fatalf("%+v %v", tiny, err)
	}
	none, err := e.cl.Workers(ctx, "nobody serves this")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("%+v %v", none, err)
	}

	// A client re-verifies a listed worker on its own: the certificate
	// from the list, the policy and simulator root from /v1/policy.
	pol, err := e.cl.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(pol.SimRoot)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse(bytes.NewReader(pol.TDXPolicy))
	if err != nil {
		t.Fatal(err)
	}
	v := &ratls.Verifier{Evidence: map[attest.Kind]ratls.EvidenceVerifier{attest.Sim: &ratls.SimVerifier{Root: root, Policy: p}}, Now: e.clock.Now}
	if _, err := v.Verify(tiny[0].Certificate); err != nil {
		t.Fatalf("client-side verification: %v", err)
	}

	// Statuses: silent for 3 intervals is offline; a heartbeat brings it
	// back; past the certificate's end it is expired.
	e.clock.Add(90 * time.Second)
	if w, _ := e.cl.Worker(ctx, fxWorker.id); w.Status != StatusOffline {
		t.Fatalf("status %q", w.Status)
	}
	if _, err := e.cl.Heartbeat(ctx, fxWorker.key, Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	if w, _ := e.cl.Worker(ctx, fxWorker.id); w.Status != StatusAttested {
		t.Fatalf("status %q", w.Status)
	}
	e.clock.Set(t0.Add(time.Hour + time.Second))
	if w, _ := e.cl.Worker(ctx, fxWorker.id); w.Status != StatusExpired {
		t.Fatalf("status %q", w.Status)
	}

	_, err = e.cl.Worker(ctx, fxWorkerUnknownID)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	_, err = e.cl.Worker(ctx, "not-an-id")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("malformed: %v", err)
	}
}

const fxWorkerUnknownID = "0000000000000000000000000000000000000000000000000000000000000000"

func TestPrices(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pr, err := e.cl.Prices(ctx)
	if err != nil || len(pr.Prices) != 2 || pr.WindowS != 3600 {
		t.Fatalf("%+v %v", pr, err)
	}
	// No live worker: scarce, max.
	if p := pr.Prices[1]; p.Model != model || p.Price != maxPrice || p.LiveWorkers != 0 || p.Base != basePrice {
		t.Fatalf("%+v", p)
	}
	e.register(fxWorker)
	pr, _ = e.cl.Prices(ctx)
	if p := pr.Prices[1]; p.Price != minPrice || p.LiveWorkers != 1 { // no demand
		t.Fatalf("%+v", p)
	}
	// Demand at the target utilisation of one worker: base.
	params := e.srv.mkt.Price
	target := params.CapacityPerWorker * params.TargetBP / 10000
	if _, err := e.cl.SubmitReceipts(ctx, fxWorker.id, []receipt.Signed{fxWorker.receipt(t, 1, model, target, 0, t0.Add(30*time.Second))}); err != nil {
		t.Fatal(err)
	}
	pr, _ = e.cl.Prices(ctx)
	if p := pr.Prices[1]; p.Price != basePrice || p.DemandTokens != target {
		t.Fatalf("%+v", p)
	}
	// Demand older than the window no longer counts.
	e.clock.Add(time.Hour)
	if _, err := e.cl.Heartbeat(ctx, fxWorker.key, Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	pr, _ = e.cl.Prices(ctx)
	if p := pr.Prices[1]; p.DemandTokens != 0 {
		t.Fatalf("%+v", p)
	}
}

// Cached prices are reused for PriceTTL, and recomputed after a price change.
func TestPriceCache(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.PriceTTL = time.Minute })
	ctx := context.Background()
	pr, _ := e.cl.Prices(ctx)
	if pr.Prices[1].Price != maxPrice {
		t.Fatalf("%+v", pr.Prices[1])
	}
	e.register(fxWorker) // a registration invalidates
	pr, _ = e.cl.Prices(ctx)
	if pr.Prices[1].Price != minPrice {
		t.Fatalf("%+v", pr.Prices[1])
	}
	if _, err := e.cl.SubmitReceipts(ctx, fxWorker.id, []receipt.Signed{fxWorker.receipt(t, 1, model, 1e9, 0, t0.Add(30*time.Second))}); err != nil {
		t.Fatal(err)
	}
	pr, _ = e.cl.Prices(ctx)
	if pr.Prices[1].Price != minPrice {
		t.Fatalf("cached: %+v", pr.Prices[1])
	}
	e.clock.Add(time.Minute)
	pr, _ = e.cl.Prices(ctx)
	if pr.Prices[1].Price != maxPrice {
		t.Fatalf("after the TTL: %+v", pr.Prices[1])
	}
	if err := e.cl.SetPrice(ctx, model, SetPriceRequest{Base: 1, Min: 1, Max: 2}); err != nil {
		t.Fatal(err)
	}
	pr, _ = e.cl.Prices(ctx)
	if pr.Prices[1].Price != 2 {
		t.Fatalf("after SetPrice: %+v", pr.Prices[1])
	}
}

func TestPolicy(t *testing.T) {
	e := newEnv(t)
	p, err := e.cl.Policy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ImageHashes) != 1 || p.ImageHashes[0] != fxWorker.image || len(p.Models) != 2 || !p.AllowSimulated ||
		len(p.EvidenceKinds) != 1 || p.EvidenceKinds[0] != "sim" || len(p.SimRoot) == 0 || p.VTPMPolicy != nil {
		t.Fatalf("%+v", p)
	}
	e = newEnv(t, func(s *Server) {
		s.Policy = &policy.Policy{}
		s.VTPM = &ratls.VTPMPolicy{AllowAnyAK: true, PCRSets: []ratls.PCRSet{{4: {1}}}}
	})
	p, err = e.cl.Policy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p.AllowSimulated || p.SimRoot != nil || len(p.EvidenceKinds) != 1 || p.EvidenceKinds[0] != "vtpm" || p.VTPMPolicy == nil {
		t.Fatalf("%+v", p)
	}
}

func TestStatus(t *testing.T) {
	p := market.DefaultReputationParams()
	reg, exp := t0, t0.Add(time.Hour)
	for _, c := range []struct {
		now, seen time.Time
		want      string
	}{
		{t0, time.Time{}, StatusAttested},
		{t0.Add(89 * time.Second), time.Time{}, StatusAttested},
		{t0.Add(90 * time.Second), time.Time{}, StatusOffline},
		{t0.Add(100 * time.Second), t0.Add(20 * time.Second), StatusAttested},
		{t0.Add(30 * time.Minute), t0.Add(time.Minute), StatusOffline},
		{exp, exp, StatusAttested}, // NotAfter is inside the validity
		{exp.Add(time.Second), exp, StatusExpired},
	} {
		w := &store.Worker{RegisteredAt: reg, CertExpires: exp, Stats: store.Stats{LastSeen: c.seen}}
		if got := Status(w, c.now, p); got != c.want {
			t.Errorf("now %v, seen %v: %s, want %s", c.now.Sub(t0), c.seen, got, c.want)
		}
	}
}

// gatedStore blocks Usage (the expensive sum behind the market) while a
// gate is set, and says when a computation has entered it.
type gatedStore struct {
	store.Store
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedStore) Usage(ctx context.Context, model string, since time.Time) (int64, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.entered <- struct{}{}
		<-gate
	}
	return g.Store.Usage(ctx, model, since)
}

// While one request recomputes an expired market, others get the expired
// one at once instead of queueing behind the sum; after an invalidation
// (a price change) nobody gets the old market.
func TestPriceCacheServesExpiredWhileRecomputing(t *testing.T) {
	var g *gatedStore
	e := newEnv(t, func(s *Server) {
		g = &gatedStore{Store: s.Store, entered: make(chan struct{}, 16)}
		s.Store, s.PriceTTL = g, time.Minute
	})
	ctx := context.Background()
	first, err := e.srv.market(ctx, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	now := e.clock.Now()
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()

	type answer struct {
		m   map[string]PriceInfo
		err error
	}
	ask := func() <-chan answer {
		ch := make(chan answer, 1)
		go func() { m, err := e.srv.market(ctx, now); ch <- answer{m, err} }()
		return ch
	}
	refresher := ask()
	<-g.entered // the refresh is inside the sum
	select {
	case a := <-ask():
		if a.err != nil || !reflect.DeepEqual(a.m, first) {
			t.Fatalf("while recomputing: %v %+v, want the expired market", a.err, a.m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request queued behind the recomputation")
	}

	e.srv.prices.invalidate()
	waiter := ask()
	select {
	case a := <-waiter:
		t.Fatalf("after invalidate a request got %+v without waiting", a)
	case <-time.After(100 * time.Millisecond):
	}
	g.mu.Lock()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
	for _, ch := range []<-chan answer{refresher, waiter} {
		if a := <-ch; a.err != nil {
			t.Fatal(a.err)
		}
	}
}
