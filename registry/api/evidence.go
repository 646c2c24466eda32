package api

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/measure/policy"
)

// Evidence is what the registry's verification of a worker's certificate
// found, kept with the worker (store.Worker.Evidence) and published with
// it. Clients should verify the certificate themselves; this says what
// the registry saw, and when.
type Evidence struct {
	Kind      string `json:"kind"` // attest.Kind: "tdx", "sim", "vtpm"
	Simulated bool   `json:"simulated"`
	// ImageHash, MRTD, RTMR (0-3), TDAttributes and XFAM are the quote's
	// (tdx, sim), hex.
	ImageHash    string   `json:"image_hash,omitempty"`
	MRTD         string   `json:"mrtd,omitempty"`
	RTMR         []string `json:"rtmr,omitempty"`
	TDAttributes string   `json:"td_attributes,omitempty"`
	XFAM         string   `json:"xfam,omitempty"`
	// PCRs are the quoted SHA-256 PCRs (vtpm), hex by index.
	PCRs map[string]string `json:"pcrs,omitempty"`
	// ConfigHash and WorkerName are the certificate's claims.
	ConfigHash string `json:"config_hash"`
	WorkerName string `json:"worker_name"`
	// Policy says which rule admitted it.
	Policy     PolicyResult `json:"policy"`
	VerifiedAt time.Time    `json:"verified_at"`
	NotBefore  time.Time    `json:"not_before"`
	NotAfter   time.Time    `json:"not_after"`
}

// PolicyResult is the admission decision.
type PolicyResult struct {
	Accepted bool   `json:"accepted"`
	Rule     string `json:"rule"`
}

// Rules of PolicyResult.
const (
	RuleImage = "allowlisted image hash" // tdx, sim
	RuleVTPM  = "vtpm policy"            // vtpm: pinned AK and PCR set
)

// verify checks an RA-TLS certificate as registration needs it: a fresh
// ratls.Verifier (no cache: the allowlist may have changed since), the
// policy template with the store's allowlist as its image hashes, and the
// image hash, when the evidence has one, on the allowlist.
func (s *Server) verify(ctx context.Context, der []byte, now time.Time) (*ratls.Result, error) {
	allow, err := s.Store.Allowlist(ctx)
	if err != nil {
		return nil, storeErr(err)
	}
	hashes := make([][32]byte, 0, len(allow))
	for _, a := range allow {
		var h [32]byte
		if b, err := hex.DecodeString(a.Hash); err == nil && len(b) == len(h) {
			copy(h[:], b)
			hashes = append(hashes, h)
		}
	}
	ev := map[attest.Kind]ratls.EvidenceVerifier{}
	if s.Policy != nil {
		p := *s.Policy
		p.ImageHashes = hashes
		if s.Quotes != nil {
			ev[attest.TDX] = &ratls.TDXVerifier{Quotes: s.Quotes, Policy: &p}
		}
		if s.SimRoot != nil {
			ev[attest.Sim] = &ratls.SimVerifier{Root: s.SimRoot, Policy: &p}
		}
	}
	if s.VTPM != nil {
		ev[attest.VTPM] = &ratls.VTPMVerifier{Policy: s.VTPM}
	}
	v := &ratls.Verifier{Evidence: ev, Now: func() time.Time { return now }, CacheSize: -1}
	res, err := v.Verify(der)
	if errors.Is(err, policy.ErrPolicy) && len(hashes) == 0 {
		return nil, fail(http.StatusForbidden, CodeImage, err, "no image hash is allowlisted: %v", err)
	}
	if err != nil {
		return nil, attestationError(err)
	}
	if err := ratls.CheckImage(res.Attested, hashes); err != nil {
		return nil, fail(http.StatusForbidden, CodeImage, err, "%s", err.Error())
	}
	return res, nil
}

// attestationError sorts ratls's typed errors into statuses: a request
// that is not an RA-TLS certificate is 400; genuine-looking evidence the
// registry will not admit is 403. The message is ratls's own text.
func attestationError(err error) error {
	msg := err.Error()
	var mm *policy.Mismatch
	switch {
	case errors.Is(err, ratls.ErrExpired):
		return fail(http.StatusForbidden, CodeCertExpired, err, "%s", msg)
	case errors.Is(err, policy.ErrSimulated):
		return fail(http.StatusForbidden, CodeSimulated, err, "%s", msg)
	case errors.As(err, &mm) && isImageField(mm.Field):
		return fail(http.StatusForbidden, CodeImage, err, "%s", msg)
	case errors.Is(err, ratls.ErrPolicy):
		return fail(http.StatusForbidden, CodePolicy, err, "%s", msg)
	case errors.Is(err, ratls.ErrQuote), errors.Is(err, ratls.ErrBinding):
		return fail(http.StatusForbidden, CodeAttestation, err, "%s", msg)
	}
	// ErrCertificate, ErrUnknownCritical, ErrNoEvidence, ErrMalformed.
	return fail(http.StatusBadRequest, CodeBadCertificate, err, "%s", msg)
}

// isImageField: the policy fields that say which image a quote measured
// (an image hash, or the registers of a measurement set).
func isImageField(f string) bool {
	return f == "image_hash" || f == "mrtd" || strings.HasPrefix(f, "rtmr")
}

// evidenceOf describes a verified certificate.
func evidenceOf(res *ratls.Result, now time.Time) Evidence {
	a := res.Attested
	e := Evidence{
		Kind:       string(a.Kind),
		Simulated:  a.Simulated,
		ConfigHash: hex.EncodeToString(res.Claims.ConfigHash[:]),
		WorkerName: res.Claims.WorkerID,
		Policy:     PolicyResult{Accepted: true, Rule: RuleImage},
		VerifiedAt: now.UTC(),
		NotBefore:  res.NotBefore.UTC(),
		NotAfter:   res.NotAfter.UTC(),
	}
	if a.ImageHash != nil {
		e.ImageHash = hex.EncodeToString(a.ImageHash[:])
	}
	if b := a.Quote.GetTdQuoteBody(); b != nil {
		e.MRTD = hex.EncodeToString(b.GetMrTd())
		for _, r := range b.GetRtmrs() {
			e.RTMR = append(e.RTMR, hex.EncodeToString(r))
		}
		e.TDAttributes = hex.EncodeToString(b.GetTdAttributes())
		e.XFAM = hex.EncodeToString(b.GetXfam())
	}
	if a.Kind == attest.VTPM {
		e.Policy.Rule = RuleVTPM
		e.PCRs = map[string]string{}
		for i, v := range res.Evidence.PCRs {
			e.PCRs[strconv.Itoa(i)] = hex.EncodeToString(v)
		}
	}
	return e
}
