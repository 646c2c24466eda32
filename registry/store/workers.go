package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// workerColumns are read by scanWorker, in its order.
const workerColumns = `id, public_key, payout, endpoint, models, price, min_payout, payout_every_ns,
	certificate, evidence, registered_ms, cert_expires_ms,
	last_seen_ms, heartbeats, served, failed, latency_ms`

// PutWorker inserts w, or replaces everything but RegisteredAt and Stats
// of the worker with w.ID: re-registration (a new certificate, a new
// payout address) must not reset its history.
func (s *sqlStore) PutWorker(ctx context.Context, w Worker) error {
	if w.ID == "" {
		return fmt.Errorf("put worker: empty ID: %w", ErrInvalid)
	}
	price, err := toInt64("price of worker "+w.ID, w.Price)
	if err != nil {
		return err
	}
	minPayout, err := toInt64("min payout of worker "+w.ID, w.MinPayout)
	if err != nil {
		return err
	}
	if w.PayoutEvery < 0 {
		return fmt.Errorf("worker %s: payout every %v, want >= 0: %w", w.ID, w.PayoutEvery, ErrInvalid)
	}
	if err := validStats(w.ID, w.Stats); err != nil {
		return err
	}
	models, err := json.Marshal(nonNil(w.Models))
	if err != nil {
		return fmt.Errorf("worker %s: models: %w", w.ID, err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO workers (`+workerColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key, payout = excluded.payout,
				endpoint = excluded.endpoint, models = excluded.models, price = excluded.price,
				min_payout = excluded.min_payout, payout_every_ns = excluded.payout_every_ns,
				certificate = excluded.certificate, evidence = excluded.evidence,
				cert_expires_ms = excluded.cert_expires_ms`),
			w.ID, w.PublicKey, w.Payout, w.Endpoint, string(models), price, minPayout, int64(w.PayoutEvery),
			blob(w.Certificate), blob(w.Evidence), ms(w.RegisteredAt), ms(w.CertExpires),
			ms(w.Stats.LastSeen), w.Stats.Heartbeats, w.Stats.Served, w.Stats.Failed, w.Stats.LatencyMS)
		if err != nil {
			return fmt.Errorf("put worker %s: %w", w.ID, err)
		}
		return nil
	})
}

func validStats(id string, st Stats) error {
	if st.Heartbeats < 0 || st.Served < 0 || st.Failed < 0 {
		return fmt.Errorf("worker %s: stats heartbeats/served/failed = %d/%d/%d, want >= 0: %w",
			id, st.Heartbeats, st.Served, st.Failed, ErrInvalid)
	}
	if !validLatency(st.LatencyMS) {
		return fmt.Errorf("worker %s: latency %v ms, want a finite number >= 0: %w", id, st.LatencyMS, ErrInvalid)
	}
	return nil
}

func validLatency(v float64) bool { return v >= 0 && !math.IsInf(v, 1) } // NaN fails v >= 0

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *sqlStore) Worker(ctx context.Context, id string) (*Worker, error) {
	w, err := scanWorker(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+workerColumns+` FROM workers WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("worker %s: not registered: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", id, err)
	}
	return w, nil
}

func (s *sqlStore) Workers(ctx context.Context) ([]Worker, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+workerColumns+` FROM workers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	defer rows.Close()
	var out []Worker
	for rows.Next() {
		w, err := scanWorker(rows)
		if err != nil {
			return nil, fmt.Errorf("workers: %w", err)
		}
		out = append(out, *w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanWorker(r scanner) (*Worker, error) {
	var w Worker
	var models string
	var price, minPayout, every, registered, certExpires, lastSeen int64
	var cert, evidence []byte
	err := r.Scan(&w.ID, &w.PublicKey, &w.Payout, &w.Endpoint, &models, &price, &minPayout, &every,
		&cert, &evidence, &registered, &certExpires,
		&lastSeen, &w.Stats.Heartbeats, &w.Stats.Served, &w.Stats.Failed, &w.Stats.LatencyMS)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(models), &w.Models); err != nil {
		return nil, fmt.Errorf("models %q: %w", models, err)
	}
	if len(w.Models) == 0 {
		w.Models = nil
	}
	w.Price, w.MinPayout = uint64(price), uint64(minPayout)
	w.PayoutEvery = time.Duration(every)
	w.Certificate = nilIfEmpty(cert)
	w.Evidence = nilIfEmpty(evidence)
	w.RegisteredAt, w.CertExpires = fromMS(registered), fromMS(certExpires)
	w.Stats.LastSeen = fromMS(lastSeen)
	return &w, nil
}

// Heartbeat adds hb to the worker's Stats. LastSeen only moves forward,
// so a heartbeat delivered late does not make a worker look older; the
// latency mean starts at the first reported latency and ignores
// heartbeats that report none.
func (s *sqlStore) Heartbeat(ctx context.Context, worker string, hb Heartbeat) error {
	if hb.Served < 0 || hb.Failed < 0 {
		return fmt.Errorf("heartbeat of %s: served/failed = %d/%d, want >= 0: %w", worker, hb.Served, hb.Failed, ErrInvalid)
	}
	if !validLatency(hb.LatencyMS) {
		return fmt.Errorf("heartbeat of %s: latency %v ms, want a finite number >= 0: %w", worker, hb.LatencyMS, ErrInvalid)
	}
	at := ms(hb.At)
	return s.write(ctx, func(tx *sql.Tx) error {
		// The mean is computed in SQL so that concurrent heartbeats each
		// see the other's result (one row lock, no read-modify-write).
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE workers SET
				last_seen_ms = CASE WHEN last_seen_ms < CAST(? AS BIGINT) THEN CAST(? AS BIGINT) ELSE last_seen_ms END,
				heartbeats = heartbeats + 1,
				served = served + CAST(? AS BIGINT),
				failed = failed + CAST(? AS BIGINT),
				latency_ms = CASE
					WHEN CAST(? AS DOUBLE PRECISION) <= 0 THEN latency_ms
					WHEN latency_ms = 0 THEN CAST(? AS DOUBLE PRECISION)
					ELSE 0.8 * latency_ms + 0.2 * CAST(? AS DOUBLE PRECISION)
				END
			WHERE id = ?`), at, at, hb.Served, hb.Failed, hb.LatencyMS, hb.LatencyMS, hb.LatencyMS, worker)
		if err != nil {
			return fmt.Errorf("heartbeat of %s: %w", worker, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("heartbeat of %s: %w", worker, err)
		} else if n == 0 {
			return fmt.Errorf("heartbeat of %s: not registered: %w", worker, ErrNotFound)
		}
		return nil
	})
}
