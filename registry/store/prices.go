package store

import (
	"context"
	"database/sql"
	"fmt"
)

// SetPrice sets the bounds for p.Model, replacing earlier ones.
func (s *sqlStore) SetPrice(ctx context.Context, p Price) error {
	if p.Model == "" {
		return fmt.Errorf("set price: empty model: %w", ErrInvalid)
	}
	var v [3]int64
	for i, u := range []uint64{p.Base, p.Min, p.Max} {
		var err error
		if v[i], err = toInt64(fmt.Sprintf("%s price of %s", [...]string{"base", "min", "max"}[i], p.Model), u); err != nil {
			return err
		}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO prices (model, base_price, min_price, max_price) VALUES (?, ?, ?, ?)
			ON CONFLICT (model) DO UPDATE SET base_price = excluded.base_price,
				min_price = excluded.min_price, max_price = excluded.max_price`), p.Model, v[0], v[1], v[2])
		if err != nil {
			return fmt.Errorf("set price %s: %w", p.Model, err)
		}
		return nil
	})
}

func (s *sqlStore) Prices(ctx context.Context) ([]Price, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT model, base_price, min_price, max_price FROM prices ORDER BY model`)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	defer rows.Close()
	var out []Price
	for rows.Next() {
		var p Price
		var base, lo, hi int64
		if err := rows.Scan(&p.Model, &base, &lo, &hi); err != nil {
			return nil, fmt.Errorf("prices: %w", err)
		}
		p.Base, p.Min, p.Max = uint64(base), uint64(lo), uint64(hi)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	return out, nil
}
