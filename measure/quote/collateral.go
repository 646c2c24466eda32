package quote

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-tdx-guest/pcs"
)

// Collateral is what Intel's Provisioning Certification Service (PCS, API
// v4) returns for a TDX platform, held by the caller (cached, or shipped with
// the registry) and checked offline. Each body is as PCS sent it; each issuer
// chain is the PEM from the response header named below (PCS sends it
// URL-encoded; either form is accepted).
//
// The CRLs are optional, as a set: with PCKCRL, PCKCRLIssuerChain and
// RootCACRL the PCK chain and the collateral signers are checked for
// revocation; without any of them they are not.
type Collateral struct {
	// TCBInfo: GET /tdx/certification/v4/tcb?fmspc=<FMSPC of the PCK cert>.
	TCBInfo []byte
	// TCBInfoIssuerChain: its TCB-Info-Issuer-Chain header.
	TCBInfoIssuerChain []byte
	// QEIdentity: GET /tdx/certification/v4/qe/identity.
	QEIdentity []byte
	// QEIdentityIssuerChain: its SGX-Enclave-Identity-Issuer-Chain header.
	QEIdentityIssuerChain []byte
	// PCKCRL: GET /sgx/certification/v4/pckcrl?ca=platform|processor, DER or PEM.
	PCKCRL []byte
	// PCKCRLIssuerChain: its SGX-PCK-CRL-Issuer-Chain header.
	PCKCRLIssuerChain []byte
	// RootCACRL: the CRL at the Intel SGX Root CA's distribution point
	// (https://certificates.trustedservices.intel.com/IntelSGXRootCA.der), DER or PEM.
	RootCACRL []byte
}

type response struct {
	header map[string][]string
	body   []byte
}

// offlineGetter answers go-tdx-guest's collateral requests from a
// Collateral and never touches the network.
type offlineGetter struct {
	tcbInfo, qeIdentity, pckCRL, rootCRL response
	crls                                 bool
}

// go-tdx-guest builds its request URLs with the pcs package; route on the
// same builders so that a URL change there cannot send us to the network.
var (
	tcbInfoPrefix      = pcs.TcbInfoURL("")
	qeIdentityURL      = pcs.QeIdentityURL()
	pckCRLPrefix, _, _ = strings.Cut(pcs.PckCrlURL("platform"), "?")
)

func (g *offlineGetter) Get(u string) (map[string][]string, []byte, error) {
	var r response
	switch {
	case u == qeIdentityURL:
		r = g.qeIdentity
	case strings.HasPrefix(u, tcbInfoPrefix):
		// The FMSPC in the URL is the PCK certificate's; go-tdx-guest then
		// checks the TCB info's FMSPC against it, so serving our one TCB
		// info for any FMSPC is safe.
		r = g.tcbInfo
	case strings.HasPrefix(u, pckCRLPrefix+"?"):
		r = g.pckCRL
	default:
		// go-tdx-guest asks for the root CA CRL at the CRL distribution
		// point(s) of the QE identity signer's root; it checks the CRL's
		// signature against that root, so the URL needs no allowlist.
		r = g.rootCRL
	}
	if r.body == nil {
		return nil, nil, fmt.Errorf("offline: no collateral given for %s", u)
	}
	return r.header, r.body, nil
}

// getter checks that the collateral is complete and builds the responses
// PCS would have sent.
func (c *Collateral) getter() (*offlineGetter, error) {
	g := &offlineGetter{}
	var err error
	need := func(name string, b []byte) {
		if err == nil && len(b) == 0 {
			err = fmt.Errorf("quote: %w: Collateral.%s is empty", ErrCollateral, name)
		}
	}
	need("TCBInfo", c.TCBInfo)
	need("TCBInfoIssuerChain", c.TCBInfoIssuerChain)
	need("QEIdentity", c.QEIdentity)
	need("QEIdentityIssuerChain", c.QEIdentityIssuerChain)
	nCRL := 0
	for _, b := range [][]byte{c.PCKCRL, c.PCKCRLIssuerChain, c.RootCACRL} {
		if len(b) > 0 {
			nCRL++
		}
	}
	if nCRL != 0 && nCRL != 3 {
		need("PCKCRL", c.PCKCRL)
		need("PCKCRLIssuerChain", c.PCKCRLIssuerChain)
		need("RootCACRL", c.RootCACRL)
	}
	if err != nil {
		return nil, err
	}
	chain := func(name, header string, b []byte) map[string][]string {
		if err != nil {
			return nil
		}
		s, e := issuerChain(b)
		if e != nil {
			err = fmt.Errorf("quote: %w: Collateral.%s: %w", ErrCollateral, name, e)
			return nil
		}
		// go-tdx-guest URL-decodes the header, as PCS encodes it.
		return map[string][]string{header: {url.QueryEscape(s)}}
	}
	g.tcbInfo = response{chain("TCBInfoIssuerChain", "Tcb-Info-Issuer-Chain", c.TCBInfoIssuerChain), c.TCBInfo}
	g.qeIdentity = response{chain("QEIdentityIssuerChain", "Sgx-Enclave-Identity-Issuer-Chain", c.QEIdentityIssuerChain), c.QEIdentity}
	if nCRL == 3 {
		g.crls = true
		g.pckCRL = response{chain("PCKCRLIssuerChain", "Sgx-Pck-Crl-Issuer-Chain", c.PCKCRLIssuerChain), crlDER(c.PCKCRL)}
		g.rootCRL = response{nil, crlDER(c.RootCACRL)}
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// issuerChain accepts the PEM chain as is, or URL-encoded as in the header.
func issuerChain(b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	// PEM never contains '%'; the header form always does ("%20", "%0A").
	if strings.Contains(s, "%") {
		u, err := url.QueryUnescape(s)
		if err != nil {
			return "", fmt.Errorf("neither PEM nor URL-encoded PEM: %w", err)
		}
		s = u
	}
	if !strings.HasPrefix(s, "-----BEGIN CERTIFICATE-----") {
		return "", fmt.Errorf("does not start with a PEM CERTIFICATE block")
	}
	return s, nil
}

// crlDER turns a PEM CRL into DER (go-tdx-guest parses DER only); anything
// else is passed on for go-tdx-guest to judge.
func crlDER(b []byte) []byte {
	if blk, _ := pem.Decode(b); blk != nil && bytes.Contains([]byte(blk.Type), []byte("CRL")) {
		return blk.Bytes
	}
	return b
}
