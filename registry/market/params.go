package market

// Params are all of the market's constants.
type Params struct {
	Reputation ReputationParams
	Price      PriceParams
}

// DefaultParams are the documented defaults.
func DefaultParams() Params {
	return Params{Reputation: DefaultReputationParams(), Price: DefaultPriceParams()}
}

// OrDefault fills what p leaves zero with the defaults, so that a config
// that sets one constant keeps the others. Weights are filled only when
// all four are zero: setting one weight on purpose must not bring the
// others back. ElasticityPct 0 also becomes the default: set it negative
// for a price that stays at base.
func (p Params) OrDefault() Params {
	d := DefaultParams()
	r := &p.Reputation
	if r.HeartbeatInterval == 0 {
		r.HeartbeatInterval = d.Reputation.HeartbeatInterval
	}
	if r.LatencyTargetMS == 0 {
		r.LatencyTargetMS = d.Reputation.LatencyTargetMS
	}
	if r.WeightHeartbeat == 0 && r.WeightRecency == 0 && r.WeightSuccess == 0 && r.WeightLatency == 0 {
		r.WeightHeartbeat, r.WeightRecency = d.Reputation.WeightHeartbeat, d.Reputation.WeightRecency
		r.WeightSuccess, r.WeightLatency = d.Reputation.WeightSuccess, d.Reputation.WeightLatency
	}
	q := &p.Price
	if q.Window == 0 {
		q.Window = d.Price.Window
	}
	if q.CapacityPerWorker == 0 {
		q.CapacityPerWorker = d.Price.CapacityPerWorker
	}
	if q.TargetBP == 0 {
		q.TargetBP = d.Price.TargetBP
	}
	if q.ElasticityPct == 0 {
		q.ElasticityPct = d.Price.ElasticityPct
	}
	return p
}
