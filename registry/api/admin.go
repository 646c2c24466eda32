package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/registry/store"
)

const (
	defaultBatchList = 100
	maxBatchList     = 1000
	maxNote          = 1024
)

// admin guards an operator endpoint with the bearer token.
func (s *Server) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.AdminToken == "" {
			return fail(http.StatusForbidden, CodeAdminDisabled, nil, "admin API disabled: set admin_token")
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return fail(http.StatusUnauthorized, CodeUnauthorized, nil, "Authorization: Bearer <admin token> required")
		}
		// Hashing both sides first makes the comparison constant-time in
		// the token's length too.
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(s.AdminToken))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return fail(http.StatusUnauthorized, CodeUnauthorized, nil, "wrong admin token")
		}
		return h(w, r)
	}
}

// audit records an operator's change in the events (not rate-limited:
// only the token holder makes them).
func (s *Server) audit(r *http.Request, msg string) {
	ctx := r.Context()
	if err := s.Store.AddEvent(ctx, store.Event{At: s.now(), Level: "info", Message: truncate(msg, maxEventText)}); err != nil {
		s.log().Error("event not recorded", "err", err)
	}
	s.log().Info("admin", "change", msg)
}

func (s *Server) getAllowlist(w http.ResponseWriter, r *http.Request) error {
	allow, err := s.Store.Allowlist(r.Context())
	if err != nil {
		return storeErr(err)
	}
	out := AllowlistResponse{Images: []AllowedImage{}}
	for _, a := range allow {
		out.Images = append(out.Images, AllowedImage{Hash: a.Hash, Note: a.Note, Added: a.Added.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// imageHash is a path's image hash: 64 hex digits, kept lower-case.
func imageHash(r *http.Request) (string, error) {
	h := strings.ToLower(r.PathValue("hash"))
	if len(h) != 2*sha256.Size || !isLowerHex(h) {
		return "", fail(http.StatusBadRequest, CodeBadRequest, nil, "image hash %q, want 64 hex digits", truncate(h, 80))
	}
	return h, nil
}

func (s *Server) allow(w http.ResponseWriter, r *http.Request) error {
	h, err := imageHash(r)
	if err != nil {
		return err
	}
	var req AllowRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	if len(req.Note) > maxNote || !utf8.ValidString(req.Note) {
		return fail(http.StatusBadRequest, CodeBadRequest, nil, "note: want at most %d bytes of UTF-8", maxNote)
	}
	img := store.AllowedImage{Hash: h, Note: req.Note, Added: s.now()}
	if err := s.Store.AllowImage(r.Context(), img); err != nil {
		return storeErr(err)
	}
	s.audit(r, "image allowlisted: "+h)
	writeJSON(w, http.StatusOK, AllowedImage{Hash: h, Note: req.Note, Added: img.Added.UTC()})
	return nil
}

func (s *Server) disallow(w http.ResponseWriter, r *http.Request) error {
	h, err := imageHash(r)
	if err != nil {
		return err
	}
	err = s.Store.DisallowImage(r.Context(), h)
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusNotFound, CodeNotFound, err, "image %s is not allowlisted", h)
	}
	if err != nil {
		return storeErr(err)
	}
	// Workers already admitted keep their listing until their certificate
	// expires: their renewal is checked against the new allowlist.
	s.audit(r, "image removed from the allowlist: "+h)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setPrice(w http.ResponseWriter, r *http.Request) error {
	model := r.PathValue("model")
	if model == "" || len(model) > maxModelName || !utf8.ValidString(model) {
		return fail(http.StatusBadRequest, CodeBadModel, nil, "model %q, want 1..%d bytes of UTF-8", truncate(model, 80), maxModelName)
	}
	var req SetPriceRequest
	if err := decodeJSON(w, r, maxSmallBody, &req); err != nil {
		return err
	}
	if req.Min > req.Base || req.Base > req.Max {
		return fail(http.StatusBadRequest, CodeBadPrice, nil, "min %d, base %d, max %d: want min <= base <= max", req.Min, req.Base, req.Max)
	}
	p := store.Price{Model: model, Base: req.Base, Min: req.Min, Max: req.Max}
	if err := s.Store.SetPrice(r.Context(), p); err != nil {
		return storeErr(err)
	}
	s.prices.invalidate()
	s.audit(r, "price of "+truncate(model, 80)+" set: base "+utoa(p.Base)+", min "+utoa(p.Min)+", max "+utoa(p.Max))
	writeJSON(w, http.StatusOK, req)
	return nil
}

func (s *Server) balances(w http.ResponseWriter, r *http.Request) error {
	bs, err := s.Store.Balances(r.Context())
	if err != nil {
		return storeErr(err)
	}
	out := BalancesResponse{Balances: []Balance{}}
	for _, b := range bs {
		out.Balances = append(out.Balances, Balance(b))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) payouts(w http.ResponseWriter, r *http.Request) error {
	limit := defaultBatchList
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxBatchList {
			return fail(http.StatusBadRequest, CodeBadRequest, nil, "limit %q, want 1..%d", truncate(q, 20), maxBatchList)
		}
		limit = n
	}
	bs, err := s.Store.Batches(r.Context(), limit)
	if err != nil {
		return storeErr(err)
	}
	out := PayoutsResponse{Batches: []Batch{}}
	for i := range bs {
		out.Batches = append(out.Batches, batchOf(&bs[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func batchOf(b *store.Batch) Batch {
	out := Batch{
		ID: b.ID, QueryID: b.QueryID, CreatedAt: b.CreatedAt.UTC(), State: string(b.State), Items: []PayoutItem{},
		Total: b.Total(), MsgHash: b.MsgHash, Sends: b.Sends, Fees: b.Fees, TxHash: b.TxHash, Error: b.Error, Updated: b.Updated.UTC(),
	}
	for _, it := range b.Items {
		out.Items = append(out.Items, PayoutItem(it))
	}
	return out
}

func (s *Server) runPayouts(w http.ResponseWriter, r *http.Request) error {
	if s.Payouts == nil {
		return fail(http.StatusServiceUnavailable, CodeUnavailable, nil, "payouts are not configured")
	}
	res, err := s.Payouts.RunOnce(r.Context())
	if err != nil {
		return fail(http.StatusInternalServerError, CodeInternal, err, "payout run failed: %v", err)
	}
	j, err := json.Marshal(res)
	if err != nil {
		return storeErr(err)
	}
	s.audit(r, "payout run")
	writeJSON(w, http.StatusOK, RunResponse{Result: j})
	return nil
}
