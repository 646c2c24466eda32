package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// op is a state change as the suite drives it.
type op struct {
	name string
	do   func(h *harness, id int64, now time.Time) error
}

var (
	opSign = op{"sign", func(h *harness, id int64, now time.Time) error {
		return h.s.SignBatch(h.ctx, id, []byte("boc"), "msghash", now)
	}}
	opSend = op{"mark sent", func(h *harness, id int64, now time.Time) error {
		return h.s.MarkSent(h.ctx, id, now)
	}}
	opConfirm = op{"confirm", func(h *harness, id int64, now time.Time) error {
		return h.s.ConfirmBatch(h.ctx, id, 1234, "txhash", now)
	}}
	opExpire = op{"expire", func(h *harness, id int64, now time.Time) error {
		return h.s.ExpireBatch(h.ctx, id, "ttl passed", now)
	}}
)

// testTransitions applies every state change to a batch in every state:
// the legal ones change state and money as the doc says, the others fail
// with ErrConflict naming both states and change nothing.
func testTransitions(t *testing.T, h *harness) {
	// How to bring a new batch to each state.
	paths := []struct {
		state BatchState
		path  []op
		sends int
	}{
		{Planned, nil, 0},
		{Signed, []op{opSign}, 0},
		{Sent, []op{opSign, opSend}, 1},
		{Sent, []op{opSign, opSend, opSend}, 2},
		{Confirmed, []op{opSign, opSend, opConfirm}, 1},
		{Expired, []op{opExpire}, 0},
	}
	legal := map[BatchState]map[string]BatchState{
		Planned: {"sign": Signed, "expire": Expired},
		Signed:  {"mark sent": Sent, "expire": Expired},
		Sent:    {"mark sent": Sent, "confirm": Confirmed, "expire": Expired},
	}
	const amount = 777
	for _, from := range paths {
		for _, o := range []op{opSign, opSend, opConfirm, opExpire} {
			t.Run(string(from.state)+"/"+o.name, func(t *testing.T) {
				h := h.fresh(t)
				w := h.put(1)[0]
				h.add([]Receipt{rcpt(w, 1, amount)}, at(0))
				b := h.plan(PlanParams{Now: at(time.Minute), CreatedAt: at(time.Minute), MinPayout: 1, Max: 1})
				for i, p := range from.path {
					if err := p.do(h, b.ID, at(time.Duration(i+2)*time.Minute)); err != nil {
						t.Fatalf("%s: %v", p.name, err)
					}
					h.check()
				}
				before, err := h.s.Batch(h.ctx, b.ID)
				if err != nil {
					t.Fatal(err)
				}
				balBefore := h.balance(w)

				now := at(time.Hour)
				err = o.do(h, b.ID, now)
				h.check()
				to, ok := legal[from.state][o.name]
				if !ok {
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("%s a %s batch = %v, want ErrConflict", o.name, from.state, err)
					}
					if msg := err.Error(); !strings.Contains(msg, "state "+string(from.state)) || !strings.Contains(msg, "want ") {
						t.Errorf("error %q should name the current state %s and the wanted one", msg, from.state)
					}
					after, _ := h.s.Batch(h.ctx, b.ID)
					if !reflect.DeepEqual(after, before) || h.balance(w) != balBefore {
						t.Errorf("a refused %s changed the books: batch %+v -> %+v", o.name, before, after)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s a %s batch: %v", o.name, from.state, err)
				}
				after, err := h.s.Batch(h.ctx, b.ID)
				if err != nil {
					t.Fatal(err)
				}
				want := *before
				want.State, want.Updated = to, now
				switch o.name {
				case "sign":
					want.Message, want.MsgHash = []byte("boc"), "msghash"
				case "mark sent":
					want.Sends++
				case "confirm":
					want.Fees, want.TxHash = 1234, "txhash"
				case "expire":
					want.Error = "ttl passed"
				}
				if !reflect.DeepEqual(*after, want) {
					t.Errorf("after %s: %+v\nwant %+v", o.name, *after, want)
				}
				if from.state == Sent && o.name == "mark sent" && after.Sends != from.sends+1 {
					t.Errorf("sends %d, want %d", after.Sends, from.sends+1)
				}
				wantBal := Balance{Worker: w, Earned: amount, InFlight: amount}
				switch to {
				case Confirmed:
					wantBal = Balance{Worker: w, Earned: amount, Paid: amount}
				case Expired:
					wantBal = Balance{Worker: w, Earned: amount, Unpaid: amount}
				}
				if got := h.balance(w); got != wantBal {
					t.Errorf("balance after %s: %+v, want %+v", o.name, got, wantBal)
				}
			})
		}
	}

	for _, o := range []op{opSign, opSend, opConfirm, opExpire} {
		if err := o.do(h, 999, at(0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s an unknown batch = %v, want ErrNotFound", o.name, err)
		}
	}
	if err := h.s.SignBatch(h.ctx, 999, nil, "", at(0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SignBatch without a message = %v, want ErrInvalid", err)
	}
	if err := h.s.ConfirmBatch(h.ctx, 999, 1<<63, "", at(0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("ConfirmBatch with fees above int64 = %v, want ErrInvalid", err)
	}
}

func testBatchLists(t *testing.T, h *harness) {
	ids := h.put(3)
	var bs []*Batch
	for i := range 4 {
		for j, w := range ids {
			h.add([]Receipt{rcpt(w, uint64(10*i+j+1), uint64(100*(i+1)+j))}, at(0))
		}
		bs = append(bs, h.plan(PlanParams{Now: at(time.Duration(i) * time.Hour), CreatedAt: at(time.Duration(i) * time.Hour), MinPayout: 1, Max: 3}))
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// b0 confirmed, b1 expired, b2 planned, b3 sent.
	for _, o := range []op{opSign, opSend, opConfirm} {
		must(o.do(h, bs[0].ID, at(5*time.Hour)))
	}
	must(opExpire.do(h, bs[1].ID, at(5*time.Hour)))
	for _, o := range []op{opSign, opSend} {
		must(o.do(h, bs[3].ID, at(5*time.Hour)))
	}
	get := func(id int64) Batch {
		b, err := h.s.Batch(h.ctx, id)
		must(err)
		if len(b.Items) != 3 {
			t.Errorf("batch %d has %d items, want 3", id, len(b.Items))
		}
		return *b
	}
	b0, b1, b2, b3 := get(bs[0].ID), get(bs[1].ID), get(bs[2].ID), get(bs[3].ID)
	if b0.State != Confirmed || b0.Total() != 100+101+102 || b0.TxHash != "txhash" || b0.Sends != 1 {
		t.Errorf("confirmed batch %+v", b0)
	}
	open, err := h.s.OpenBatches(h.ctx)
	must(err)
	if want := []Batch{b2, b3}; !reflect.DeepEqual(open, want) {
		t.Errorf("OpenBatches = %+v\nwant %+v", open, want)
	}
	for _, c := range []struct {
		limit int
		want  []Batch
	}{
		{0, []Batch{b3, b2, b1, b0}},
		{2, []Batch{b3, b2}},
		{9, []Batch{b3, b2, b1, b0}},
	} {
		got, err := h.s.Batches(h.ctx, c.limit)
		must(err)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Batches(%d) = %+v\nwant %+v", c.limit, got, c.want)
		}
	}
	if _, err := h.s.Batch(h.ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Batch(999) = %v, want ErrNotFound", err)
	}
}
