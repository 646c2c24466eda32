package store

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// books is everything a Store shows, for comparing a database before and
// after something that must not change it.
type books struct {
	Allowlist []AllowedImage
	Prices    []Price
	Workers   []Worker
	Balances  []Balance
	Receipts  map[string][]Receipt
	Batches   []Batch
	Events    []Event
	QueryID   int64
}

func (h *harness) books(s *sqlStore) books {
	h.t.Helper()
	var b books
	var err error
	must := func(e error) {
		if e != nil {
			h.t.Fatal(e)
		}
	}
	b.Allowlist, err = s.Allowlist(h.ctx)
	must(err)
	b.Prices, err = s.Prices(h.ctx)
	must(err)
	b.Workers, err = s.Workers(h.ctx)
	must(err)
	b.Balances, err = s.Balances(h.ctx)
	must(err)
	b.Receipts = map[string][]Receipt{}
	for _, w := range b.Workers {
		b.Receipts[w.ID], err = s.Receipts(h.ctx, w.ID, 0, 0)
		must(err)
	}
	b.Batches, err = s.Batches(h.ctx, 0)
	must(err)
	b.Events, err = s.Events(h.ctx, 0)
	must(err)
	must(s.r.QueryRowContext(h.ctx, `SELECT value FROM counters WHERE name = 'query_id'`).Scan(&b.QueryID))
	return b
}

// populate fills every table: three workers, receipts, batches in
// several states, allowlist, prices, events.
func (h *harness) populate() []string {
	h.t.Helper()
	ids := h.put(3)
	must := func(err error) {
		h.t.Helper()
		if err != nil {
			h.t.Fatal(err)
		}
	}
	must(h.s.AllowImage(h.ctx, AllowedImage{Hash: hash64('a'), Note: "release 1", Added: at(time.Second)}))
	must(h.s.SetPrice(h.ctx, Price{Model: "llama-3.1-8b", Base: 150, Min: 100, Max: 300}))
	must(h.s.Heartbeat(h.ctx, ids[0], Heartbeat{At: at(time.Minute), Served: 10, Failed: 1, LatencyMS: 42.5}))
	for i, w := range ids {
		h.add([]Receipt{rcpt(w, 1, 1000), rcpt(w, 2, uint64(2000*(i+1)))}, at(2*time.Minute))
	}
	p := PlanParams{Now: at(time.Hour), CreatedAt: at(time.Hour), MinPayout: 1, Max: 1}
	b1 := h.plan(p) // ids[0]
	must(h.s.SignBatch(h.ctx, b1.ID, []byte("boc1"), "hash1", at(time.Hour+time.Second)))
	must(h.s.MarkSent(h.ctx, b1.ID, at(time.Hour+2*time.Second)))
	must(h.s.ConfirmBatch(h.ctx, b1.ID, 5_000_000, "tx1", at(time.Hour+3*time.Second)))
	b2 := h.plan(p) // ids[1]
	must(h.s.ExpireBatch(h.ctx, b2.ID, "ttl passed", at(2*time.Hour)))
	h.plan(p) // ids[1] again, stays planned
	must(h.s.AddEvent(h.ctx, Event{At: at(3 * time.Hour), Level: "warn", Worker: ids[2], Message: "late heartbeat"}))
	h.check()
	return ids
}

func hash64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func testMigrate(t *testing.T, h *harness) {
	h.populate()
	before := h.books(h.s)
	for range 2 {
		if err := migrate(h.ctx, h.s.w, h.s.d); err != nil {
			t.Fatalf("migrate again: %v", err)
		}
	}
	h.open() // a second registry on the same database
	if after := h.books(h.s); !reflect.DeepEqual(before, after) {
		t.Errorf("migrating again changed the books:\nbefore %+v\nafter  %+v", before, after)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := h.s.r.QueryRowContext(h.ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}

	for _, c := range []struct{ name, break_, undo string }{
		{"newer schema",
			`INSERT INTO schema_migrations (version, name, sha256) VALUES (999999, '999999_future.sql', 'x')`,
			`DELETE FROM schema_migrations WHERE version = 999999`},
		{"edited migration",
			`UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1`,
			`UPDATE schema_migrations SET sha256 = '` + ms[0].sum + `' WHERE version = 1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := h.s.w.ExecContext(h.ctx, c.break_); err != nil {
				t.Fatal(err)
			}
			if err := migrate(h.ctx, h.s.w, h.s.d); !errors.Is(err, ErrSchema) {
				t.Errorf("migrate = %v, want ErrSchema", err)
			}
			if _, err := Open(h.ctx, h.dsn); !errors.Is(err, ErrSchema) {
				t.Errorf("Open = %v, want ErrSchema", err)
			}
			if _, err := h.s.w.ExecContext(h.ctx, c.undo); err != nil {
				t.Fatal(err)
			}
			if err := migrate(h.ctx, h.s.w, h.s.d); err != nil {
				t.Errorf("migrate after undo: %v", err)
			}
		})
	}
}

// testConstraints: the schema itself refuses books that break the
// invariant, whatever code writes them.
func testConstraints(t *testing.T, h *harness) {
	w := h.put(1)[0]
	h.add([]Receipt{rcpt(w, 1, 100), rcpt(w, 2, 50)}, at(0))
	h.plan(PlanParams{Now: at(0), MinPayout: 1, Max: 1})
	h.add([]Receipt{rcpt(w, 3, 100)}, at(0))
	for _, q := range []string{
		`UPDATE balances SET unpaid = unpaid + 1`,
		`UPDATE balances SET earned = earned - 1`,
		`UPDATE balances SET unpaid = unpaid - 101, paid = paid + 101`,
		`UPDATE balances SET in_flight = in_flight - 151, paid = paid + 151`,
		`UPDATE batch_items SET amount = 0`,
		`UPDATE batches SET state = 'lost'`,
		`INSERT INTO receipts (worker, seq, model, tokens, amount, end_ms) VALUES ('nobody', 1, 'm', 1, 1, 0)`,
	} {
		if _, err := h.s.w.ExecContext(h.ctx, q); err == nil {
			t.Errorf("%s: accepted, want a constraint violation", q)
		}
	}
}

// testReopen: closing and opening the database again shows the same books
// and continues the query-id counter.
func testReopen(t *testing.T, h *harness) {
	h.populate()
	before := h.books(h.s)
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}
	h.s = h.open()
	if after := h.books(h.s); !reflect.DeepEqual(before, after) {
		t.Errorf("reopened books differ:\nbefore %+v\nafter  %+v", before, after)
	}
	ids := []string{before.Workers[0].ID}
	h.add([]Receipt{rcpt(ids[0], 3, 500)}, at(4*time.Hour))
	b := h.plan(PlanParams{Now: at(5 * time.Hour), MinPayout: 1, Max: 10})
	if int64(b.QueryID) != before.QueryID {
		t.Errorf("query id after reopen = %d, want %d", b.QueryID, before.QueryID)
	}
}

func TestSplitSQL(t *testing.T) {
	got := splitSQL("-- head\nCREATE TABLE a (\n  x INT -- why\n);\n\n-- note; with a semicolon;\nINSERT INTO a VALUES (1);\nSELECT 1")
	want := []string{"CREATE TABLE a (\n  x INT -- why\n);", "INSERT INTO a VALUES (1);", "SELECT 1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitSQL = %q, want %q", got, want)
	}
}
