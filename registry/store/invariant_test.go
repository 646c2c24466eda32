package store

// check recomputes every worker's money from the receipts and batch items
// and compares it with the balances the store keeps: earned is the sum of
// its receipts, in_flight of its items in open batches, paid of its items
// in confirmed batches, and unpaid the rest, never negative.
func (h *harness) check() {
	h.t.Helper()
	rows, err := h.s.r.QueryContext(h.ctx, `SELECT w.id,
		CAST(COALESCE((SELECT SUM(r.amount) FROM receipts r WHERE r.worker = w.id), 0) AS BIGINT),
		CAST(COALESCE((SELECT SUM(i.amount) FROM batch_items i JOIN batches b ON b.id = i.batch_id
			WHERE i.worker = w.id AND b.state IN ('planned', 'signed', 'sent')), 0) AS BIGINT),
		CAST(COALESCE((SELECT SUM(i.amount) FROM batch_items i JOIN batches b ON b.id = i.batch_id
			WHERE i.worker = w.id AND b.state = 'confirmed'), 0) AS BIGINT)
		FROM workers w ORDER BY w.id`)
	if err != nil {
		h.t.Fatalf("invariant: %v", err)
	}
	want := map[string]Balance{}
	for rows.Next() {
		var w string
		var earned, inFlight, paid int64
		if err := rows.Scan(&w, &earned, &inFlight, &paid); err != nil {
			h.t.Fatalf("invariant: %v", err)
		}
		if inFlight+paid > earned {
			h.t.Errorf("invariant: worker %s: in flight %d + paid %d exceed earned %d", w, inFlight, paid, earned)
		}
		want[w] = Balance{Worker: w, Earned: uint64(earned), Unpaid: uint64(earned - inFlight - paid),
			InFlight: uint64(inFlight), Paid: uint64(paid)}
	}
	if err := rows.Err(); err != nil {
		h.t.Fatalf("invariant: %v", err)
	}
	rows.Close()

	bs, err := h.s.Balances(h.ctx)
	if err != nil {
		h.t.Fatalf("invariant: %v", err)
	}
	seen := map[string]bool{}
	for _, b := range bs {
		seen[b.Worker] = true
		if b != want[b.Worker] {
			h.t.Errorf("invariant: balance %+v, recomputed from receipts and batches %+v", b, want[b.Worker])
		}
		if b.Earned != b.Unpaid+b.InFlight+b.Paid {
			h.t.Errorf("invariant: %+v: earned != unpaid + in flight + paid", b)
		}
	}
	for w, b := range want {
		if !seen[w] && b != (Balance{Worker: w}) {
			h.t.Errorf("invariant: worker %s has no balance row, recomputed %+v", w, b)
		}
		if got := h.balance(w); got != b {
			h.t.Errorf("invariant: Balance(%s) = %+v, recomputed %+v", w, got, b)
		}
	}
}
