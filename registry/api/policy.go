package api

import (
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// getPolicy is GET /v1/policy: what a client checks a worker's evidence
// against, the same rules registration applies.
func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	allow, err := s.Store.Allowlist(ctx)
	if err != nil {
		return storeErr(err)
	}
	prices, err := s.Store.Prices(ctx)
	if err != nil {
		return storeErr(err)
	}
	out := PolicyInfo{ImageHashes: []string{}, Models: []string{}, EvidenceKinds: []string{}}
	hashes := make([][32]byte, 0, len(allow))
	for _, a := range allow {
		out.ImageHashes = append(out.ImageHashes, a.Hash)
		var h [32]byte
		if b, err := hex.DecodeString(a.Hash); err == nil && len(b) == len(h) {
			copy(h[:], b)
			hashes = append(hashes, h)
		}
	}
	for _, p := range prices {
		out.Models = append(out.Models, p.Model)
	}
	if s.Policy != nil {
		p := *s.Policy
		p.ImageHashes = hashes
		if j, err := json.Marshal(&p); err == nil {
			out.TDXPolicy = j
		}
		if s.Quotes != nil {
			out.EvidenceKinds = append(out.EvidenceKinds, string(attest.TDX))
		}
		if s.SimRoot != nil && s.Policy.AllowSimulated {
			out.AllowSimulated = true
			out.EvidenceKinds = append(out.EvidenceKinds, string(attest.Sim))
			out.SimRoot = s.SimRoot.Raw
		}
	}
	if s.VTPM != nil {
		out.EvidenceKinds = append(out.EvidenceKinds, string(attest.VTPM))
		if j, err := json.Marshal(s.VTPM); err == nil {
			out.VTPMPolicy = j
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
