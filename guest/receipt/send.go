package receipt

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Submitter hands a batch to the registry and returns the highest Seq it
// now holds (every receipt of this store up to it). The registry must
// answer a batch it already holds with the same acknowledgement: sending
// is at least once, its effect exactly once.
type Submitter interface {
	Submit(ctx context.Context, batch []Signed) (ackedThrough uint64, err error)
}

// Clock is the sender's time source.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

// Sender moves receipts from a Store to the registry in batches.
type Sender struct {
	Store  *Store
	Submit Submitter
	Clock  Clock
	Log    *slog.Logger // nil: slog.Default()
	// Batch is the most receipts per submission (0: 256).
	Batch int
	// Interval is the wait between rounds when all is sent (0: 10s).
	Interval time.Duration
	// MaxBackoff bounds the wait after failures (0: 5 min).
	MaxBackoff time.Duration
}

// Flush submits batches until nothing is pending or a submission fails.
func (s *Sender) Flush(ctx context.Context) error {
	n := s.Batch
	if n <= 0 {
		n = 256
	}
	for {
		batch := s.Store.Pending(n)
		if len(batch) == 0 {
			return nil
		}
		through, err := s.Submit.Submit(ctx, batch)
		if err != nil {
			return fmt.Errorf("receipt: submit %d receipts (seq %d..%d): %w", len(batch), batch[0].Receipt.Seq, batch[len(batch)-1].Receipt.Seq, err)
		}
		if through < batch[0].Receipt.Seq {
			return fmt.Errorf("%w: the registry acknowledged through %d, the batch starts at %d", ErrAck, through, batch[0].Receipt.Seq)
		}
		if err := s.Store.Ack(through); err != nil {
			return err
		}
	}
}

// Run flushes every Interval, backing off after failures, until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	every, maxWait := s.Interval, s.MaxBackoff
	if every <= 0 {
		every = 10 * time.Second
	}
	if maxWait <= 0 {
		maxWait = 5 * time.Minute
	}
	wait := every
	for {
		if err := s.Flush(ctx); err != nil {
			wait = min(wait*2, maxWait)
			log.Warn("receipts not delivered; will retry", "err", err, "pending", s.Store.Len(), "retry_in", wait)
		} else {
			wait = every
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Clock.After(wait):
		}
	}
}
