package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/market"
)

const defaultPriceTTL = 10 * time.Second

// priceCache holds the last computed market: computing it sums the
// demand window's receipts, too much to do for every receipt batch.
//
// When the cached market has expired, the request that notices computes
// the next one; requests arriving meanwhile use the expired one rather than
// queue behind the sum (which grows with the receipts table), so receipt
// intake never waits for it. After invalidate (an operator changed a
// price) nobody uses the old market: they wait for the new one.
type priceCache struct {
	mu         sync.Mutex
	at         time.Time
	valid      bool
	gen        uint64 // bumped by invalidate: a computation begun before it is not kept
	refreshing bool
	prices     map[string]PriceInfo
	compute    sync.Mutex // one computation at a time
}

func (c *priceCache) invalidate() {
	c.mu.Lock()
	c.valid = false
	c.gen++
	c.mu.Unlock()
}

// market returns every priced model's market at now, at most PriceTTL old
// (or, while another request computes the next one, the expired one).
// The returned map is shared: read only.
func (s *Server) market(ctx context.Context, now time.Time) (map[string]PriceInfo, error) {
	ttl := s.PriceTTL
	if ttl == 0 {
		ttl = defaultPriceTTL
	}
	c := &s.prices
	fresh := func() bool { return c.valid && ttl > 0 && !now.Before(c.at) && now.Sub(c.at) < ttl }
	c.mu.Lock()
	switch {
	case fresh():
		m := c.prices
		c.mu.Unlock()
		return m, nil
	case c.valid && c.refreshing:
		m := c.prices
		c.mu.Unlock()
		return m, nil
	}
	c.refreshing = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.refreshing = false
		c.mu.Unlock()
	}()

	c.compute.Lock()
	defer c.compute.Unlock()
	c.mu.Lock()
	if fresh() { // computed while this request waited
		m := c.prices
		c.mu.Unlock()
		return m, nil
	}
	gen := c.gen
	c.mu.Unlock()
	m, err := s.computeMarket(ctx, now)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.prices, c.at, c.valid = m, now, true
	}
	c.mu.Unlock()
	return m, nil
}

func (s *Server) computeMarket(ctx context.Context, now time.Time) (map[string]PriceInfo, error) {
	prices, err := s.Store.Prices(ctx)
	if err != nil {
		return nil, err
	}
	ws, err := s.Store.Workers(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]int{}
	for i := range ws {
		if s.status(&ws[i], now) != StatusAttested {
			continue
		}
		for _, m := range ws[i].Models {
			live[m]++
		}
	}
	pp := s.mkt.Price
	out := make(map[string]PriceInfo, len(prices))
	for _, p := range prices {
		demand, err := s.Store.Usage(ctx, p.Model, now.Add(-pp.Window))
		if err != nil {
			return nil, err
		}
		out[p.Model] = PriceInfo{
			Model: p.Model, Base: p.Base, Min: p.Min, Max: p.Max,
			DemandTokens: demand, LiveWorkers: live[p.Model],
			Price: market.Price(p.Base, p.Min, p.Max, demand, live[p.Model], pp),
		}
	}
	return out, nil
}

// getPrices is GET /v1/prices.
func (s *Server) getPrices(w http.ResponseWriter, r *http.Request) error {
	now := s.now()
	m, err := s.market(r.Context(), now)
	if err != nil {
		return storeErr(err)
	}
	prices, err := s.Store.Prices(r.Context()) // for the store's model order
	if err != nil {
		return storeErr(err)
	}
	out := PricesResponse{Prices: []PriceInfo{}, WindowS: int64(s.mkt.Price.Window / time.Second), At: now.UTC()}
	for _, p := range prices {
		if pi, ok := m[p.Model]; ok {
			out.Prices = append(out.Prices, pi)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
