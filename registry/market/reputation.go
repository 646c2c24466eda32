package market

import (
	"math"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/store"
)

// ReputationParams are the constants of Reputation (package documentation).
type ReputationParams struct {
	// HeartbeatInterval is how often a worker is expected to send a
	// heartbeat.
	HeartbeatInterval time.Duration
	// OfflineAfter is the silence after which recency is 0 and a worker is
	// offline; 0 means 3 × HeartbeatInterval.
	OfflineAfter time.Duration
	// LatencyTargetMS is the latency at or below which the latency term is 1.
	LatencyTargetMS float64
	// Weights of the heartbeat, recency, success and latency terms; they
	// need not sum to 1 (the score divides by their sum).
	WeightHeartbeat, WeightRecency, WeightSuccess, WeightLatency float64
}

// DefaultReputationParams are the documented defaults.
func DefaultReputationParams() ReputationParams {
	return ReputationParams{
		HeartbeatInterval: 30 * time.Second,
		LatencyTargetMS:   2000,
		WeightHeartbeat:   0.25,
		WeightRecency:     0.25,
		WeightSuccess:     0.35,
		WeightLatency:     0.15,
	}
}

// Offline is the silence after which a worker counts as offline.
func (p ReputationParams) Offline() time.Duration {
	if p.OfflineAfter > 0 {
		return p.OfflineAfter
	}
	return 3 * p.HeartbeatInterval
}

// Reputation is a worker's score in [0, 1] at now (package documentation).
// Parameters that make a term meaningless (a non-positive interval or
// latency target, negative weights) leave that term out rather than
// dividing by zero; with no positive weight at all the score is 0.
func Reputation(stats store.Stats, registeredAt, now time.Time, p ReputationParams) float64 {
	var sum, wsum float64
	add := func(w, v float64) {
		if w > 0 && !math.IsNaN(w) && !math.IsInf(w, 0) {
			sum += w * clamp01(v)
			wsum += w
		}
	}
	if p.HeartbeatInterval > 0 {
		add(p.WeightHeartbeat, heartbeatRatio(stats.Heartbeats, now.Sub(registeredAt), p.HeartbeatInterval))
		last := stats.LastSeen
		if last.IsZero() || last.Before(registeredAt) {
			last = registeredAt
		}
		add(p.WeightRecency, recency(now.Sub(last), p.HeartbeatInterval, p.Offline()))
	}
	add(p.WeightSuccess, successRatio(stats.Served, stats.Failed))
	if p.LatencyTargetMS > 0 {
		add(p.WeightLatency, latencyScore(stats.LatencyMS, p.LatencyTargetMS))
	}
	if wsum == 0 {
		return 0
	}
	return clamp01(sum / wsum)
}

func heartbeatRatio(beats int64, age, interval time.Duration) float64 {
	expected := int64(age / interval)
	if expected <= 0 {
		return 1
	}
	if beats < 0 {
		beats = 0
	}
	return math.Min(1, float64(beats)/float64(expected))
}

func recency(silence, interval, offline time.Duration) float64 {
	switch {
	case silence <= interval:
		return 1
	case silence >= offline || offline <= interval:
		return 0
	}
	return 1 - float64(silence-interval)/float64(offline-interval)
}

func successRatio(served, failed int64) float64 {
	served, failed = max(served, 0), max(failed, 0)
	if served+failed <= 0 { // none, or an overflowing sum
		return 1
	}
	return 1 - float64(failed)/(float64(served)+float64(failed))
}

func latencyScore(latency, target float64) float64 {
	if latency <= target || math.IsNaN(latency) {
		return 1
	}
	return target / latency
}

func clamp01(v float64) float64 {
	switch {
	case math.IsNaN(v) || v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}
