package store

import (
	"context"
	"database/sql"
	"fmt"
)

// AddEvent records e. Level must be "info", "warn" or "error": the
// dashboard filters on them, so a misspelt level would hide the event.
func (s *sqlStore) AddEvent(ctx context.Context, e Event) error {
	switch e.Level {
	case "info", "warn", "error":
	default:
		return fmt.Errorf("event level %q, want info, warn or error: %w", e.Level, ErrInvalid)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO events (at_ms, level, worker, message) VALUES (?, ?, ?, ?)`),
			ms(e.At), e.Level, e.Worker, e.Message)
		if err != nil {
			return fmt.Errorf("add event: %w", err)
		}
		return nil
	})
}

// Events are the limit most recent events (all for limit <= 0), newest
// first; events at the same millisecond come last-added first.
func (s *sqlStore) Events(ctx context.Context, limit int) ([]Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT at_ms, level, worker, message FROM events ORDER BY at_ms DESC, id DESC`+limitClause(limit))
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&at, &e.Level, &e.Worker, &e.Message); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return out, nil
}
