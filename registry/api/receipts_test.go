package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/registry/market"
)

func TestReceipts(t *testing.T) {
	e := newEnv(t)
	e.register(fxWorker)
	ctx := context.Background()
	end := t0.Add(30 * time.Second)
	batch := []receipt.Signed{
		fxWorker.receipt(t, 1, model, 600, 400, end),
		fxWorker.receipt(t, 2, model, 1000, 1000, end),
		fxWorker.receipt(t, 5, model, 10, 0, end), // gaps are allowed
	}
	resp, err := e.cl.SubmitReceipts(ctx, fxWorker.id, batch)
	if err != nil {
		t.Fatal(err)
	}
	if *resp != (ReceiptsResponse{AckedThrough: 5, Added: 3}) {
		t.Fatalf("%+v", resp)
	}
	// One worker, no demand before this batch: the market price is min
	// (below the worker's asking price), and credit is at the lower.
	mkt := market.Price(basePrice, minPrice, maxPrice, 0, 1, market.DefaultPriceParams())
	var want uint64
	for _, s := range batch {
		_, a, _ := market.Credit(s.Receipt.Usage, 1_000_000, mkt)
		want += a
	}
	bal, err := e.st.Balance(ctx, fxWorker.id)
	if err != nil || bal.Earned != want || bal.Unpaid != want || want == 0 {
		t.Fatalf("balance %+v, want earned %d (%v)", bal, want, err)
	}
	rs, err := e.st.Receipts(ctx, fxWorker.id, 0, 10)
	if err != nil || len(rs) != 3 || rs[1].Tokens != 2000 || rs[1].Model != model {
		t.Fatalf("%+v %v", rs, err)
	}
	if d, err := receipt.Decode(bytes.NewReader(rs[1].Signed)); err != nil || d.Receipt != batch[1].Receipt {
		t.Fatalf("stored receipt does not decode to the one sent: %v", err)
	}

	// A replay is acknowledged the same, and credits nothing.
	before := e.books()
	resp, err = e.cl.SubmitReceipts(ctx, fxWorker.id, batch)
	if err != nil || *resp != (ReceiptsResponse{AckedThrough: 5, Duplicates: 3}) {
		t.Fatalf("replay: %+v %v", resp, err)
	}
	e.unchanged(before)

	// Part replay, part new.
	resp, err = e.cl.SubmitReceipts(ctx, fxWorker.id, append(batch[2:], fxWorker.receipt(t, 6, model, 1, 1, end), fxWorker.receipt(t, 6, model, 1, 1, end)))
	if err != nil || *resp != (ReceiptsResponse{AckedThrough: 6, Added: 1, Duplicates: 2}) {
		t.Fatalf("%+v %v", resp, err)
	}
}

func TestReceiptsRefused(t *testing.T) {
	fixtures(t)
	end := t0.Add(30 * time.Second)
	ok := func(seq uint64) receipt.Signed { return fxWorker.receipt(t, seq, model, 100, 100, end) }
	inflated := ok(2)
	inflated.Receipt.Usage.Completion *= 10 // what the worker signed was less
	resigned := ok(2)
	resigned.Signature = strings.Repeat("00", 64)
	huge := func(seq uint64) receipt.Signed {
		return fxWorker.receipt(t, seq, model, math.MaxInt64/2, math.MaxInt64/2, end)
	}
	for _, c := range []struct {
		name   string
		id     string // default fxWorker's
		body   func() []byte
		ct     string
		status int
		code   string
	}{
		{name: "inflated token count", body: receiptBody(ok(1), inflated, ok(3)), status: 400, code: CodeBadSignature},
		{name: "zero signature", body: receiptBody(resigned), status: 400, code: CodeBadSignature},
		{name: "model the worker does not serve", body: receiptBody(ok(1), fxWorker.receipt(t, 2, otherModel, 1, 1, end)), status: 400, code: CodeBadModel},
		{name: "another worker's receipt", body: receiptBody(ok(1), fxWorker2.receipt(t, 2, model, 1, 1, end)), status: 400, code: CodeBadReceipt},
		{name: "ends after the certificate expired", body: receiptBody(fxWorker.receipt(t, 1, model, 1, 1, t0.Add(time.Hour+61*time.Second))), status: 400, code: CodeBadReceipt},
		{name: "ends in the future", body: receiptBody(fxWorker.receipt(t, 1, model, 1, 1, t0.Add(4*time.Minute))), status: 400, code: CodeBadReceipt},
		{name: "invalid receipt", body: func() []byte {
			r := ok(1)
			r.Receipt.V = 2
			return receiptBody(r)()
		}, status: 400, code: CodeBadReceipt},
		{name: "seq beyond what the books hold", body: receiptBody(fxWorker.receipt(t, 1<<63, model, 1, 1, end)), status: 400, code: CodeBadReceipt},
		{name: "credit beyond what the books hold", body: receiptBody(huge(1), huge(2), huge(3)), status: 400, code: CodeBadReceipt},
		{name: "seq held with other content", body: receiptBody(fxWorker.receipt(t, 100, model, 7, 7, end)), status: 409, code: CodeConflict},
		{name: "two receipts with one seq", body: receiptBody(ok(1), fxWorker.receipt(t, 1, model, 5, 5, end)), status: 409, code: CodeConflict},
		{name: "unknown worker", id: fxWorker2.id, body: receiptBody(fxWorker2.receipt(t, 1, model, 1, 1, end)), status: 404, code: CodeUnknownWorker},
		{name: "malformed worker id", id: "xyz", body: receiptBody(ok(1)), status: 404, code: CodeUnknownWorker},
		{name: "empty batch", body: receiptBody(), status: 400, code: CodeBadRequest},
		{name: "too many receipts", body: func() []byte {
			b := make([]receipt.Signed, MaxBatch+1)
			for i := range b {
				b[i] = ok(1)
			}
			return receiptBody(b...)()
		}, status: 413, code: CodeTooLarge},
		{name: "oversized body", body: func() []byte {
			return []byte(`{"receipts":[],"pad":"` + strings.Repeat("x", maxReceiptsBody) + `"}`)
		}, status: 413, code: CodeTooLarge},
		{name: "malformed JSON", body: func() []byte { return []byte(`{"receipts":[{]}`) }, status: 400, code: CodeMalformedJSON},
		{name: "unknown field in a receipt", body: func() []byte {
			return bytes.Replace(receiptBody(ok(1))(), []byte(`"sig"`), []byte(`"bonus":1,"sig"`), 1)
		}, status: 400, code: CodeMalformedJSON},
		{name: "wrong content type", body: receiptBody(ok(1)), ct: "application/x-www-form-urlencoded", status: 415, code: CodeMediaType},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.register(fxWorker)
			// Seq 100 is held, and some money is earned, before the refusal.
			if _, err := e.cl.SubmitReceipts(context.Background(), fxWorker.id, []receipt.Signed{fxWorker.receipt(t, 100, model, 1000, 1000, end)}); err != nil {
				t.Fatal(err)
			}
			before := e.books()
			id := fxWorker.id
			if c.id != "" {
				id = c.id
			}
			ct := "application/json"
			if c.ct != "" {
				ct = c.ct
			}
			status, body, _ := e.do("POST", "/v1/workers/"+id+"/receipts", ct, c.body())
			wantError(t, status, body, c.status, c.code)
			e.unchanged(before)
		})
	}
}

func receiptBody(rs ...receipt.Signed) func() []byte {
	return func() []byte {
		if rs == nil {
			rs = []receipt.Signed{}
		}
		b, err := json.Marshal(ReceiptsRequest{Receipts: rs})
		if err != nil {
			panic(err)
		}
		return b
	}
}

// Receipts a worker signed before its certificate expired are paid when
// they arrive later (the worker was offline, or flushing after a reboot).
func TestReceiptsAfterExpiry(t *testing.T) {
	e := newEnv(t)
	e.register(fxWorker)
	e.clock.Set(t0.Add(3 * time.Hour))
	r, err := e.cl.SubmitReceipts(context.Background(), fxWorker.id, []receipt.Signed{fxWorker.receipt(t, 1, model, 1, 1, t0.Add(59*time.Minute))})
	if err != nil || r.Added != 1 {
		t.Fatalf("%+v %v", r, err)
	}
}

// The Submitter is a guest/receipt.Submitter: a worker's Sender drains its
// journal into the registry.
func TestSubmitterWithSender(t *testing.T) {
	e := newEnv(t)
	e.register(fxWorker)
	js, err := receipt.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	for i := range 600 {
		r := fxWorker.receipt(t, 1, model, int64(i), 10, t0.Add(30*time.Second)).Receipt
		r.Seq = 0 // the journal numbers them
		if _, err := js.Append(r, fxWorker.key); err != nil {
			t.Fatal(err)
		}
	}
	snd := &receipt.Sender{Store: js, Submit: e.cl.Submitter(fxWorker.key.Public().(ed25519.PublicKey))}
	if err := snd.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if js.Len() != 0 || js.Acked() != 600 {
		t.Fatalf("pending %d, acked %d", js.Len(), js.Acked())
	}
	rs, err := e.st.Receipts(context.Background(), fxWorker.id, 0, 1000)
	if err != nil || len(rs) != 600 {
		t.Fatalf("%d receipts, %v", len(rs), err)
	}
	// The client's typed error.
	_, err = e.cl.Submitter(fxWorker2.key.Public().(ed25519.PublicKey)).Submit(context.Background(), []receipt.Signed{fxWorker2.receipt(t, 1, model, 1, 1, t0)})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeUnknownWorker || !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v", err)
	}
}
