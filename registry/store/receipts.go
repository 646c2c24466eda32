package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// AddReceipts stores the new receipts of rs and credits them (see Store).
//
// On PostgreSQL, rows are locked in one order (receipt keys in (worker,
// seq) order, then worker by worker in ID order its balance and its
// row; PlanBatch and the batch state changes lock balances in the same
// worker order), so concurrent calls wait for each other instead of
// deadlocking. A (worker, seq) inserted by a concurrent call that has not
// committed yet is waited for: when that commits, this call finds it held
// and compares bytes; when it rolls back, this call inserts it.
func (s *sqlStore) AddReceipts(ctx context.Context, rs []Receipt, now time.Time) (added, dup int, err error) {
	if len(rs) == 0 {
		return 0, 0, nil
	}
	sorted, err := sortReceipts(rs)
	if err != nil {
		return 0, 0, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		added, dup = 0, 0
		var err error
		added, dup, err = s.addReceipts(ctx, tx, sorted, ms(now))
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return added, dup, nil
}

// sortReceipts validates rs and returns a copy in (worker, seq) order.
func sortReceipts(rs []Receipt) ([]Receipt, error) {
	for i, r := range rs {
		if r.Worker == "" {
			return nil, fmt.Errorf("receipt %d: empty worker: %w", i, ErrInvalid)
		}
		if _, err := toInt64(fmt.Sprintf("receipt %d (worker %s) seq", i, r.Worker), r.Seq); err != nil {
			return nil, err
		}
		if _, err := toInt64(fmt.Sprintf("receipt %d (worker %s, seq %d) amount", i, r.Worker, r.Seq), r.Amount); err != nil {
			return nil, err
		}
		if r.Tokens < 0 {
			return nil, fmt.Errorf("receipt %d (worker %s, seq %d): tokens = %d, want >= 0: %w", i, r.Worker, r.Seq, r.Tokens, ErrInvalid)
		}
	}
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b Receipt) int {
		return cmp.Or(cmp.Compare(a.Worker, b.Worker), cmp.Compare(a.Seq, b.Seq))
	})
	return sorted, nil
}

func (s *sqlStore) addReceipts(ctx context.Context, tx *sql.Tx, rs []Receipt, now int64) (added, dup int, err error) {
	var workers []string
	for i, r := range rs {
		if i == 0 || r.Worker != rs[i-1].Worker {
			workers = append(workers, r.Worker)
		}
	}
	for _, w := range workers {
		var one int
		err := tx.QueryRowContext(ctx, s.d.q(`SELECT 1 FROM workers WHERE id = ?`), w).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, fmt.Errorf("receipts of worker %s: not registered: %w", w, ErrNotFound)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("receipts of worker %s: %w", w, err)
		}
	}

	// The same receipt twice in one call: the second is a replay of the
	// first, or a conflict with it.
	uniq := rs[:0:0]
	for i, r := range rs {
		if i > 0 && r.Worker == rs[i-1].Worker && r.Seq == rs[i-1].Seq {
			if !bytes.Equal(r.Signed, rs[i-1].Signed) {
				return 0, 0, conflict(r, rs[i-1].Signed, "an earlier receipt of the same call")
			}
			dup++
			continue
		}
		uniq = append(uniq, r)
	}
	credit := map[string]uint64{}
	for len(uniq) > 0 {
		chunk := uniq[:min(len(uniq), insertChunk)]
		uniq = uniq[len(chunk):]
		inserted, err := s.insertReceipts(ctx, tx, chunk)
		if err != nil {
			return 0, 0, err
		}
		for _, r := range chunk {
			if !inserted[receiptKey{r.Worker, int64(r.Seq)}] {
				if err := s.checkReplay(ctx, tx, r); err != nil {
					return 0, 0, err
				}
				dup++
				continue
			}
			if credit[r.Worker] > math.MaxInt64-r.Amount {
				return 0, 0, fmt.Errorf("receipts of worker %s: credit above %d: %w", r.Worker, int64(math.MaxInt64), ErrInvalid)
			}
			credit[r.Worker] += r.Amount
			added++
		}
	}

	for _, w := range workers {
		if c := credit[w]; c > 0 {
			if err := s.credit(ctx, tx, w, c); err != nil {
				return 0, 0, err
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE workers
			SET last_seen_ms = CASE WHEN last_seen_ms < CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE last_seen_ms END
			WHERE id = ?`), now, now, w); err != nil {
			return 0, 0, fmt.Errorf("receipts of worker %s: last seen: %w", w, err)
		}
	}
	return added, dup, nil
}

// insertChunk is the most receipts one INSERT carries: 7 parameters
// each stays far below both engines' limits (SQLite 32766, PostgreSQL
// 65535), and one statement instead of one per receipt is what makes a
// batch cheap.
const insertChunk = 512

type receiptKey struct {
	worker string
	seq    int64
}

// insertReceipts inserts rs, skipping those whose (worker, seq) is held,
// and returns the keys it inserted.
func (s *sqlStore) insertReceipts(ctx context.Context, tx *sql.Tx, rs []Receipt) (map[receiptKey]bool, error) {
	var q strings.Builder
	q.WriteString(`INSERT INTO receipts (worker, seq, model, tokens, amount, end_ms, signed) VALUES `)
	args := make([]any, 0, 7*len(rs))
	for i, r := range rs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		args = append(args, r.Worker, int64(r.Seq), r.Model, r.Tokens, int64(r.Amount), ms(r.End), blob(r.Signed))
	}
	q.WriteString(` ON CONFLICT (worker, seq) DO NOTHING RETURNING worker, seq`)
	rows, err := tx.QueryContext(ctx, s.d.q(q.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("add %d receipts: %w", len(rs), err)
	}
	defer rows.Close()
	inserted := make(map[receiptKey]bool, len(rs))
	for rows.Next() {
		var k receiptKey
		if err := rows.Scan(&k.worker, &k.seq); err != nil {
			return nil, fmt.Errorf("add %d receipts: %w", len(rs), err)
		}
		inserted[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("add %d receipts: %w", len(rs), err)
	}
	return inserted, nil
}

// checkReplay is called for a receipt whose (worker, seq) is held: equal
// bytes are a replay, anything else a conflict.
func (s *sqlStore) checkReplay(ctx context.Context, tx *sql.Tx, r Receipt) error {
	var held []byte
	err := tx.QueryRowContext(ctx, s.d.q(`SELECT signed FROM receipts WHERE worker = ? AND seq = ?`), r.Worker, int64(r.Seq)).Scan(&held)
	if err != nil {
		return fmt.Errorf("receipt of %s seq %d: read held: %w", r.Worker, r.Seq, err)
	}
	if !bytes.Equal(held, r.Signed) {
		return conflict(r, held, "the stored receipt")
	}
	return nil
}

func conflict(r Receipt, held []byte, what string) error {
	return fmt.Errorf("receipt of %s seq %d: signed bytes sha256 %.8x… (%d bytes), want those of %s, sha256 %.8x… (%d bytes): %w",
		r.Worker, r.Seq, sha256.Sum256(r.Signed), len(r.Signed), what, sha256.Sum256(held), len(held), ErrConflict)
}

// credit adds c to the worker's earned and unpaid balance, creating the
// balance on first credit. The balance row is locked first (PostgreSQL)
// so that the overflow check and the update see the same value.
func (s *sqlStore) credit(ctx context.Context, tx *sql.Tx, worker string, c uint64) error {
	var earned int64
	err := tx.QueryRowContext(ctx, s.d.q(`SELECT earned FROM balances WHERE worker = ?`+s.d.forUpdate), worker).Scan(&earned)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("balance of %s: %w", worker, err)
	}
	if uint64(earned) > math.MaxInt64-c {
		return fmt.Errorf("balance of %s: earned %d + credit %d, want at most %d: %w", worker, earned, c, int64(math.MaxInt64), ErrInvalid)
	}
	_, err = tx.ExecContext(ctx, s.d.q(`INSERT INTO balances (worker, earned, unpaid, in_flight, paid) VALUES (?, ?, ?, 0, 0)
		ON CONFLICT (worker) DO UPDATE SET earned = balances.earned + excluded.earned, unpaid = balances.unpaid + excluded.unpaid`),
		worker, int64(c), int64(c))
	if err != nil {
		return fmt.Errorf("balance of %s: credit %d: %w", worker, c, err)
	}
	return nil
}

// Receipts returns the worker's receipts with seq > after, in seq order,
// at most limit of them (all for limit <= 0).
func (s *sqlStore) Receipts(ctx context.Context, worker string, after uint64, limit int) ([]Receipt, error) {
	if after >= math.MaxInt64 {
		return nil, nil // no stored seq is larger
	}
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT seq, model, tokens, amount, end_ms, signed FROM receipts
		WHERE worker = ? AND seq > ? ORDER BY seq`+limitClause(limit)), worker, int64(after))
	if err != nil {
		return nil, fmt.Errorf("receipts of %s: %w", worker, err)
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		r := Receipt{Worker: worker}
		var seq, amount, end int64
		if err := rows.Scan(&seq, &r.Model, &r.Tokens, &amount, &end, &r.Signed); err != nil {
			return nil, fmt.Errorf("receipts of %s: %w", worker, err)
		}
		r.Seq, r.Amount, r.End = uint64(seq), uint64(amount), fromMS(end)
		r.Signed = nilIfEmpty(r.Signed)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("receipts of %s: %w", worker, err)
	}
	return out, nil
}

// Usage is the billable tokens of model's receipts that ended at or after
// since.
func (s *sqlStore) Usage(ctx context.Context, model string, since time.Time) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, s.d.q(`SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) FROM receipts
		WHERE model = ? AND end_ms >= ?`), model, ms(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("usage of %s: %w", model, err)
	}
	return n, nil
}
