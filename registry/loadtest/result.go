package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// percentile is the nearest-rank p-th percentile of sorted: the smallest
// value with at least p % of the values at or below it.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := (len(sorted)*p + 99) / 100 // ceil(n × p / 100)
	return sorted[max(k, 1)-1]
}

// checkBooks compares each worker's earned balance in the store with what
// its acknowledged receipts are worth, and sets r.Credited.
func checkBooks(ctx context.Context, reg *registry, ws []*worker, acked []int64, r *Result) error {
	bals, err := reg.st.Balances(ctx)
	if err != nil {
		return err
	}
	earned := map[string]uint64{}
	for _, b := range bals {
		earned[b.Worker] = b.Earned
		r.Credited += b.Earned
	}
	var errs []error
	var want uint64
	for i, w := range ws {
		v := uint64(acked[i]) * perReceipt
		want += v
		if got := earned[w.id]; got != v {
			errs = append(errs, fmt.Errorf("%w: worker %d earned %d nanoton, want %d receipts × %d = %d", ErrBooks, i, got, acked[i], perReceipt, v))
		}
	}
	if r.Credited != want {
		errs = append(errs, fmt.Errorf("%w: the store credited %d nanoton in all, want %d", ErrBooks, r.Credited, want))
	}
	return errors.Join(errs...)
}

// String is one line for people.
func (r *Result) String() string {
	return fmt.Sprintf("registry intake (SQLite, %d workers × %d receipts/POST, %.1f s): %.0f receipts/s, latency p50 %s p90 %s p99 %s max %s, %d requests, %d receipts, %d errors, credited %d nanoton",
		r.Workers, r.Batch, r.Duration.Seconds(), r.ReceiptsPerSec, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max),
		r.Requests, r.Receipts, r.Errors, r.Credited)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// Check is nil when the run took at least minRate receipts/s with a p99
// of at most maxP99 and no errors; otherwise it says each miss (ErrTarget).
func (r *Result) Check(minRate float64, maxP99 time.Duration) error {
	var errs []error
	if r.ReceiptsPerSec < minRate {
		errs = append(errs, fmt.Errorf("%w: %.0f receipts/s, want at least %.0f", ErrTarget, r.ReceiptsPerSec, minRate))
	}
	if r.P99 > maxP99 {
		errs = append(errs, fmt.Errorf("%w: p99 %s, want at most %s", ErrTarget, ms(r.P99), ms(maxP99)))
	}
	if r.Errors != 0 {
		errs = append(errs, fmt.Errorf("%w: %d errors, want 0", ErrTarget, r.Errors))
	}
	return errors.Join(errs...)
}
