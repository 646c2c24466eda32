package quote

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
)

// collateralSet is one set of PCS collateral, parsed once (see obtain),
// with its signatures checked once (see signedCollateral.verify). What
// depends on time is checked at every call: checkTimes and the signers'
// validity in signedCollateral.verify.
type collateralSet struct {
	tcb    *pcs.TcbInfo         // parsed from the signed bytes
	qe     *pcs.EnclaveIdentity // likewise
	tcbSig *signedCollateral
	qeSig  *signedCollateral
	crls   *crlSet // nil: no revocation checks (Collateral without CRLs)
	// shapeErr: go-tdx-guest's verifyCollateral found an empty TCB info or
	// QE identity; reported where it reports it.
	shapeErr error
}

// signedCollateral is TCB info or QE identity as PCS API v4 returns them
// ("Get TDX TCB Info", TCB Info V3; "Get TDX QE Identity", Enclave
// Identity V2): {"tcbInfo"|"enclaveIdentity": {...}, "signature": hex}, the
// signature being ECDSA P-256 with SHA-256, r||s, over the exact bytes of
// the first member's value, by the Intel SGX TCB Signing certificate sent
// with its root in a response header.
type signedCollateral struct {
	what          string // "TCB info", "QE identity"
	body          []byte // the signed bytes
	sig           string
	signing, root *x509.Certificate
	issue, next   time.Time
	empty         bool // the whole response decoded to the zero value
	// contentErr: ID, version or TCB levels not as go-tdx-guest requires
	// (verifyTCBinfo, verifyQeIdentity), checked before the signature.
	contentErr error
	// verified: the issuer chain, the signature and (with CRLs) the signing
	// certificate's revocation have been checked, which does not depend on
	// time; the signers' validity windows are checked at every call.
	verified atomic.Bool
}

func collErr(format string, a ...any) error {
	return fmt.Errorf("quote: %w: %s", ErrCollateral, fmt.Sprintf(format, a...))
}

func expiredColl(now time.Time, err error) error {
	return fmt.Errorf("quote: %w: %w at %s: %w", ErrCollateral, ErrExpired, now.UTC().Format(time.RFC3339), err)
}

// verify is go-tdx-guest's verifyResponse: the issuer root self-signed and
// the signing certificate signed by it (profile as for the PCK chain), the
// signing certificate chaining to our pinned root at now, the signature over
// body, and, with CRLs, the root CA CRL verified with the issuer root and not
// listing the signing certificate. Only success is remembered.
func (s *signedCollateral) verify(now time.Time, crls *crlSet) error {
	if s.contentErr != nil {
		return s.contentErr
	}
	if s.verified.Load() {
		// The time part of the path validation below.
		for _, w := range []window{
			certWindow(s.what+" signing certificate", s.signing),
			certWindow("Intel SGX Root CA certificate", intelRoot()),
		} {
			if err := w.check(now); err != nil {
				return expiredColl(now, err)
			}
		}
		return nil
	}
	if err := checkIntelCert(s.root, s.root, cnRoot); err != nil {
		return collErr("%s issuer root: %v", s.what, err)
	}
	if err := checkIntelCert(s.signing, s.root, cnTCBSigning); err != nil {
		return collErr("%s signing certificate: %v", s.what, err)
	}
	if _, err := s.signing.Verify(x509.VerifyOptions{Roots: intelRoots(), CurrentTime: now}); err != nil {
		if expired.in(err.Error()) {
			return expiredColl(now, fmt.Errorf("%s signing certificate: %w", s.what, err))
		}
		return collErr("%s signing certificate does not chain to the Intel SGX Root CA: %v", s.what, err)
	}
	raw, err := hex.DecodeString(s.sig)
	if err != nil {
		return collErr("%s signature is not hex: %v", s.what, err)
	}
	der, err := abi.SignatureToDER(raw)
	if err != nil {
		return collErr("%s signature: %v", s.what, err)
	}
	if err := s.signing.CheckSignature(x509.ECDSAWithSHA256, s.body, der); err != nil {
		return collErr("%s signature does not verify with %q: %v", s.what, s.signing.Subject.CommonName, err)
	}
	if crls != nil {
		if err := checkCRL(crls.root, s.root); err != nil {
			return collErr("root CA CRL, checked with the %s issuer root: %v", s.what, err)
		}
		if t, ok := crls.rootRevoked[serialKey(s.signing.SerialNumber)]; ok {
			return collErr("%s signing certificate revoked at %s", s.what, t.UTC().Format(time.RFC3339))
		}
	}
	s.verified.Store(true)
	return nil
}

// checkTimes is go-tdx-guest's checkCollateralExpiration, in its order:
// nextUpdate of TCB info and QE identity, NotAfter of their signing and root
// certificates, and with CRLs the CRLs' nextUpdate (RFC 5280 §5.1.2.5) and
// NotAfter of the PCK CRL issuer chain. Then the starts of the same windows,
// which go-tdx-guest does not check (issueDate, thisUpdate §5.1.2.4,
// NotBefore): collateral from the future at now is not valid either.
// instant is one end of a validity window, named for the error message.
type instant struct {
	what string
	t    time.Time
}

func (c *collateralSet) checkTimes(now time.Time) error {
	ends := []instant{
		{"TCB info nextUpdate", c.tcbSig.next},
		{"QE identity nextUpdate", c.qeSig.next},
		{"TCB info signing certificate", c.tcbSig.signing.NotAfter},
		{"TCB info issuer root certificate", c.tcbSig.root.NotAfter},
		{"QE identity issuer root certificate", c.qeSig.root.NotAfter},
		{"QE identity signing certificate", c.qeSig.signing.NotAfter},
	}
	starts := []instant{
		{"TCB info issueDate", c.tcbSig.issue},
		{"QE identity issueDate", c.qeSig.issue},
		{"TCB info issuer root certificate", c.tcbSig.root.NotBefore},
		{"QE identity issuer root certificate", c.qeSig.root.NotBefore},
	}
	if c.crls != nil {
		ends = append(ends, []instant{
			{"root CA CRL nextUpdate", c.crls.root.NextUpdate},
			{"PCK CRL nextUpdate", c.crls.pck.NextUpdate},
			{"PCK CRL signing certificate", c.crls.pckSigning.NotAfter},
			{"PCK CRL issuer root certificate", c.crls.pckRoot.NotAfter},
		}...)
		starts = append(starts, []instant{
			{"root CA CRL thisUpdate", c.crls.root.ThisUpdate},
			{"PCK CRL thisUpdate", c.crls.pck.ThisUpdate},
			{"PCK CRL signing certificate", c.crls.pckSigning.NotBefore},
			{"PCK CRL issuer root certificate", c.crls.pckRoot.NotBefore},
		}...)
	}
	for _, e := range ends {
		if now.After(e.t) {
			return expiredColl(now, fmt.Errorf("%s %s has passed", e.what, e.t.UTC().Format(time.RFC3339)))
		}
	}
	for _, s := range starts {
		if now.Before(s.t) {
			return expiredColl(now, fmt.Errorf("%s %s is still to come", s.what, s.t.UTC().Format(time.RFC3339)))
		}
	}
	return nil
}

// check runs, in go-tdx-guest's order, what it does with the collateral
// between the PCK chain and the quote: verifyCollateral (shape, times),
// verifyTCBinfo and verifyQeIdentity.
func (c *collateralSet) check(now time.Time) error {
	if c.shapeErr != nil {
		return c.shapeErr
	}
	if err := c.checkTimes(now); err != nil {
		return err
	}
	if err := c.tcbSig.verify(now, c.crls); err != nil {
		return err
	}
	return c.qeSig.verify(now, c.crls)
}

// stale: some part of c has passed its nextUpdate at now, so a Verifier with
// a Getter fetches again.
func (c *collateralSet) stale(now time.Time) bool {
	if now.After(c.tcbSig.next) || now.After(c.qeSig.next) {
		return true
	}
	return c.crls != nil && (now.After(c.crls.root.NextUpdate) || now.After(c.crls.pck.NextUpdate))
}
