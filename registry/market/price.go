package market

import (
	"math/big"
	"time"
)

// PriceParams are the constants of Price (package documentation).
type PriceParams struct {
	// Window is how far back demand is counted.
	Window time.Duration
	// CapacityPerWorker is the tokens one worker is taken to serve in a
	// Window.
	CapacityPerWorker int64
	// TargetBP is the target utilisation in basis points (7000 = 70 %).
	TargetBP int64
	// ElasticityPct is how far the price moves, in percent of base, per
	// target's worth of utilisation above or below the target (100: twice
	// the target doubles the price). Negative counts as 0.
	ElasticityPct int64
}

// DefaultPriceParams are the documented defaults: demand over the last
// hour, 1,000 tokens/s per worker, 70 % target utilisation, elasticity
// 100 %.
func DefaultPriceParams() PriceParams {
	return PriceParams{
		Window:            time.Hour,
		CapacityPerWorker: 1000 * 3600,
		TargetBP:          7000,
		ElasticityPct:     100,
	}
}

// Price is the market price of a model, nanoton per 1M tokens, from its
// operator bounds, the demand over the window and the workers that serve
// it now (package documentation). Parameters that define no utilisation
// (capacity or target not positive) give base, clamped. When min > max,
// min wins: the operator's floor is what the worker was promised.
func Price(base, lo, hi uint64, demandTokens int64, liveWorkers int, p PriceParams) uint64 {
	if liveWorkers <= 0 {
		return clampU(hi, lo, hi)
	}
	if p.CapacityPerWorker <= 0 || p.TargetBP <= 0 {
		return clampU(base, lo, hi)
	}
	d := big.NewInt(max(demandTokens, 0))
	e := big.NewInt(max(p.ElasticityPct, 0))
	// tC = TargetBP × liveWorkers × CapacityPerWorker
	tC := new(big.Int).Mul(big.NewInt(p.TargetBP), big.NewInt(int64(liveWorkers)))
	tC.Mul(tC, big.NewInt(p.CapacityPerWorker))
	// num = 100·tC + E·(10,000·D − tC)
	dev := new(big.Int).Mul(d, big.NewInt(10000))
	dev.Sub(dev, tC)
	dev.Mul(dev, e)
	den := new(big.Int).Mul(tC, big.NewInt(100))
	num := new(big.Int).Add(den, dev)
	if num.Sign() <= 0 {
		return clampU(0, lo, hi)
	}
	x := new(big.Int).Mul(new(big.Int).SetUint64(base), num)
	x.Quo(x, den) // both positive: Quo is floor
	if !x.IsUint64() {
		return clampU(^uint64(0), lo, hi)
	}
	return clampU(x.Uint64(), lo, hi)
}

func clampU(v, lo, hi uint64) uint64 {
	if v > hi {
		v = hi
	}
	if v < lo {
		v = lo
	}
	return v
}
