package client

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// Rank returns the verified workers that offer model ("" for any), best
// first. The order, every key a tie-break of the one before:
//
//  1. workers the registry calls "attested" before the others ("offline":
//     not heard from lately, likely unreachable; they stay as a last
//     resort for failover);
//  2. the lowest effective price, price × (2 − reputation): a worker of
//     reputation 1 costs its price, one of reputation 0 counts as costing
//     twice as much, so a reliable worker wins unless it asks more than
//     twice as much as an unknown one;
//  3. the lowest asking price;
//  4. the highest reputation;
//  5. the smallest ID, so equal workers always come in the same order.
//
// Status, price and reputation are the registry's word; they only order
// workers that were verified here, so a lying registry can steer a request
// to a worker of its liking, never to one that is not attested.
func Rank(checked []Checked, model string) []Checked {
	var out []Checked
	for _, c := range checked {
		if c.Verified() && c.Offers(model) {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Checked) int {
		ai, bi := &a.Info, &b.Info
		return cmp.Or(
			cmp.Compare(statusRank(ai.Status), statusRank(bi.Status)),
			cmp.Compare(effectivePrice(ai), effectivePrice(bi)),
			cmp.Compare(ai.Price, bi.Price),
			-cmp.Compare(reputation(ai), reputation(bi)),
			cmp.Compare(ai.ID, bi.ID),
		)
	})
	return out
}

// Pick is the best verified worker for model (Rank's first).
func Pick(checked []Checked, model string) (Checked, error) {
	r := Rank(checked, model)
	if len(r) == 0 {
		return Checked{}, noWorker(checked, model)
	}
	return r[0], nil
}

func statusRank(s string) int {
	if s == wire.StatusAttested {
		return 0
	}
	return 1
}

// reputation clamps the registry's score to [0, 1] (NaN is 0).
func reputation(w *wire.WorkerInfo) float64 {
	r := w.Reputation
	if math.IsNaN(r) || r < 0 {
		return 0
	}
	return min(r, 1)
}

func effectivePrice(w *wire.WorkerInfo) float64 {
	return float64(w.Price) * (2 - reputation(w))
}

// noWorker says why no worker can serve model.
func noWorker(checked []Checked, model string) error {
	listed, verified := 0, 0
	var reason error
	for i := range checked {
		c := &checked[i]
		if !c.Offers(model) {
			continue
		}
		listed++
		if c.Verified() {
			verified++
		} else if reason == nil {
			reason = c.Err
		}
	}
	what := "any model"
	if model != "" {
		what = fmt.Sprintf("model %q", model)
	}
	if reason != nil {
		return fmt.Errorf("%w for %s: %d listed, %d verified; worker %s: %w", ErrNoWorker, what, listed, verified, short(firstRefused(checked, model)), reason)
	}
	return fmt.Errorf("%w for %s: %d listed", ErrNoWorker, what, listed)
}

func firstRefused(checked []Checked, model string) string {
	for _, c := range checked {
		if c.Offers(model) && !c.Verified() {
			return c.Info.ID
		}
	}
	return ""
}

// Models is the sorted union of the models verified workers offer.
func Models(checked []Checked) []string {
	var out []string
	for _, c := range checked {
		if c.Verified() {
			out = append(out, c.Info.Models...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
