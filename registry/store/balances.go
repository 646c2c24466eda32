package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Balance is the worker's money; a worker never credited (or not
// registered) has a zero balance.
func (s *sqlStore) Balance(ctx context.Context, worker string) (Balance, error) {
	b, err := scanBalance(s.r.QueryRowContext(ctx, s.d.q(`SELECT worker, earned, unpaid, in_flight, paid FROM balances WHERE worker = ?`), worker))
	if errors.Is(err, sql.ErrNoRows) {
		return Balance{Worker: worker}, nil
	}
	if err != nil {
		return Balance{}, fmt.Errorf("balance of %s: %w", worker, err)
	}
	return b, nil
}

// Balances are the balances of the workers ever credited, by worker.
func (s *sqlStore) Balances(ctx context.Context) ([]Balance, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT worker, earned, unpaid, in_flight, paid FROM balances ORDER BY worker`)
	if err != nil {
		return nil, fmt.Errorf("balances: %w", err)
	}
	defer rows.Close()
	var out []Balance
	for rows.Next() {
		b, err := scanBalance(rows)
		if err != nil {
			return nil, fmt.Errorf("balances: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("balances: %w", err)
	}
	return out, nil
}

func scanBalance(r scanner) (Balance, error) {
	var b Balance
	var earned, unpaid, inFlight, paid int64
	if err := r.Scan(&b.Worker, &earned, &unpaid, &inFlight, &paid); err != nil {
		return Balance{}, err
	}
	b.Earned, b.Unpaid, b.InFlight, b.Paid = uint64(earned), uint64(unpaid), uint64(inFlight), uint64(paid)
	return b, nil
}
