package client

import (
	"context"
	"errors"
	"fmt"
)

// failover runs try on the ranked verified workers for model, in turn,
// until one succeeds or a failure is final (package documentation,
// "Failover"). try reports delivered once anything of the answer reached
// the caller: from then on its failure is returned as it is, never
// retried. A refusal of the request itself (ErrRequest: 4xx but 429) is
// final too. It returns the number of workers tried.
func (c *Client) failover(ctx context.Context, model string, try func(w *Checked) (delivered bool, err error)) (int, error) {
	list, err := c.verified(ctx)
	if err != nil {
		return 0, err
	}
	cands := Rank(list, model)
	if len(cands) == 0 {
		return 0, noWorker(list, model)
	}
	var errs []error
	for i := range cands {
		w := &cands[i]
		delivered, err := try(w)
		switch {
		case err == nil:
			return i + 1, nil
		case delivered || ctx.Err() != nil || errors.Is(err, ErrRequest):
			return i + 1, err
		}
		c.log().Warn("worker failed before answering; trying the next verified worker",
			"worker", short(w.Info.ID), "endpoint", w.Info.Endpoint, "attempt", i+1, "of", len(cands), "err", err)
		errs = append(errs, err)
	}
	// Every candidate failed: list again next time rather than retrying
	// the same ones for ListTTL.
	c.Refresh()
	return len(cands), fmt.Errorf("%w: all %d verified workers failed: %w", ErrWorker, len(cands), errors.Join(errs...))
}
