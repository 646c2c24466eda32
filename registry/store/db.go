package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// sqlStore is the Store on either engine.
type sqlStore struct {
	d *dialect
	w *sql.DB // writes; SQLite: one connection, BEGIN IMMEDIATE
	r *sql.DB // reads; the same pool as w on PostgreSQL and in memory
}

var _ Store = (*sqlStore)(nil)

// maxAttempts bounds the retries of a write that PostgreSQL aborted to
// break a deadlock or a serialization conflict.
const maxAttempts = 8

// write runs fn in one write transaction and commits it. fn may run more
// than once (see maxAttempts), so it must start from scratch each time.
func (s *sqlStore) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = s.writeOnce(ctx, fn)
		if err == nil || attempt == maxAttempts || !s.d.retryable(err) || ctx.Err() != nil {
			return err
		}
	}
}

func (s *sqlStore) writeOnce(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction, for reads that must see one
// snapshot (a batch and its items).
func (s *sqlStore) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, s.d.readTx)
	if err != nil {
		return fmt.Errorf("store: begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// Close closes the pools.
func (s *sqlStore) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// limitClause is " LIMIT n", or "" for limit <= 0 (everything).
func limitClause(limit int) string {
	if limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", limit)
}
