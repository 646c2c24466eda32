package quote

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"reflect"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify/trust"
)

// PCS API v4 response headers carrying issuer chains (URL-encoded PEM,
// signing certificate then root), looked up by exact key as go-tdx-guest does.
const (
	hdrTCBInfoChain    = "Tcb-Info-Issuer-Chain"
	hdrQEIdentityChain = "Sgx-Enclave-Identity-Issuer-Chain"
	hdrPCKCRLChain     = "Sgx-Pck-Crl-Issuer-Chain"
)

// obtain asks g for the collateral of a platform and parses it, as
// go-tdx-guest's obtainCollateral does (same requests, same order: TCB info
// for the FMSPC, QE identity, and with crls the PCK CRL for the CA and the
// root CA CRL from the distribution point of the QE identity issuer root).
// Nothing is verified here. Every failure is ErrCollateral.
func obtain(g trust.HTTPSGetter, fmspc, ca string, crls bool) (*collateralSet, error) {
	c := &collateralSet{}
	var err error
	c.tcb, c.tcbSig, err = getTCBInfo(g, fmspc)
	if err != nil {
		return nil, err
	}
	c.qe, c.qeSig, err = getQEIdentity(g)
	if err != nil {
		return nil, err
	}
	if crls {
		if c.crls, err = getCRLs(g, ca, c.qeSig.root); err != nil {
			return nil, err
		}
	}
	// go-tdx-guest's verifyCollateral, first of all: neither is empty.
	switch {
	case c.tcbSig.empty:
		c.shapeErr = collErr("TCB info is empty")
	case c.qeSig.empty:
		c.shapeErr = collErr("QE identity is empty")
	}
	return c, nil
}

func getTCBInfo(g trust.HTTPSGetter, fmspc string) (*pcs.TcbInfo, *signedCollateral, error) {
	u := pcs.TcbInfoURL(fmspc)
	hdr, body, err := g.Get(u)
	if err != nil {
		return nil, nil, collErr("fetching TCB info from %s: %v", u, err)
	}
	s := &signedCollateral{what: "TCB info"}
	if s.signing, s.root, err = issuerChainHeader(hdr, hdrTCBInfoChain); err != nil {
		return nil, nil, collErr("TCB info: %v", err)
	}
	var full pcs.TdxTcbInfo
	if err := json.Unmarshal(body, &full); err != nil {
		return nil, nil, collErr("TCB info is not PCS TCB info JSON: %v", err)
	}
	s.sig = full.Signature
	// The signature covers the bytes of the "tcbInfo" member. Decisions are
	// taken on those bytes, not on full: encoding/json matches member names
	// case-insensitively and keeps the last duplicate, so an unsigned
	// "TCBINFO" member after the signed one would override it in full.
	if s.body, err = member(body, "tcbInfo"); err != nil {
		return nil, nil, collErr("TCB info: %v", err)
	}
	var t pcs.TcbInfo
	if err := json.Unmarshal(s.body, &t); err != nil {
		return nil, nil, collErr("TCB info: signed tcbInfo: %v", err)
	}
	s.issue, s.next = t.IssueDate, t.NextUpdate
	// verifyTCBinfo (PCS API v4, TCB Info V3: id "TDX", version 3).
	switch {
	case t.ID != "TDX":
		s.contentErr = collErr("TCB info id %q, want %q", t.ID, "TDX")
	case t.Version != 3:
		s.contentErr = collErr("TCB info version %d, want 3", t.Version)
	case len(t.TcbLevels) == 0:
		s.contentErr = collErr("TCB info has no TCB levels")
	}
	s.empty = reflect.DeepEqual(full, pcs.TdxTcbInfo{})
	return &t, s, nil
}

func getQEIdentity(g trust.HTTPSGetter) (*pcs.EnclaveIdentity, *signedCollateral, error) {
	u := pcs.QeIdentityURL()
	hdr, body, err := g.Get(u)
	if err != nil {
		return nil, nil, collErr("fetching QE identity from %s: %v", u, err)
	}
	s := &signedCollateral{what: "QE identity"}
	if s.signing, s.root, err = issuerChainHeader(hdr, hdrQEIdentityChain); err != nil {
		return nil, nil, collErr("QE identity: %v", err)
	}
	var full pcs.QeIdentity
	if err := json.Unmarshal(body, &full); err != nil {
		return nil, nil, collErr("QE identity is not PCS enclave identity JSON: %v", err)
	}
	s.sig = full.Signature
	// As for TCB info: decide on the signed bytes.
	if s.body, err = member(body, "enclaveIdentity"); err != nil {
		return nil, nil, collErr("QE identity: %v", err)
	}
	var e pcs.EnclaveIdentity
	if err := json.Unmarshal(s.body, &e); err != nil {
		return nil, nil, collErr("QE identity: signed enclaveIdentity: %v", err)
	}
	s.issue, s.next = e.IssueDate, e.NextUpdate
	// verifyQeIdentity (PCS API v4, Enclave Identity V2: id "TD_QE", version 2).
	switch {
	case e.ID != "TD_QE":
		s.contentErr = collErr("QE identity id %q, want %q", e.ID, "TD_QE")
	case e.Version != 2:
		s.contentErr = collErr("QE identity version %d, want 2", e.Version)
	case len(e.TcbLevels) == 0:
		s.contentErr = collErr("QE identity has no TCB levels")
	}
	s.empty = reflect.DeepEqual(full, pcs.QeIdentity{})
	return &e, s, nil
}

// member returns the raw value of the named top-level member of a JSON
// object, as go-tdx-guest's bodyToRawMessage (exact name, last duplicate).
func member(body []byte, name string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("no %q member", name)
	}
	return v, nil
}

func getCRLs(g trust.HTTPSGetter, ca string, qeRoot *x509.Certificate) (*crlSet, error) {
	u := pcs.PckCrlURL(ca)
	hdr, body, err := g.Get(u)
	if err != nil {
		return nil, collErr("fetching PCK CRL from %s: %v", u, err)
	}
	signing, root, err := issuerChainHeader(hdr, hdrPCKCRLChain)
	if err != nil {
		return nil, collErr("PCK CRL: %v", err)
	}
	pck, err := x509.ParseRevocationList(body)
	if err != nil {
		return nil, collErr("PCK CRL is not a DER CRL: %v", err)
	}
	// The root CA CRL is where the QE identity issuer root says
	// (RFC 5280 §4.2.1.13); the first distribution point that answers with
	// a CRL wins. Its signature is checked with that root later.
	if len(qeRoot.CRLDistributionPoints) == 0 {
		return nil, collErr("QE identity issuer root has no CRL distribution point for the root CA CRL")
	}
	var errs []error
	for _, u := range qeRoot.CRLDistributionPoints {
		_, body, err := g.Get(u)
		if err != nil {
			errs = append(errs, fmt.Errorf("fetching %s: %v", u, err))
			continue
		}
		rootCRL, err := x509.ParseRevocationList(body)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s is not a DER CRL: %v", u, err))
			continue
		}
		return newCRLSet(rootCRL, pck, signing, root), nil
	}
	return nil, collErr("root CA CRL: %v", errs)
}

// issuerChainHeader is go-tdx-guest's headerToIssuerChain: exactly one
// value, URL-encoded, two PEM CERTIFICATE blocks and nothing after them.
func issuerChainHeader(hdr map[string][]string, name string) (signing, root *x509.Certificate, err error) {
	v, ok := hdr[name]
	if !ok {
		return nil, nil, fmt.Errorf("no %s header", name)
	}
	if len(v) != 1 || v[0] == "" {
		return nil, nil, fmt.Errorf("%s header has %d values, want one non-empty", name, len(v))
	}
	s, err := url.QueryUnescape(v[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%s header is not URL-encoded: %v", name, err)
	}
	blk, rest := pem.Decode([]byte(s))
	if blk == nil || len(rest) == 0 || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: want a PEM signing certificate then the root", name)
	}
	if signing, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, nil, fmt.Errorf("%s: signing certificate: %v", name, err)
	}
	if blk, rest = pem.Decode(rest); blk == nil || len(rest) != 0 || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: want a PEM root certificate and nothing after it", name)
	}
	if root, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, nil, fmt.Errorf("%s: root certificate: %v", name, err)
	}
	return signing, root, nil
}

// fetchCache holds collateral a Verifier fetched with its Getter, per
// platform (FMSPC) and PCK CA, at most maxFetched sets. A set is fetched
// again when it is older than maxAge (in the times passed to Verify), once
// it is past a nextUpdate, and after it failed to verify (forget).
// Concurrent misses may fetch twice; the last one is kept.
type fetchCache struct {
	g      trust.HTTPSGetter
	maxAge time.Duration
	mu     sync.Mutex
	m      map[string]*fetched
}

type fetched struct {
	set *collateralSet
	at  time.Time
}

const maxFetched = 64

func (f *fetchCache) get(fmspc, ca string, now time.Time) (*collateralSet, error) {
	k := fmspc + "/" + ca
	f.mu.Lock()
	e := f.m[k]
	f.mu.Unlock()
	if e != nil {
		age := now.Sub(e.at)
		if age >= -f.maxAge && age <= f.maxAge && !e.set.stale(now) {
			return e.set, nil
		}
	}
	set, err := obtain(f.g, fmspc, ca, true)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if _, ok := f.m[k]; !ok && len(f.m) >= maxFetched {
		for old := range f.m {
			delete(f.m, old)
			break
		}
	}
	f.m[k] = &fetched{set, now}
	f.mu.Unlock()
	return set, nil
}

// forget drops set, so that the next quote for its platform fetches again.
func (f *fetchCache) forget(set *collateralSet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, e := range f.m {
		if e.set == set {
			delete(f.m, k)
		}
	}
}
