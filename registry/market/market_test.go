package market

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

var t0 = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

func TestReputation(t *testing.T) {
	p := DefaultReputationParams()
	iv := p.HeartbeatInterval
	hour := t0.Add(-time.Hour) // registered an hour ago: 120 heartbeats expected
	for _, tc := range []struct {
		name  string
		stats store.Stats
		reg   time.Time
		p     *ReputationParams
		want  float64
	}{
		{"new worker", store.Stats{}, t0, nil, 1},
		{"perfect", store.Stats{LastSeen: t0, Heartbeats: 120, Served: 100, LatencyMS: 100}, hour, nil, 1},
		{"more heartbeats than expected", store.Stats{LastSeen: t0, Heartbeats: 500}, hour, nil, 1},
		{"half the heartbeats", store.Stats{LastSeen: t0, Heartbeats: 60}, hour, nil, 1 - 0.25*0.5},
		{"silent for 2 intervals", store.Stats{LastSeen: t0.Add(-2 * iv), Heartbeats: 120}, hour, nil, 1 - 0.25*0.5},
		{"offline", store.Stats{LastSeen: t0.Add(-3 * iv), Heartbeats: 120}, hour, nil, 0.75},
		{"never seen, registered long ago", store.Stats{}, hour, nil, 0.35 + 0.15},
		{"a quarter failed", store.Stats{LastSeen: t0, Heartbeats: 120, Served: 75, Failed: 25}, hour, nil, 1 - 0.35*0.25},
		{"all failed", store.Stats{LastSeen: t0, Heartbeats: 120, Failed: 10}, hour, nil, 0.65},
		{"twice the latency target", store.Stats{LastSeen: t0, Heartbeats: 120, LatencyMS: 4000}, hour, nil, 1 - 0.15*0.5},
		{"worst", store.Stats{LastSeen: t0.Add(-time.Hour), Failed: 1, LatencyMS: math.Inf(1)}, hour, nil, 0},
		{"negative counters", store.Stats{LastSeen: t0, Heartbeats: -5, Served: -1, Failed: -1}, hour, nil, 0.75},
		{"NaN latency", store.Stats{LastSeen: t0, Heartbeats: 120, LatencyMS: math.NaN()}, hour, nil, 1},
		{"success only", store.Stats{Served: 1, Failed: 1}, hour, &ReputationParams{WeightSuccess: 2}, 0.5},
		{"no weights", store.Stats{}, t0, &ReputationParams{}, 0},
		{"no interval: liveness left out", store.Stats{Served: 3, Failed: 1}, hour, &ReputationParams{WeightHeartbeat: 1, WeightSuccess: 1}, 0.75},
		{"custom offline", store.Stats{LastSeen: t0.Add(-2 * iv), Heartbeats: 120}, hour, &ReputationParams{HeartbeatInterval: iv, OfflineAfter: 5 * iv, WeightRecency: 1}, 0.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp := p
			if tc.p != nil {
				pp = *tc.p
			}
			got := Reputation(tc.stats, tc.reg, t0, pp)
			if math.Abs(got-tc.want) > 1e-9 || got < 0 || got > 1 {
				t.Errorf("Reputation = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPrice(t *testing.T) {
	p := DefaultPriceParams()
	c := p.CapacityPerWorker
	target := c * 7 / 10 // one worker at the target
	for _, tc := range []struct {
		name         string
		base, lo, hi uint64
		demand       int64
		live         int
		p            *PriceParams
		want         uint64
	}{
		{"at target", 1000, 100, 10000, target, 1, nil, 1000},
		{"no demand: half off with elasticity 100", 1000, 100, 10000, 0, 1, nil, 0 + 100}, // 1000×(1−1) = 0 → min
		{"half target", 1000, 100, 10000, target / 2, 1, nil, 500},
		{"twice target", 1000, 100, 10000, 2 * target, 1, nil, 2000},
		{"twice target, two workers: at target", 1000, 100, 10000, 2 * target, 2, nil, 1000},
		{"clamped to max", 1000, 100, 1500, 2 * target, 1, nil, 1500},
		{"no workers: max", 1000, 100, 10000, 0, 0, nil, 10000},
		{"negative demand is none", 1000, 100, 10000, -5, 1, nil, 100},
		{"floor", 999, 0, 10000, target + target/3, 1, nil, 999 * 4 / 3},
		{"elasticity 50 at 2T", 1000, 0, 10000, 2 * target, 1, &PriceParams{CapacityPerWorker: c, TargetBP: 7000, ElasticityPct: 50}, 1500},
		{"elasticity 0", 1000, 0, 10000, 5 * target, 1, &PriceParams{CapacityPerWorker: c, TargetBP: 7000}, 1000},
		{"no capacity: base", 1000, 0, 10000, 5 * target, 1, &PriceParams{TargetBP: 7000, ElasticityPct: 100}, 1000},
		{"min above max: min", 1000, 5000, 2000, target, 1, nil, 5000},
		{"huge demand saturates", math.MaxUint64, 0, math.MaxUint64, math.MaxInt64, 1, nil, math.MaxUint64},
		{"huge supply", 1000, 1, 10000, 1, math.MaxInt32, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp := p
			if tc.p != nil {
				pp = *tc.p
			}
			if got := Price(tc.base, tc.lo, tc.hi, tc.demand, tc.live, pp); got != tc.want {
				t.Errorf("Price = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPriceMonotone(t *testing.T) {
	p := DefaultPriceParams()
	p.CapacityPerWorker = 1000
	for live := 1; live <= 5; live++ {
		prev := uint64(0)
		for d := int64(0); d <= 20000; d += 37 {
			got := Price(12345, 10, 1_000_000, d, live, p)
			if got < prev {
				t.Fatalf("live %d: demand %d gives %d < %d", live, d, got, prev)
			}
			prev = got
			if next := Price(12345, 10, 1_000_000, d, live+1, p); next > got {
				t.Fatalf("demand %d: %d workers give %d > %d with %d", d, live+1, next, got, live)
			}
		}
	}
}

func TestCredit(t *testing.T) {
	u := func(p, c int64) receipt.Usage { return receipt.Usage{Prompt: p, Completion: c} }
	for _, tc := range []struct {
		name     string
		u        receipt.Usage
		ask, mkt uint64
		tokens   int64
		amount   uint64
		err      error
	}{
		{"market lower", u(600, 400), 5_000_000, 2_000_000, 1000, 2000, nil},
		{"ask lower", u(600, 400), 1_000_000, 2_000_000, 1000, 1000, nil},
		{"cached and reasoning not added", receipt.Usage{Prompt: 10, Cached: 5, Completion: 10, Reasoning: 10}, 1e9, 1e9, 20, 20000, nil},
		{"floor", u(1, 0), 999_999, 1e9, 1, 0, nil},
		{"zero", u(0, 0), 1e9, 1e9, 0, 0, nil},
		{"128-bit product", u(math.MaxInt64/2, 0), 1_000_000, 1_000_000, math.MaxInt64 / 2, math.MaxInt64 / 2, nil},
		{"amount overflows", u(math.MaxInt64, 0), math.MaxUint64, math.MaxUint64, 0, 0, ErrOverflow},
		{"tokens overflow", u(math.MaxInt64, 1), 1, 1, 0, 0, ErrOverflow},
		{"negative", u(-1, 0), 1, 1, 0, 0, ErrUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, amt, err := Credit(tc.u, tc.ask, tc.mkt)
			if !errors.Is(err, tc.err) || tok != tc.tokens || amt != tc.amount {
				t.Errorf("Credit = %d, %d, %v; want %d, %d, %v", tok, amt, err, tc.tokens, tc.amount, tc.err)
			}
		})
	}
}

func TestOrDefault(t *testing.T) {
	if got, want := (Params{}).OrDefault(), DefaultParams(); got != want {
		t.Fatalf("%+v, want %+v", got, want)
	}
	p := Params{Reputation: ReputationParams{WeightSuccess: 1}, Price: PriceParams{ElasticityPct: -1}}.OrDefault()
	if p.Reputation.WeightHeartbeat != 0 || p.Price.ElasticityPct != -1 || p.Price.Window != time.Hour {
		t.Fatalf("%+v", p)
	}
}

// Price is the documented formula, to within the floor.
func TestPriceFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		p := PriceParams{
			CapacityPerWorker: 1 + rng.Int64N(1e7),
			TargetBP:          1 + rng.Int64N(10000),
			ElasticityPct:     rng.Int64N(300),
		}
		base := uint64(rng.Int64N(1e10))
		lo, hi := uint64(0), uint64(math.MaxUint64)
		demand := rng.Int64N(1e9)
		live := 1 + rng.IntN(100)
		got := Price(base, lo, hi, demand, live, p)
		u := float64(demand) / (float64(live) * float64(p.CapacityPerWorker))
		tgt := float64(p.TargetBP) / 10000
		want := math.Max(0, float64(base)*(1+float64(p.ElasticityPct)/100*(u-tgt)/tgt))
		if math.Abs(float64(got)-want) > 1+want*1e-9 {
			t.Fatalf("Price(%d, %d demand, %d live, %+v) = %d, formula %f", base, demand, live, p, got, want)
		}
	}
}
