package api

import (
	"errors"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/registry/market"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// MaxBatch is the most receipts in one POST.
const MaxBatch = 1024

// receiptSkew is how long after its certificate's expiry a receipt may
// end: the worker's clock may run a little ahead of the registry's.
const receiptSkew = time.Minute

// receipts is POST /v1/workers/{id}/receipts. The batch is all or
// nothing: every receipt is checked before any is stored, and the store
// adds them in one transaction, so a refused batch leaves no trace in the
// books.
func (s *Server) receipts(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := parseID(id); err != nil {
		return err
	}
	ctx := r.Context()
	wk, err := s.worker(r, id) // before reading the body: no work for nobody
	if err != nil {
		return err
	}
	var req ReceiptsRequest
	if err := decodeJSON(w, r, maxReceiptsBody, &req); err != nil {
		return err
	}
	now := s.now()
	resp, err := s.ingest(r, wk, req.Receipts, now)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.status < 500 {
			s.event(ctx, now, "warn", wk.ID, "receipts refused: "+he.msg)
		}
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) ingest(r *http.Request, wk *store.Worker, batch []receipt.Signed, now time.Time) (*ReceiptsResponse, error) {
	switch n := len(batch); {
	case n == 0:
		return nil, fail(http.StatusBadRequest, CodeBadRequest, nil, "no receipts")
	case n > MaxBatch:
		return nil, fail(http.StatusRequestEntityTooLarge, CodeTooLarge, nil, "%d receipts, at most %d per batch", n, MaxBatch)
	}
	mkt, err := s.market(r.Context(), now)
	if err != nil {
		return nil, storeErr(err)
	}
	rs, err := s.checkBatch(wk, batch, mkt, now)
	if err != nil {
		return nil, err
	}
	rs, dupInBatch, err := dedupe(rs)
	if err != nil {
		return nil, err
	}
	added, dup, err := s.Store.AddReceipts(r.Context(), rs, now)
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, fail(http.StatusConflict, CodeConflict, err, "a receipt of this batch has the seq of a different receipt the registry holds")
	case errors.Is(err, store.ErrInvalid):
		// What the books cannot hold: a seq or a credit above 2^63-1.
		return nil, fail(http.StatusBadRequest, CodeBadReceipt, err, "the books cannot hold this batch: %v", err)
	case errors.Is(err, store.ErrNotFound):
		return nil, fail(http.StatusNotFound, CodeUnknownWorker, err, "no worker %s", wk.ID)
	case err != nil:
		return nil, storeErr(err)
	}
	resp := &ReceiptsResponse{Added: added, Duplicates: dup + dupInBatch}
	for _, rc := range rs {
		resp.AckedThrough = max(resp.AckedThrough, rc.Seq)
	}
	return resp, nil
}

// checkBatch checks every receipt, in parallel (the Ed25519 verifications
// are most of a batch's cost), and returns them as the books keep them, or
// the error of the first refused one.
func (s *Server) checkBatch(wk *store.Worker, batch []receipt.Signed, mkt map[string]PriceInfo, now time.Time) ([]store.Receipt, error) {
	out := make([]store.Receipt, len(batch))
	errs := make([]error, len(batch))
	procs := min(runtime.GOMAXPROCS(0), (len(batch)+31)/32)
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			for i := p; i < len(batch); i += procs {
				out[i], errs[i] = s.checkReceipt(wk, &batch[i], mkt, now)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			he := err.(*httpError)
			he.msg = "receipt " + itoa(i) + " (seq " + utoa(batch[i].Receipt.Seq) + "): " + he.msg
			return nil, he
		}
	}
	return out, nil
}

func (s *Server) checkReceipt(wk *store.Worker, sr *receipt.Signed, mkt map[string]PriceInfo, now time.Time) (store.Receipt, error) {
	rc := &sr.Receipt
	bad := func(code string, cause error, f string, a ...any) (store.Receipt, error) {
		return store.Receipt{}, fail(http.StatusBadRequest, code, cause, f, a...)
	}
	if rc.Worker != wk.PublicKey {
		return bad(CodeBadReceipt, nil, "signed by worker key %s, not this worker's %s", truncate(rc.Worker, 80), wk.PublicKey)
	}
	if err := sr.Verify(); err != nil {
		code := CodeBadReceipt
		if errors.Is(err, receipt.ErrSignature) {
			code = CodeBadSignature
		}
		return bad(code, err, "%v", err)
	}
	end := time.UnixMilli(rc.End)
	if limit := wk.CertExpires.Add(receiptSkew); end.After(limit) {
		return bad(CodeBadReceipt, nil, "ends %s, after the worker's certificate expired (%s)", fmtTime(end), fmtTime(wk.CertExpires))
	}
	if end.After(now.Add(MaxClockSkew)) {
		return bad(CodeBadReceipt, nil, "ends %s, in the future of the registry's clock %s", fmtTime(end), fmtTime(now))
	}
	if !slices.Contains(wk.Models, rc.Model) {
		return bad(CodeBadModel, nil, "model %q is not one the worker registered %q", truncate(rc.Model, 80), wk.Models)
	}
	pi, ok := mkt[rc.Model]
	if !ok {
		return bad(CodeBadModel, nil, "model %q has no price", rc.Model)
	}
	tokens, amount, err := market.Credit(rc.Usage, wk.Price, pi.Price)
	if err != nil {
		return bad(CodeBadReceipt, err, "%v", err)
	}
	enc, err := sr.Encode()
	if err != nil {
		return bad(CodeBadReceipt, err, "%v", err)
	}
	return store.Receipt{Worker: wk.ID, Seq: rc.Seq, Model: rc.Model, Tokens: tokens, Amount: amount, End: end, Signed: enc}, nil
}

// dedupe drops repeats of a seq inside one batch (a sender may resend a
// receipt it is unsure of); two different receipts with one seq are a
// conflict, as they are against the store.
func dedupe(rs []store.Receipt) ([]store.Receipt, int, error) {
	seen := make(map[uint64][]byte, len(rs))
	out := rs[:0]
	dup := 0
	for _, rc := range rs {
		if prev, ok := seen[rc.Seq]; ok {
			if string(prev) != string(rc.Signed) {
				return nil, 0, fail(http.StatusConflict, CodeConflict, nil, "two different receipts with seq %d in the batch", rc.Seq)
			}
			dup++
			continue
		}
		seen[rc.Seq] = rc.Signed
		out = append(out, rc)
	}
	return out, dup, nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
