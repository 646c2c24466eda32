// Package market holds the registry's reputation and price formulas. They
// are pure functions of the books (registry/store) and a clock, so the
// registry, its dashboard and anyone auditing its books compute the same
// numbers.
//
// # Reputation
//
// Reputation scores a worker in [0, 1] from four terms, each in [0, 1]:
//
//	H  heartbeat ratio   min(1, heartbeats / expected), expected = floor(age / interval)
//	                     where age = now - registeredAt; 1 while expected is 0
//	R  recency           1 when now - lastSeen <= interval, 0 when >= OfflineAfter
//	                     (3 intervals by default), linear in between; lastSeen
//	                     is the registration time when the worker was never seen
//	S  success ratio     1 - failed / (served + failed); 1 when it reported no requests
//	L  latency           1 when latency <= target (or no latency reported),
//	                     target / latency above it
//
//	reputation = (wH·H + wR·R + wS·S + wL·L) / (wH + wR + wS + wL)
//
// Default weights (DefaultReputationParams): wH 0.25, wR 0.25, wS 0.35,
// wL 0.15; interval 30 s; latency target 2,000 ms. Failing requests weigh
// most because a client pays for them in time; being reachable comes next;
// latency least, because it depends on the model and prompt more than on
// the worker. A worker that just registered and has reported nothing
// scores 1: reputation is a reason to avoid a worker, not a toll to enter.
//
// # Price
//
// Prices are integer nanoton per 1,000,000 tokens. For one model, over the
// last Window:
//
//	D  demand            billable tokens of its receipts (store.Usage)
//	C  capacity          liveWorkers × CapacityPerWorker (tokens one worker
//	                     serves in a Window)
//	U  utilisation       D / C
//	T  target            TargetBP / 10,000
//	E  elasticity        ElasticityPct / 100
//
//	price = clamp(floor(base × (1 + E × (U - T) / T)), min, max)
//
// computed exactly in integers as
//
//	floor(base × (100·t·C + E%·(10,000·D - t·C)) / (100·t·C))   with t = TargetBP
//
// (a negative result is min). At the target utilisation the price is the
// base; with the default elasticity of 100 % it doubles at twice the target
// and halves at half of it. It never decreases when demand rises and never
// increases when workers join (for E ≥ 0), and with no live worker it is
// max: there is demand and nobody to serve it.
//
// # Credit
//
// A receipt credits its worker:
//
//	tokens = usage.prompt + usage.completion
//	amount = floor(tokens × min(asking price, market price) / 1,000,000)   nanoton
//
// Cached prompt tokens are part of prompt and reasoning tokens part of
// completion (guest/receipt), so they are not added again. The worker gets
// the lower of its own asking price and the market price: it can undercut
// the market, never overcharge it. The product is taken in 128 bits, so
// there is no rounding but the final floor.
package market
