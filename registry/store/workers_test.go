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

func testWorkers(t *testing.T, h *harness) {
	w1, w0 := newWorker(1), newWorker(0)
	w1.MinPayout, w1.PayoutEvery = 1_000_000_000, 6*time.Hour
	w1.Stats = Stats{LastSeen: at(time.Second), Heartbeats: 3, Served: 30, Failed: 2, LatencyMS: 12.25}
	for _, w := range []Worker{w1, w0} {
		if err := h.s.PutWorker(h.ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// w0 has nil Models, Certificate and Evidence after the round trip
	// when they were empty.
	wEmpty := newWorker(2)
	wEmpty.Models, wEmpty.Certificate, wEmpty.Evidence = []string{}, []byte{}, nil
	if err := h.s.PutWorker(h.ctx, wEmpty); err != nil {
		t.Fatal(err)
	}
	wEmpty.Models, wEmpty.Certificate = nil, nil

	got, err := h.s.Worker(h.ctx, w1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, w1) {
		t.Errorf("Worker = %+v\nwant     %+v", *got, w1)
	}
	all, err := h.s.Workers(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Worker{w0, w1, wEmpty}
	sortWorkers(want)
	if !reflect.DeepEqual(all, want) {
		t.Errorf("Workers = %+v\nwant      %+v", all, want)
	}

	// Re-registration replaces all but RegisteredAt and Stats.
	re := newWorker(1)
	re.PublicKey, re.Payout, re.Endpoint, re.Models = "new key", "UQnew", "10.9.9.9:1", []string{"x"}
	re.Price, re.MinPayout, re.PayoutEvery = 7, 8, time.Minute
	re.Certificate, re.Evidence, re.CertExpires = []byte{9}, []byte(`{"new":true}`), at(48*time.Hour)
	re.RegisteredAt, re.Stats = at(99*time.Hour), Stats{Heartbeats: 1000}
	if err := h.s.PutWorker(h.ctx, re); err != nil {
		t.Fatal(err)
	}
	wantRe := re
	wantRe.RegisteredAt, wantRe.Stats = w1.RegisteredAt, w1.Stats
	if got, _ := h.s.Worker(h.ctx, w1.ID); !reflect.DeepEqual(*got, wantRe) {
		t.Errorf("after re-registration Worker = %+v\nwant %+v", *got, wantRe)
	}

	if _, err := h.s.Worker(h.ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Worker(nobody) = %v, want ErrNotFound", err)
	}
	bad := func(f func(w *Worker)) Worker { w := newWorker(5); f(&w); return w }
	for _, c := range []struct {
		name string
		w    Worker
	}{
		{"empty ID", bad(func(w *Worker) { w.ID = "" })},
		{"price above int64", bad(func(w *Worker) { w.Price = math.MaxInt64 + 1 })},
		{"min payout above int64", bad(func(w *Worker) { w.MinPayout = math.MaxUint64 })},
		{"negative schedule", bad(func(w *Worker) { w.PayoutEvery = -time.Second })},
		{"negative served", bad(func(w *Worker) { w.Stats.Served = -1 })},
		{"NaN latency", bad(func(w *Worker) { w.Stats.LatencyMS = math.NaN() })},
	} {
		if err := h.s.PutWorker(h.ctx, c.w); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: PutWorker = %v, want ErrInvalid", c.name, err)
		}
	}
	if all, _ := h.s.Workers(h.ctx); len(all) != 3 {
		t.Errorf("%d workers after refused puts, want 3", len(all))
	}
}

func sortWorkers(ws []Worker) {
	slices.SortFunc(ws, func(a, b Worker) int { return strings.Compare(a.ID, b.ID) })
}

func testHeartbeat(t *testing.T, h *harness) {
	id := h.put(1)[0]
	ewma := func(old, x float64) float64 { return 0.8*old + 0.2*x }
	steps := []struct {
		name    string
		hb      Heartbeat
		wantErr error
		want    Stats
	}{
		{"first, no latency", Heartbeat{At: at(time.Second), Served: 0}, nil,
			Stats{LastSeen: at(time.Second), Heartbeats: 1}},
		{"first latency seeds the mean", Heartbeat{At: at(2 * time.Second), Served: 5, Failed: 1, LatencyMS: 100}, nil,
			Stats{LastSeen: at(2 * time.Second), Heartbeats: 2, Served: 5, Failed: 1, LatencyMS: 100}},
		{"then alpha 0.2", Heartbeat{At: at(3 * time.Second), Served: 5, LatencyMS: 200}, nil,
			Stats{LastSeen: at(3 * time.Second), Heartbeats: 3, Served: 10, Failed: 1, LatencyMS: ewma(100, 200)}},
		{"no latency keeps the mean", Heartbeat{At: at(4 * time.Second)}, nil,
			Stats{LastSeen: at(4 * time.Second), Heartbeats: 4, Served: 10, Failed: 1, LatencyMS: ewma(100, 200)}},
		{"again", Heartbeat{At: at(5 * time.Second), Served: 1, Failed: 2, LatencyMS: 50.5}, nil,
			Stats{LastSeen: at(5 * time.Second), Heartbeats: 5, Served: 11, Failed: 3, LatencyMS: ewma(ewma(100, 200), 50.5)}},
		{"late heartbeat: LastSeen stays", Heartbeat{At: at(time.Second)}, nil,
			Stats{LastSeen: at(5 * time.Second), Heartbeats: 6, Served: 11, Failed: 3, LatencyMS: ewma(ewma(100, 200), 50.5)}},
		{"negative served", Heartbeat{At: at(6 * time.Second), Served: -1}, ErrInvalid, Stats{}},
		{"NaN latency", Heartbeat{At: at(6 * time.Second), LatencyMS: math.NaN()}, ErrInvalid, Stats{}},
		{"infinite latency", Heartbeat{At: at(6 * time.Second), LatencyMS: math.Inf(1)}, ErrInvalid, Stats{}},
	}
	var want Stats
	for _, st := range steps {
		err := h.s.Heartbeat(h.ctx, id, st.hb)
		if !errIs(err, st.wantErr) {
			t.Fatalf("%s: Heartbeat = %v, want %v", st.name, err, st.wantErr)
		}
		if err == nil {
			want = st.want
		}
		w, err := h.s.Worker(h.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got := w.Stats
		if math.Abs(got.LatencyMS-want.LatencyMS) > 1e-9 {
			t.Errorf("%s: LatencyMS = %v, want %v", st.name, got.LatencyMS, want.LatencyMS)
		}
		got.LatencyMS = want.LatencyMS
		if got != want {
			t.Errorf("%s: Stats = %+v, want %+v", st.name, got, want)
		}
	}
	if err := h.s.Heartbeat(h.ctx, "nobody", Heartbeat{At: at(0)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Heartbeat(nobody) = %v, want ErrNotFound", err)
	}
}
