package api

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/market"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// worker loads a worker, 404 when there is none.
func (s *Server) worker(r *http.Request, id string) (*store.Worker, error) {
	wk, err := s.Store.Worker(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusNotFound, CodeUnknownWorker, err, "no worker %s", id)
	}
	if err != nil {
		return nil, storeErr(err)
	}
	return wk, nil
}

// listWorkers is GET /v1/workers[?model=M]: every worker, whatever its
// status, so that a client sees why one it knew is gone.
func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) error {
	model := r.URL.Query().Get("model")
	ws, err := s.Store.Workers(r.Context())
	if err != nil {
		return storeErr(err)
	}
	now := s.now()
	out := WorkersResponse{Workers: []WorkerInfo{}}
	for i := range ws {
		if model != "" && !slices.Contains(ws[i].Models, model) {
			continue
		}
		out.Workers = append(out.Workers, s.workerInfo(&ws[i], now))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getWorker is GET /v1/workers/{id}.
func (s *Server) getWorker(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := parseID(id); err != nil {
		return err
	}
	wk, err := s.worker(r, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.workerInfo(wk, s.now()))
	return nil
}

func (s *Server) workerInfo(wk *store.Worker, now time.Time) WorkerInfo {
	st := wk.Stats
	info := WorkerInfo{
		ID:          wk.ID,
		PublicKey:   wk.PublicKey,
		Certificate: wk.Certificate,
		Evidence:    wk.Evidence,
		Endpoint:    wk.Endpoint,
		Models:      wk.Models,
		Price:       wk.Price,
		Payout:      wk.Payout,
		Status:      s.status(wk, now),
		Reputation:  market.Reputation(st, wk.RegisteredAt, now, s.mkt.Reputation),
		Registered:  wk.RegisteredAt.UTC(),
		CertExpires: wk.CertExpires.UTC(),
		Heartbeats:  st.Heartbeats,
		Served:      st.Served,
		Failed:      st.Failed,
		LatencyMS:   st.LatencyMS,
	}
	if !st.LastSeen.IsZero() {
		t := st.LastSeen.UTC()
		info.LastSeen = &t
	}
	if info.Models == nil {
		info.Models = []string{}
	}
	if len(info.Evidence) == 0 {
		info.Evidence = []byte("null")
	}
	return info
}

func (s *Server) status(wk *store.Worker, now time.Time) string {
	return Status(wk, now, s.mkt.Reputation)
}

// Status is a worker's status at now: "expired" once its certificate is
// (a client could no longer connect; NotAfter itself is still valid, RFC
// 5280 §4.1.2.5), else "offline" after p.Offline() without a heartbeat or
// a receipt batch (counting from registration), else "attested". p is
// as market.Params.OrDefault fills it.
func Status(wk *store.Worker, now time.Time, p market.ReputationParams) string {
	if now.After(wk.CertExpires) {
		return StatusExpired
	}
	last := wk.Stats.LastSeen
	if last.Before(wk.RegisteredAt) {
		last = wk.RegisteredAt
	}
	if now.Sub(last) >= p.Offline() {
		return StatusOffline
	}
	return StatusAttested
}
