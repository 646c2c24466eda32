package api

import (
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/market"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// Bounds of one heartbeat's counters: far above any real rate, low enough
// that a year of them cannot overflow the store's int64 totals.
const (
	maxHeartbeatCount = 1 << 32
	maxLatencyMS      = 1e7
)

// heartbeat is POST /v1/workers/{id}/heartbeat.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := parseID(id); err != nil {
		return err
	}
	var req HeartbeatRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	ctx := r.Context()
	now := s.now()
	wk, err := s.worker(r, id)
	if err != nil {
		return err
	}
	hb := req.Heartbeat
	switch {
	case hb.Served < 0 || hb.Failed < 0 || hb.Served > maxHeartbeatCount || hb.Failed > maxHeartbeatCount:
		return fail(http.StatusBadRequest, CodeBadRequest, nil, "served %d, failed %d: want 0..%d", hb.Served, hb.Failed, int64(maxHeartbeatCount))
	case math.IsNaN(hb.LatencyMS) || hb.LatencyMS < 0 || hb.LatencyMS > maxLatencyMS:
		return fail(http.StatusBadRequest, CodeBadRequest, nil, "latency_ms %v, want 0..%v", hb.LatencyMS, maxLatencyMS)
	}
	if err := checkFresh(hb.At, now); err != nil {
		return err
	}
	pub, err := hexKey(wk.PublicKey)
	if err != nil {
		return storeErr(err)
	}
	if err := verifySig(pub, HeartbeatDomain, hb, req.Sig); err != nil {
		return err
	}
	// Only a signed heartbeat may move the replay mark.
	undo, err := s.beats.advance(id, hb.At)
	if err != nil {
		return err
	}
	// LastSeen is when the registry heard from the worker, by its own
	// clock (as for receipt batches): a worker whose clock runs ahead must
	// not look fresher than it is.
	err = s.Store.Heartbeat(ctx, id, store.Heartbeat{At: now, Served: hb.Served, Failed: hb.Failed, LatencyMS: hb.LatencyMS})
	if err != nil {
		undo()
		if errors.Is(err, store.ErrNotFound) {
			return fail(http.StatusNotFound, CodeUnknownWorker, err, "no worker %s", id)
		}
		return storeErr(err)
	}
	if wk, err = s.Store.Worker(ctx, id); err != nil {
		return storeErr(err)
	}
	rp := s.mkt.Reputation
	writeJSON(w, http.StatusOK, HeartbeatResponse{
		Status:     s.status(wk, now),
		Reputation: market.Reputation(wk.Stats, wk.RegisteredAt, now, rp),
		IntervalS:  int64(rp.HeartbeatInterval / time.Second),
	})
	return nil
}

// heartbeats is the newest heartbeat time accepted per worker: a
// heartbeat must be newer than the last, so a captured one cannot be
// counted twice. It lives in memory, bounded by the number of workers:
// after a restart a heartbeat captured in the last MaxClockSkew could be
// replayed once, which adds a duplicate of its counters and no money.
type heartbeats struct {
	mu   sync.Mutex
	last map[string]int64
}

// advance records at as worker id's newest heartbeat, or refuses it with
// 409 when it is not newer; undo restores the previous mark (for a
// heartbeat the store then failed to record).
func (h *heartbeats) advance(id string, at int64) (undo func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[string]int64{}
	}
	prev, ok := h.last[id]
	if ok && at <= prev {
		return nil, fail(http.StatusConflict, CodeReplay, nil, "heartbeat at %d is not newer than the last one accepted (%d)", at, prev)
	}
	h.last[id] = at
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.last[id] != at {
			return
		}
		if ok {
			h.last[id] = prev
		} else {
			delete(h.last, id)
		}
	}, nil
}
