package store

import (
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
)

func testAddReceipts(t *testing.T, h *harness) {
	type call struct {
		rs         []Receipt
		added, dup int
		err        error
	}
	conflicting := func(r Receipt) Receipt { r.Signed = signed(r.Worker, r.Seq, "forged"); return r }
	cases := []struct {
		name  string
		calls func(a, b string) []call
		// after all calls: earned of a and b, and the seqs held
		earnedA, earnedB uint64
		heldA, heldB     []uint64
	}{
		{"new", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, 1, 100), rcpt(a, 2, 200)}, added: 2}}
		}, 300, 0, []uint64{1, 2}, nil},
		{"replay in a later call", func(a, b string) []call {
			return []call{
				{rs: []Receipt{rcpt(a, 1, 100)}, added: 1},
				{rs: []Receipt{rcpt(a, 1, 100), rcpt(a, 2, 50)}, added: 1, dup: 1},
				{rs: []Receipt{rcpt(a, 2, 50), rcpt(a, 1, 100)}, dup: 2},
			}
		}, 150, 0, []uint64{1, 2}, nil},
		{"replay within a call", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, 1, 100), rcpt(a, 1, 100)}, added: 1, dup: 1}}
		}, 100, 0, []uint64{1}, nil},
		{"conflict with a held receipt stores nothing", func(a, b string) []call {
			return []call{
				{rs: []Receipt{rcpt(a, 1, 100)}, added: 1},
				{rs: []Receipt{rcpt(b, 1, 10), rcpt(a, 2, 10), conflicting(rcpt(a, 1, 100))}, err: ErrConflict},
			}
		}, 100, 0, []uint64{1}, nil},
		{"conflict within a call stores nothing", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, 1, 1), conflicting(rcpt(a, 1, 1))}, err: ErrConflict}}
		}, 0, 0, nil, nil},
		{"unknown worker stores nothing", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, 1, 1), rcpt("nobody", 1, 1)}, err: ErrNotFound}}
		}, 0, 0, nil, nil},
		{"two workers, any order", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(b, 2, 5), rcpt(a, 3, 7), rcpt(b, 1, 6)}, added: 3}}
		}, 7, 11, []uint64{3}, []uint64{1, 2}},
		{"zero amount", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, 1, 0)}, added: 1}}
		}, 0, 0, []uint64{1}, nil},
		{"empty call", func(a, b string) []call { return []call{{}} }, 0, 0, nil, nil},
		{"amount above int64", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, 1, 1), rcpt(a, 2, math.MaxInt64+1)}, err: ErrInvalid}}
		}, 0, 0, nil, nil},
		{"seq above int64", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, math.MaxInt64+1, 1)}, err: ErrInvalid}}
		}, 0, 0, nil, nil},
		{"largest seq", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, math.MaxInt64, 1), rcpt(a, 1, 2)}, added: 2}}
		}, 3, 0, []uint64{1, math.MaxInt64}, nil},
		{"negative tokens", func(a, b string) []call {
			r := rcpt(a, 1, 1)
			r.Tokens = -1
			return []call{{rs: []Receipt{r}, err: ErrInvalid}}
		}, 0, 0, nil, nil},
		{"empty worker", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt("", 1, 1)}, err: ErrInvalid}}
		}, 0, 0, nil, nil},
		{"credit overflow within a call", func(a, b string) []call {
			return []call{{rs: []Receipt{rcpt(a, 1, math.MaxInt64), rcpt(a, 2, 1)}, err: ErrInvalid}}
		}, 0, 0, nil, nil},
		{"earned overflow across calls", func(a, b string) []call {
			return []call{
				{rs: []Receipt{rcpt(a, 1, math.MaxInt64-10)}, added: 1},
				{rs: []Receipt{rcpt(a, 2, 11)}, err: ErrInvalid},
				{rs: []Receipt{rcpt(a, 2, 10)}, added: 1},
			}
		}, math.MaxInt64, 0, []uint64{1, 2}, nil},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wa, wb := newWorker(100+2*ci), newWorker(101+2*ci)
			for _, w := range []Worker{wa, wb} {
				if err := h.s.PutWorker(h.ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			for i, cl := range c.calls(wa.ID, wb.ID) {
				now := at(time.Duration(i+1) * time.Minute)
				added, dup, err := h.s.AddReceipts(h.ctx, cl.rs, now)
				if !errIs(err, cl.err) || added != cl.added || dup != cl.dup {
					t.Fatalf("call %d: AddReceipts = %d, %d, %v; want %d, %d, %v", i, added, dup, err, cl.added, cl.dup, cl.err)
				}
				h.check()
				if err == nil && len(cl.rs) > 0 {
					if w, _ := h.s.Worker(h.ctx, cl.rs[0].Worker); !w.Stats.LastSeen.Equal(now) {
						t.Errorf("call %d: LastSeen = %v, want %v", i, w.Stats.LastSeen, now)
					}
				}
			}
			for _, x := range []struct {
				w      string
				earned uint64
				held   []uint64
			}{{wa.ID, c.earnedA, c.heldA}, {wb.ID, c.earnedB, c.heldB}} {
				if b := h.balance(x.w); b.Earned != x.earned || b.Unpaid != x.earned {
					t.Errorf("balance %+v, want earned = unpaid = %d", b, x.earned)
				}
				rs, err := h.s.Receipts(h.ctx, x.w, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				var held []uint64
				for _, r := range rs {
					held = append(held, r.Seq)
					if want := rcpt(x.w, r.Seq, r.Amount); !reflect.DeepEqual(r, want) {
						t.Errorf("held %+v, want %+v", r, want)
					}
				}
				if !reflect.DeepEqual(held, x.held) {
					t.Errorf("worker %.8s holds seqs %v, want %v", x.w, held, x.held)
				}
			}
		})
	}
}

func testReceiptsAndUsage(t *testing.T, h *harness) {
	ids := h.put(2)
	var rs []Receipt
	for seq := uint64(1); seq <= 10; seq++ {
		r := rcpt(ids[0], seq, seq)
		if seq%2 == 0 {
			r.Model = "qwen"
		}
		r.Tokens = int64(seq * 100)
		rs = append(rs, r)
	}
	h.add(rs, at(time.Hour))
	h.add([]Receipt{rcpt(ids[1], 1, 1)}, at(time.Hour))
	for _, c := range []struct {
		worker       string
		after        uint64
		limit        int
		wantFrom, to int // rs[from:to]
	}{
		{ids[0], 0, 0, 0, 10},
		{ids[0], 3, 4, 3, 7},
		{ids[0], 8, 10, 8, 10},
		{ids[0], 10, 0, 0, 0},
		{ids[0], math.MaxUint64, 0, 0, 0},
		{"nobody", 0, 0, 0, 0},
	} {
		got, err := h.s.Receipts(h.ctx, c.worker, c.after, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		want := rs[c.wantFrom:c.to]
		if len(want) == 0 {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Receipts(%.8s, %d, %d) = %d receipts, want seqs %d..%d", c.worker, c.after, c.limit, len(got), c.wantFrom+1, c.to)
		}
	}
	for _, c := range []struct {
		model string
		since time.Time
		want  int64
	}{
		{"llama-3.1-8b", time.Time{}, 100 + 300 + 500 + 700 + 900 + 1801},
		{"llama-3.1-8b", at(5 * time.Second), 500 + 700 + 900},
		{"qwen", at(10 * time.Second), 1000},
		{"qwen", at(10*time.Second + time.Millisecond), 0},
		{"none", time.Time{}, 0},
	} {
		got, err := h.s.Usage(h.ctx, c.model, c.since)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("Usage(%s, %v) = %d, want %d", c.model, c.since, got, c.want)
		}
	}
}

// testConcurrentReceipts: many goroutines on two Stores (two registries on
// one database) send every receipt of four workers, each in its own order,
// while a planner pays and heartbeats arrive. Each receipt must be added
// exactly once and credited exactly once.
func testConcurrentReceipts(t *testing.T, h *harness) {
	const workers, perWorker, senders, chunk, beats = 4, 150, 12, 25, 40
	ids := h.put(workers)
	var all []Receipt
	var want = map[string]uint64{}
	for _, w := range ids {
		for seq := uint64(1); seq <= perWorker; seq++ {
			r := rcpt(w, seq, 1000+seq)
			all = append(all, r)
			want[w] += r.Amount
		}
	}
	stores := []*sqlStore{h.s, h.open()}
	var mu sync.Mutex
	var added, dup int
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			s := stores[g%len(stores)]
			rs := append([]Receipt(nil), all...)
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
			for i := 0; i < len(rs); i += chunk {
				a, d, err := s.AddReceipts(h.ctx, rs[i:min(i+chunk, len(rs))], at(time.Duration(g)*time.Second))
				if err != nil {
					t.Errorf("sender %d: %v", g, err)
					return
				}
				mu.Lock()
				added, dup = added+a, dup+d
				mu.Unlock()
			}
		})
	}
	// One planner per Store: on PostgreSQL two registries plan at once.
	stop := make(chan struct{})
	var planners sync.WaitGroup
	for pi, s := range stores {
		planners.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				b, err := s.PlanBatch(h.ctx, PlanParams{Now: at(time.Hour), MinPayout: 1, Max: 2})
				if err != nil {
					t.Errorf("planner %d: %v", pi, err)
					return
				}
				if b == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				if n%3 == 0 {
					err = s.ExpireBatch(h.ctx, b.ID, "test", at(time.Hour))
				} else if err = s.SignBatch(h.ctx, b.ID, []byte("boc"), "h", at(time.Hour)); err == nil {
					if err = s.MarkSent(h.ctx, b.ID, at(time.Hour)); err == nil {
						err = s.ConfirmBatch(h.ctx, b.ID, 1, "tx", at(time.Hour))
					}
				}
				if err != nil {
					t.Errorf("planner %d: batch %d: %v", pi, b.ID, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range beats {
			if err := stores[i%2].Heartbeat(h.ctx, ids[0], Heartbeat{At: at(time.Duration(i) * time.Second), Served: 1, LatencyMS: 10}); err != nil {
				t.Errorf("heartbeat: %v", err)
				return
			}
		}
	})
	wg.Wait()
	close(stop)
	planners.Wait()

	if total := len(all); added != total || added+dup != senders*total {
		t.Errorf("added %d, dup %d; want added %d, added+dup %d", added, dup, total, senders*total)
	}
	for _, w := range ids {
		if b := h.balance(w); b.Earned != want[w] {
			t.Errorf("worker %.8s earned %d, want %d (%+v)", w, b.Earned, want[w], b)
		}
		rs, err := h.s.Receipts(h.ctx, w, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != perWorker {
			t.Errorf("worker %.8s holds %d receipts, want %d", w, len(rs), perWorker)
		}
	}
	if w, _ := h.s.Worker(h.ctx, ids[0]); w.Stats.Heartbeats != beats || w.Stats.Served != beats {
		t.Errorf("after %d concurrent heartbeats: %+v", beats, w.Stats)
	}
	// Query ids were allocated once each, in order of batch ID.
	bs, err := h.s.Batches(h.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bs {
		if want := uint32(len(bs) - 1 - i); b.QueryID != want {
			t.Errorf("batch %d: query id %d, want %d", b.ID, b.QueryID, want)
		}
	}
	h.check()
	t.Logf("%d receipts added once among %d submissions; %d batches", added, added+dup, len(bs))
}
