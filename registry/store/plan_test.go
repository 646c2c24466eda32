package store

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// plan plans a batch that must not be empty.
func (h *harness) plan(p PlanParams) *Batch {
	h.t.Helper()
	b, err := h.s.PlanBatch(h.ctx, p)
	if err != nil {
		h.t.Fatalf("PlanBatch: %v", err)
	}
	if b == nil {
		h.t.Fatalf("PlanBatch(%+v): nothing due", p)
	}
	h.check()
	return b
}

func testPlanBatch(t *testing.T, h *harness) {
	// Workers by name; their IDs (hashes) order them differently.
	names := []string{"A", "B", "C", "D", "E", "F", "G"}
	id := map[string]string{}
	for i, n := range names {
		w := newWorker(200 + i)
		switch n {
		case "B":
			w.MinPayout = 5000 // own threshold above the default
		case "C":
			w.MinPayout = 10 // own threshold below it
		case "D":
			w.PayoutEvery = 2 * time.Hour // own schedule
		case "E":
			w.Payout = "" // nowhere to pay
		}
		if err := h.s.PutWorker(h.ctx, w); err != nil {
			t.Fatal(err)
		}
		id[n] = w.ID
	}
	p := func(now time.Duration) PlanParams {
		return PlanParams{Now: at(now), CreatedAt: at(now + time.Second), MinPayout: 1000, Every: time.Hour, Max: 10}
	}
	var seq uint64
	credit := func(amounts map[string]uint64) {
		for n, a := range amounts {
			seq++
			h.add([]Receipt{rcpt(id[n], seq, a)}, at(0))
		}
	}
	var last *Batch
	steps := []struct {
		name   string
		credit map[string]uint64
		before func() // e.g. expire the last batch
		params PlanParams
		want   map[string]uint64 // items by name; nil: nothing due
	}{
		{"nothing credited", nil, nil, p(0), nil},
		{"thresholds: own below, default, own above; no address", map[string]uint64{"A": 999, "B": 4000, "C": 50, "D": 1000, "E": 5000}, nil,
			p(0), map[string]uint64{"C": 50, "D": 1000}},
		{"threshold reached exactly; C paid 30 min ago is not due", map[string]uint64{"A": 1, "C": 100}, nil,
			p(30 * time.Minute), map[string]uint64{"A": 1000}},
		{"default schedule reached exactly; D's own is 2h", map[string]uint64{"D": 5000}, nil,
			p(time.Hour), map[string]uint64{"C": 100}},
		{"an expired batch does not count as the last payout", nil, func() { h.expire(last.ID) },
			p(time.Hour + time.Minute), map[string]uint64{"C": 100}},
		{"own schedule reached", nil, nil, p(2 * time.Hour), map[string]uint64{"D": 5000}},
		{"nothing due", map[string]uint64{"B": 999}, nil, p(2 * time.Hour), nil},
		{"own threshold reached; the whole balance goes", map[string]uint64{"B": 1, "A": 7000}, nil,
			p(3 * time.Hour), map[string]uint64{"A": 7000, "B": 5000}},
	}
	var qid uint32
	for _, st := range steps {
		credit(st.credit)
		if st.before != nil {
			st.before()
		}
		b, err := h.s.PlanBatch(h.ctx, st.params)
		if err != nil {
			t.Fatalf("%s: PlanBatch: %v", st.name, err)
		}
		h.check()
		if st.want == nil {
			if b != nil {
				t.Fatalf("%s: planned %+v, want nothing", st.name, b)
			}
			continue
		}
		if b == nil {
			t.Fatalf("%s: nothing planned, want %v", st.name, st.want)
		}
		var want []Item
		for n, a := range st.want {
			w, _ := h.s.Worker(h.ctx, id[n])
			want = append(want, Item{Worker: id[n], Address: w.Payout, Amount: a})
		}
		slices.SortFunc(want, func(a, b Item) int { return strings.Compare(a.Worker, b.Worker) })
		if !reflect.DeepEqual(b.Items, want) {
			t.Errorf("%s: items %+v, want %+v", st.name, b.Items, want)
		}
		if b.State != Planned || b.QueryID != qid || !b.CreatedAt.Equal(st.params.CreatedAt) || !b.Updated.Equal(st.params.Now) {
			t.Errorf("%s: batch %+v, want planned, query id %d, created %v, updated %v", st.name, b, qid, st.params.CreatedAt, st.params.Now)
		}
		if got, err := h.s.Batch(h.ctx, b.ID); err != nil || !reflect.DeepEqual(got, b) {
			t.Errorf("%s: Batch(%d) = %+v, %v; want %+v", st.name, b.ID, got, err, b)
		}
		for _, it := range b.Items {
			if bal := h.balance(it.Worker); bal.Unpaid != 0 {
				t.Errorf("%s: %+v after planning, want unpaid 0", st.name, bal)
			}
		}
		qid++
		last = b
	}

	t.Run("Max", func(t *testing.T) {
		h := h.fresh(t)
		ids := h.put(5)
		for i, w := range ids {
			h.add([]Receipt{rcpt(w, 1, uint64(100+i))}, at(0))
		}
		slices.Sort(ids)
		params := PlanParams{Now: at(time.Hour), MinPayout: 1, Max: 2}
		for _, want := range [][]string{ids[:2], ids[2:4], ids[4:]} {
			b := h.plan(params)
			var got []string
			for _, it := range b.Items {
				got = append(got, it.Worker)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("batch %d pays %v, want %v", b.ID, got, want)
			}
		}
		if b, err := h.s.PlanBatch(h.ctx, params); b != nil || err != nil {
			t.Errorf("after all paid: %+v, %v; want nil, nil", b, err)
		}
	})

	t.Run("address at planning time", func(t *testing.T) {
		h := h.fresh(t)
		w := newWorker(1)
		if err := h.s.PutWorker(h.ctx, w); err != nil {
			t.Fatal(err)
		}
		h.add([]Receipt{rcpt(w.ID, 1, 10)}, at(0))
		b := h.plan(PlanParams{Now: at(time.Hour), MinPayout: 1, Max: 1})
		old := w.Payout
		w.Payout = "UQmoved"
		if err := h.s.PutWorker(h.ctx, w); err != nil {
			t.Fatal(err)
		}
		if got, _ := h.s.Batch(h.ctx, b.ID); got.Items[0].Address != old {
			t.Errorf("planned item address %q after the worker moved, want %q", got.Items[0].Address, old)
		}
		h.add([]Receipt{rcpt(w.ID, 2, 10)}, at(0))
		if b := h.plan(PlanParams{Now: at(time.Hour), MinPayout: 1, Max: 1}); b.Items[0].Address != "UQmoved" {
			t.Errorf("next item address %q, want UQmoved", b.Items[0].Address)
		}
	})

	for _, c := range []struct {
		name string
		p    PlanParams
	}{
		{"no Max", PlanParams{Now: at(0), MinPayout: 1}},
		{"negative Max", PlanParams{Now: at(0), MinPayout: 1, Max: -1}},
		{"negative Every", PlanParams{Now: at(0), Every: -time.Second, Max: 1}},
		{"min payout above int64", PlanParams{Now: at(0), MinPayout: math.MaxInt64 + 1, Max: 1}},
	} {
		if b, err := h.s.PlanBatch(h.ctx, c.p); !errors.Is(err, ErrInvalid) || b != nil {
			t.Errorf("%s: PlanBatch = %v, %v; want ErrInvalid", c.name, b, err)
		}
	}
}

func (h *harness) expire(id int64) {
	h.t.Helper()
	if err := h.s.ExpireBatch(h.ctx, id, "ttl", at(0)); err != nil {
		h.t.Fatal(err)
	}
	h.check()
}

// testQueryIDWrap: the counter runs modulo 2^23 and survives in the
// database.
func testQueryIDWrap(t *testing.T, h *harness) {
	ids := h.put(1)
	if _, err := h.s.w.ExecContext(h.ctx, `UPDATE counters SET value = 8388606 WHERE name = 'query_id'`); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint32{1<<23 - 2, 1<<23 - 1, 0, 1} {
		h.add([]Receipt{rcpt(ids[0], uint64(i+1), 5)}, at(0))
		if b := h.plan(PlanParams{Now: at(0), MinPayout: 1, Max: 1}); b.QueryID != want {
			t.Errorf("batch %d: query id %d, want %d", i, b.QueryID, want)
		}
	}
}
