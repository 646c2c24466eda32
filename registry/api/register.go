package api

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/registry/wire"

	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/registry/store"
	"github.com/xssnick/tonutils-go/address"
)

// Limits of a registration.
const (
	MaxModels      = 64
	maxModelName   = 256 // as guest/receipt allows
	maxPayoutEvery = 366 * 24 * time.Hour
)

// register is POST /v1/workers. Cheap checks come first, so a request
// that fails them costs no quote verification; the signature is checked
// with the certificate's key before the (slower) attestation.
func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	var req RegisterRequest
	if err := decodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	ctx := r.Context()
	now := s.now()
	reg := &req.Registration
	err := s.admit(r, &req, now)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.status < 500 {
			s.event(ctx, now, "warn", "", "registration refused: "+he.msg)
		}
		return err
	}
	return s.record(w, r, reg, now)
}

// admit checks a registration's syntax, freshness, models and price, and
// its signature: everything but the attestation and the worker's record.
func (s *Server) admit(r *http.Request, req *RegisterRequest, now time.Time) error {
	reg := &req.Registration
	if err := validateRegistration(reg); err != nil {
		return err
	}
	if err := checkFresh(reg.At, now); err != nil {
		return err
	}
	prices, err := s.Store.Prices(r.Context())
	if err != nil {
		return storeErr(err)
	}
	if err := checkModels(reg.Models, reg.Price, prices); err != nil {
		return err
	}
	// Certificates are public: the signature by the certificate's key is
	// what shows the worker itself asks, with this payout address.
	c, err := ratls.ParseCertificate(reg.Certificate)
	if err != nil {
		return attestationError(err)
	}
	pub, ok := c.Leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return fail(http.StatusBadRequest, CodeBadCertificate, ratls.ErrCertificate, "%v: the certificate's key is %v, want Ed25519", ratls.ErrCertificate, c.Leaf.PublicKeyAlgorithm)
	}
	return verifySig(pub, RegisterDomain, *reg, req.Sig)
}

// record verifies the certificate's attestation and stores the worker.
func (s *Server) record(w http.ResponseWriter, r *http.Request, reg *Registration, now time.Time) error {
	ctx := r.Context()
	res, err := s.verify(ctx, reg.Certificate, now)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.status < 500 {
			s.event(ctx, now, "warn", "", "registration refused: "+he.msg)
		}
		return err
	}
	id := WorkerID(res.Claims.PublicKey)
	old, err := s.Store.Worker(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		old = nil
	case err != nil:
		return storeErr(err)
	case res.NotAfter.Before(old.CertExpires):
		// A replayed registration must not swap a renewed certificate
		// back for an older one.
		return fail(http.StatusConflict, CodeConflict, nil, "the worker holds a certificate valid until %s; this one ends %s",
			old.CertExpires.UTC().Format(time.RFC3339), res.NotAfter.UTC().Format(time.RFC3339))
	}
	evidence, err := json.Marshal(evidenceOf(res, now))
	if err != nil {
		return storeErr(err)
	}
	wk := store.Worker{
		ID:           id,
		PublicKey:    fmt.Sprintf("%x", []byte(res.Claims.PublicKey)),
		Payout:       reg.Payout,
		Endpoint:     reg.Endpoint,
		Models:       reg.Models,
		Price:        reg.Price,
		MinPayout:    reg.MinPayout,
		PayoutEvery:  time.Duration(reg.PayoutEveryS) * time.Second,
		Certificate:  reg.Certificate,
		Evidence:     evidence,
		RegisteredAt: now,
		CertExpires:  res.NotAfter,
	}
	if err := s.Store.PutWorker(ctx, wk); err != nil {
		return storeErr(err)
	}
	s.prices.invalidate()
	stored, err := s.Store.Worker(ctx, id)
	if err != nil {
		return storeErr(err)
	}
	status := http.StatusCreated
	if old != nil {
		status = http.StatusOK
	}
	s.log().Info("worker registered", "worker", id, "kind", res.Attested.Kind, "simulated", res.Attested.Simulated,
		"endpoint", reg.Endpoint, "models", reg.Models, "renewed", old != nil)
	writeJSON(w, status, s.workerInfo(stored, now))
	return nil
}

// validateRegistration checks a registration's syntax.
func validateRegistration(reg *Registration) error {
	bad := func(code, f string, a ...any) error { return fail(http.StatusBadRequest, code, nil, f, a...) }
	switch {
	case len(reg.Certificate) == 0:
		return bad(CodeBadCertificate, "certificate is empty")
	case len(reg.Certificate) > ratls.MaxCertificateSize:
		return bad(CodeBadCertificate, "certificate is %d bytes, at most %d", len(reg.Certificate), ratls.MaxCertificateSize)
	case reg.At <= 0:
		return bad(CodeStale, "at %d: want Unix milliseconds", reg.At)
	case reg.PayoutEveryS < 0 || time.Duration(reg.PayoutEveryS) > maxPayoutEvery/time.Second:
		return bad(CodeBadRequest, "payout_every_s %d, want 0..%d", reg.PayoutEveryS, int64(maxPayoutEvery/time.Second))
	}
	if _, err := address.ParseAddr(reg.Payout); err != nil {
		return bad(CodeBadRequest, "payout %q is not a TON address: %v", truncate(reg.Payout, 80), err)
	}
	if err := wire.CheckEndpoint(reg.Endpoint); err != nil {
		return bad(CodeBadRequest, "endpoint %q: %v", truncate(reg.Endpoint, 80), err)
	}
	if len(reg.Models) == 0 || len(reg.Models) > MaxModels {
		return bad(CodeBadModel, "%d models, want 1..%d", len(reg.Models), MaxModels)
	}
	seen := map[string]bool{}
	for _, m := range reg.Models {
		if m == "" || len(m) > maxModelName || !utf8.ValidString(m) {
			return bad(CodeBadModel, "model %q, want 1..%d bytes of UTF-8", truncate(m, 80), maxModelName)
		}
		if seen[m] {
			return bad(CodeBadModel, "model %q listed twice", m)
		}
		seen[m] = true
	}
	return nil
}

// checkModels admits models the registry prices, at an asking price
// inside each one's bounds.
func checkModels(models []string, price uint64, prices []store.Price) error {
	byModel := map[string]store.Price{}
	for _, p := range prices {
		byModel[p.Model] = p
	}
	for _, m := range models {
		p, ok := byModel[m]
		if !ok {
			return fail(http.StatusBadRequest, CodeBadModel, nil, "model %q is not admitted: the registry has no price for it", m)
		}
		if price < p.Min || price > p.Max {
			return fail(http.StatusBadRequest, CodeBadPrice, nil, "price %d for model %q, want %d..%d nanoton per 1M tokens", price, m, p.Min, p.Max)
		}
	}
	return nil
}
