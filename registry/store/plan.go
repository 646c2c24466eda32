package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// queryIDModulus: a highload-v3 query id is 23 bits (a 13-bit shift and a
// 10-bit bit number).
const queryIDModulus = 1 << 23

// PlanBatch plans the next payout batch (see Store). A worker is due when
// its unpaid balance is positive and at least its threshold (its
// MinPayout, or p.MinPayout when that is 0), and its last batch that did
// not expire was planned at least its schedule (PayoutEvery, or p.Every)
// before p.Now. Workers without a payout address are skipped: there is
// nowhere to send their money.
//
// On PostgreSQL the query-id counter row is locked first, so planners on
// several registries take turns; balances are then changed relative to
// their current value, so credits committed meanwhile stay unpaid and are
// not lost.
func (s *sqlStore) PlanBatch(ctx context.Context, p PlanParams) (*Batch, error) {
	if p.Max <= 0 {
		return nil, fmt.Errorf("plan batch: max %d items, want > 0: %w", p.Max, ErrInvalid)
	}
	if p.Every < 0 {
		return nil, fmt.Errorf("plan batch: every %v, want >= 0: %w", p.Every, ErrInvalid)
	}
	minPayout, err := toInt64("plan batch: min payout", p.MinPayout)
	if err != nil {
		return nil, err
	}
	var b *Batch
	err = s.write(ctx, func(tx *sql.Tx) error {
		var err error
		b, err = s.planBatch(ctx, tx, p, minPayout)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (s *sqlStore) planBatch(ctx context.Context, tx *sql.Tx, p PlanParams, minPayout int64) (*Batch, error) {
	var qid int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'query_id'`+s.d.forUpdate).Scan(&qid); err != nil {
		return nil, fmt.Errorf("plan batch: query id counter: %w", err)
	}
	items, err := s.dueItems(ctx, tx, p, minPayout)
	if err != nil || len(items) == 0 {
		return nil, err
	}

	now := ms(p.Now)
	b := &Batch{
		QueryID:   uint32(qid % queryIDModulus),
		CreatedAt: fromMS(ms(p.CreatedAt)),
		State:     Planned,
		Items:     items,
		Updated:   fromMS(now),
	}
	err = tx.QueryRowContext(ctx, s.d.q(`INSERT INTO batches (query_id, created_ms, planned_ms, state, message, msg_hash,
			sends, fees, tx_hash, expire_reason, updated_ms)
		VALUES (?, ?, ?, 'planned', NULL, '', 0, 0, '', '', ?) RETURNING id`),
		int64(b.QueryID), ms(p.CreatedAt), now, now).Scan(&b.ID)
	if err != nil {
		return nil, fmt.Errorf("plan batch: insert: %w", err)
	}
	for _, it := range items {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO batch_items (batch_id, worker, address, amount) VALUES (?, ?, ?, ?)`),
			b.ID, it.Worker, it.Address, int64(it.Amount)); err != nil {
			return nil, fmt.Errorf("plan batch %d: item %s: %w", b.ID, it.Worker, err)
		}
		if err := s.moveBalance(ctx, tx, it, "unpaid", "in_flight"); err != nil {
			return nil, fmt.Errorf("plan batch %d: %w", b.ID, err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE counters SET value = ? WHERE name = 'query_id'`),
		(int64(b.QueryID)+1)%queryIDModulus); err != nil {
		return nil, fmt.Errorf("plan batch %d: query id counter: %w", b.ID, err)
	}
	return b, nil
}

// dueItems are the items of the next batch: the due workers, in ID order,
// at most p.Max.
func (s *sqlStore) dueItems(ctx context.Context, tx *sql.Tx, p PlanParams, minPayout int64) ([]Item, error) {
	rows, err := tx.QueryContext(ctx, s.d.q(`SELECT b.worker, b.unpaid, w.payout, w.payout_every_ns,
			(SELECT MAX(t.planned_ms) FROM batch_items i JOIN batches t ON t.id = i.batch_id
				WHERE i.worker = b.worker AND t.state <> 'expired')
		FROM balances b JOIN workers w ON w.id = b.worker
		WHERE b.unpaid > 0 AND w.payout <> ''
			AND b.unpaid >= CASE WHEN w.min_payout > 0 THEN w.min_payout ELSE CAST(? AS BIGINT) END
		ORDER BY b.worker`), minPayout)
	if err != nil {
		return nil, fmt.Errorf("plan batch: due workers: %w", err)
	}
	defer rows.Close()
	now := ms(p.Now)
	var items []Item
	for rows.Next() && len(items) < p.Max {
		var it Item
		var unpaid, everyNS int64
		var last sql.NullInt64
		if err := rows.Scan(&it.Worker, &unpaid, &it.Address, &everyNS, &last); err != nil {
			return nil, fmt.Errorf("plan batch: due workers: %w", err)
		}
		every := time.Duration(everyNS)
		if every == 0 {
			every = p.Every
		}
		if last.Valid && time.Duration(now-last.Int64)*time.Millisecond < every {
			continue
		}
		it.Amount = uint64(unpaid)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("plan batch: due workers: %w", err)
	}
	return items, nil
}

// moveBalance moves it.Amount of it.Worker's balance from one column to
// another (unpaid, in_flight, paid), which keeps earned = unpaid +
// in_flight + paid. The update is relative, so it composes with
// concurrent credits; the CHECK constraints refuse a negative result.
func (s *sqlStore) moveBalance(ctx context.Context, tx *sql.Tx, it Item, from, to string) error {
	res, err := tx.ExecContext(ctx, s.d.q(`UPDATE balances SET `+from+` = `+from+` - ?, `+to+` = `+to+` + ? WHERE worker = ?`),
		int64(it.Amount), int64(it.Amount), it.Worker)
	if err != nil {
		return fmt.Errorf("move %d of %s from %s to %s: %w", it.Amount, it.Worker, from, to, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("move %d of %s from %s to %s: %w", it.Amount, it.Worker, from, to, err)
	} else if n != 1 {
		return fmt.Errorf("move %d of %s from %s to %s: %d balance rows, want 1", it.Amount, it.Worker, from, to, n)
	}
	return nil
}
