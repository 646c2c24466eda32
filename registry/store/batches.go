package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// transition is one state change of a batch.
type transition struct {
	verb string       // for messages: "sign", "mark sent", ...
	from []BatchState // the states it applies to
	to   BatchState
	// set is the SQL assignments besides state and updated_ms, with
	// their arguments.
	set  string
	args []any
	// move, when set, moves every item's amount between balance
	// columns.
	moveFrom, moveTo string
}

// SignBatch records the signed message: Planned → Signed.
func (s *sqlStore) SignBatch(ctx context.Context, id int64, msg []byte, msgHash string, now time.Time) error {
	if len(msg) == 0 || msgHash == "" {
		return fmt.Errorf("sign batch %d: message of %d bytes, hash %q, want both: %w", id, len(msg), msgHash, ErrInvalid)
	}
	return s.transition(ctx, id, now, transition{
		verb: "sign", from: []BatchState{Planned}, to: Signed,
		set: "message = ?, msg_hash = ?", args: []any{msg, msgHash},
	})
}

// MarkSent records a hand-over to the chain: Signed or Sent → Sent.
func (s *sqlStore) MarkSent(ctx context.Context, id int64, now time.Time) error {
	return s.transition(ctx, id, now, transition{
		verb: "mark sent", from: []BatchState{Signed, Sent}, to: Sent,
		set: "sends = sends + 1",
	})
}

// ConfirmBatch: Sent → Confirmed; the items move from in-flight to paid.
func (s *sqlStore) ConfirmBatch(ctx context.Context, id int64, fees uint64, txHash string, now time.Time) error {
	f, err := toInt64(fmt.Sprintf("confirm batch %d: fees", id), fees)
	if err != nil {
		return err
	}
	return s.transition(ctx, id, now, transition{
		verb: "confirm", from: []BatchState{Sent}, to: Confirmed,
		set: "fees = ?, tx_hash = ?", args: []any{f, txHash},
		moveFrom: "in_flight", moveTo: "paid",
	})
}

// ExpireBatch: Planned, Signed or Sent → Expired; the items move back to
// unpaid, to be planned again.
func (s *sqlStore) ExpireBatch(ctx context.Context, id int64, reason string, now time.Time) error {
	return s.transition(ctx, id, now, transition{
		verb: "expire", from: []BatchState{Planned, Signed, Sent}, to: Expired,
		set: "expire_reason = ?", args: []any{reason},
		moveFrom: "in_flight", moveTo: "unpaid",
	})
}

// transition applies tr to batch id in one transaction. The batch row is
// locked before its state is checked (PostgreSQL), so of two registries
// confirming one batch, the second finds it Confirmed.
func (s *sqlStore) transition(ctx context.Context, id int64, now time.Time, tr transition) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var cur BatchState
		err := tx.QueryRowContext(ctx, s.d.q(`SELECT state FROM batches WHERE id = ?`+s.d.forUpdate), id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s batch %d: no such batch: %w", tr.verb, id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s batch %d: %w", tr.verb, id, err)
		}
		if !stateIn(cur, tr.from) {
			return fmt.Errorf("%s batch %d: state %s, want %s: %w", tr.verb, id, cur, statesString(tr.from), ErrConflict)
		}
		args := append([]any{string(tr.to), ms(now)}, tr.args...)
		args = append(args, id)
		if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE batches SET state = ?, updated_ms = ?, `+tr.set+` WHERE id = ?`), args...); err != nil {
			return fmt.Errorf("%s batch %d: %w", tr.verb, id, err)
		}
		if tr.moveFrom == "" {
			return nil
		}
		items, err := s.items(ctx, tx, `= ?`, id)
		if err != nil {
			return fmt.Errorf("%s batch %d: %w", tr.verb, id, err)
		}
		for _, it := range items[id] { // in worker order, as PlanBatch locked them
			if err := s.moveBalance(ctx, tx, it, tr.moveFrom, tr.moveTo); err != nil {
				return fmt.Errorf("%s batch %d: %w", tr.verb, id, err)
			}
		}
		return nil
	})
}

func stateIn(s BatchState, in []BatchState) bool {
	for _, x := range in {
		if s == x {
			return true
		}
	}
	return false
}

func statesString(ss []BatchState) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, string(s))
	}
	return strings.Join(parts, " or ")
}

// batchColumns are read by scanBatch, in its order.
const batchColumns = `id, query_id, created_ms, state, message, msg_hash, sends, fees, tx_hash, expire_reason, updated_ms`

func scanBatch(r scanner) (Batch, error) {
	var b Batch
	var qid, created, fees, updated int64
	var state string
	err := r.Scan(&b.ID, &qid, &created, &state, &b.Message, &b.MsgHash, &b.Sends, &fees, &b.TxHash, &b.Error, &updated)
	if err != nil {
		return Batch{}, err
	}
	b.QueryID, b.CreatedAt, b.State, b.Fees, b.Updated = uint32(qid), fromMS(created), BatchState(state), uint64(fees), fromMS(updated)
	b.Message = nilIfEmpty(b.Message)
	return b, nil
}

// items reads the items of the batches whose id matches the condition
// cond (e.g. "= ?", "IN (SELECT ...)"), by batch, in worker order.
func (s *sqlStore) items(ctx context.Context, tx *sql.Tx, cond string, args ...any) (map[int64][]Item, error) {
	rows, err := tx.QueryContext(ctx, s.d.q(`SELECT batch_id, worker, address, amount FROM batch_items
		WHERE batch_id `+cond+` ORDER BY batch_id, worker`), args...)
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	defer rows.Close()
	out := map[int64][]Item{}
	for rows.Next() {
		var id, amount int64
		var it Item
		if err := rows.Scan(&id, &it.Worker, &it.Address, &amount); err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		it.Amount = uint64(amount)
		out[id] = append(out[id], it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	return out, nil
}

// batches reads, in one snapshot, the batches chosen by tail (WHERE,
// ORDER BY and LIMIT of a SELECT from batches) with their items.
func (s *sqlStore) batches(ctx context.Context, what, tail string, args ...any) ([]Batch, error) {
	var out []Batch
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.d.q(`SELECT `+batchColumns+` FROM batches `+tail), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			b, err := scanBatch(rows)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		items, err := s.items(ctx, tx, `IN (SELECT id FROM batches `+tail+`)`, args...)
		if err != nil {
			return err
		}
		for i := range out {
			out[i].Items = items[out[i].ID]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func (s *sqlStore) Batch(ctx context.Context, id int64) (*Batch, error) {
	bs, err := s.batches(ctx, fmt.Sprintf("batch %d", id), `WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 {
		return nil, fmt.Errorf("batch %d: no such batch: %w", id, ErrNotFound)
	}
	return &bs[0], nil
}

// OpenBatches are the batches not Confirmed or Expired, by ID.
func (s *sqlStore) OpenBatches(ctx context.Context) ([]Batch, error) {
	return s.batches(ctx, "open batches", `WHERE state IN ('planned', 'signed', 'sent') ORDER BY id`)
}

// Batches are the limit most recent batches (all for limit <= 0), newest
// first.
func (s *sqlStore) Batches(ctx context.Context, limit int) ([]Batch, error) {
	return s.batches(ctx, "batches", `ORDER BY id DESC`+limitClause(limit))
}
