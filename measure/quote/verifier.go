package quote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify/trust"
)

const (
	// DefaultMaxChains bounds a Verifier's PCK chain cache when
	// VerifierOptions.MaxChains is 0: one entry per worker platform.
	DefaultMaxChains = 1024
	// DefaultCollateralMaxAge is VerifierOptions.CollateralMaxAge when 0.
	DefaultCollateralMaxAge = 24 * time.Hour
)

// VerifierOptions says what a Verifier checks quotes against. There is no
// clock in it: Verifier.Verify takes the time at each call.
type VerifierOptions struct {
	// Collateral, when set, is checked offline, as Options.Collateral, and
	// Getter is not used. NewVerifier reads it once.
	Collateral *Collateral
	// Getter fetches collateral from Intel's PCS when Collateral is nil, as
	// Options.Getter, but once per platform (FMSPC and PCK CA) until
	// CollateralMaxAge has passed, a nextUpdate has passed, or it failed to
	// verify. Nil (and no Collateral) means offline.
	Getter trust.HTTPSGetter
	// MaxChains bounds the cache of verified PCK certificate chains; 0 means
	// DefaultMaxChains.
	MaxChains int
	// CollateralMaxAge is how long collateral fetched with Getter is used,
	// counted in the times passed to Verify; 0 means DefaultCollateralMaxAge.
	CollateralMaxAge time.Duration
}

// Verifier verifies quotes as Verify does, with the same checks and the same
// typed errors, but keeps what does not change from one quote to the next:
//
//   - verified PCK certificate chains, by SHA-256 of the chain's bytes: the
//     PCK leaf's public key and SGX extensions, the intermediate and root
//     certificates, their serial numbers and validity windows;
//   - the collateral, parsed once, with the TCB info and QE identity
//     signatures and issuer chains checked once;
//   - the CRLs, parsed once, their signatures checked once per signer, their
//     revoked serial numbers in maps.
//
// Every call parses the quote and checks its layout; checks the ECDSA
// signature of header and TD quote body by the attestation key, the QE
// report's signature by the PCK leaf key, and the QE report data binding;
// looks the PCK leaf and intermediate up in the CRLs; matches the QE report
// against the QE identity (or, offline, the pinned TD_QE) and evaluates the
// TDX TCB level; and checks every validity window (certificates,
// issueDate/nextUpdate, thisUpdate/nextUpdate) against now. No verdict that
// depends on time is cached, and no failure is: a chain or collateral that
// does not verify is verified again, in full, at the next call.
//
// Where it deliberately differs from Verify:
//   - collateral or a CRL whose issueDate, thisUpdate or issuer certificate
//     starts after now is ErrExpired (Verify only checks the ends);
//   - TCB info and QE identity are read from the bytes their signature
//     covers (Verify reads the whole response, where a second member whose
//     name differs only in case replaces the signed one, and so accepts
//     collateral that Intel did not sign);
//   - errors are sorted by the step that fails, not by their text (Verify's
//     classify files, say, a PCK certificate that does not parse because of
//     its CRL distribution points extension under ErrCollateral, and a
//     Getter's network error that mentions expiry under ErrExpired);
//   - with a Getter, collateral is reused (see VerifierOptions.Getter), and
//     the PCK chain is verified before anything is fetched for it, so a
//     chain that is not Intel's causes no request to PCS (ErrCertificate
//     where Verify, failing to fetch first, says ErrCollateral).
//
// A Verifier is safe for concurrent use.
type Verifier struct {
	chains     *chainCache
	collateral bool // Collateral or Getter: the full collateral checks

	// Collateral: prepared by NewVerifier. givenErr (incomplete) is
	// reported right after parsing, obtainErr (does not parse) after the
	// PCK chain is parsed: where Verify reports them.
	given     *collateralSet
	givenErr  error
	obtainErr error

	fetch *fetchCache // Getter
}

// NewVerifier returns a Verifier for o. Problems with o.Collateral are
// reported by every call to Verify, as Verify reports them.
func NewVerifier(o VerifierOptions) *Verifier {
	n := o.MaxChains
	if n <= 0 {
		n = DefaultMaxChains
	}
	v := &Verifier{chains: newChainCache(n)}
	switch {
	case o.Collateral != nil:
		v.collateral = true
		g, err := o.Collateral.getter()
		if err != nil {
			v.givenErr = err
			break
		}
		// The offline getter serves the same bytes for any FMSPC and CA,
		// so one set serves every platform; checkTDQuoteBody then checks
		// that the TCB info is for the quote's FMSPC.
		v.given, v.obtainErr = obtain(g, "", "platform", g.crls)
	case o.Getter != nil:
		v.collateral = true
		age := o.CollateralMaxAge
		if age <= 0 {
			age = DefaultCollateralMaxAge
		}
		v.fetch = &fetchCache{g: o.Getter, maxAge: age, m: map[string]*fetched{}}
	}
	return v
}

var errNoTime = errors.New("quote: Verifier.Verify: now is zero; pass the verification time")

// Verify parses raw and checks that it is genuine at now, as the function
// Verify does with Options{Now: now} and v's collateral.
func (v *Verifier) Verify(raw []byte, now time.Time) (*pb.QuoteV4, error) {
	if now.IsZero() {
		return nil, errNoTime
	}
	q, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if v.givenErr != nil {
		return nil, v.givenErr
	}
	qrc := q.GetSignedData().GetCertificationData().GetQeReportCertificationData()
	pck, err := v.pckChain(qrc.GetPckCertificateChainData().GetPckCertChain(), now)
	if err != nil {
		return nil, err
	}
	cs := v.given
	if v.fetch != nil {
		if cs, err = v.fetch.get(pck.ext.FMSPC, pck.ca, now); err != nil {
			return nil, err
		}
	}
	if err := v.checkCollateral(cs, pck, now); err != nil {
		return nil, err
	}
	if err := checkSignatures(raw, q, pck); err != nil {
		return nil, err
	}
	if cs != nil {
		if err := checkTDQuoteBody(q.GetTdQuoteBody(), cs.tcb, pck.ext); err != nil {
			return nil, err
		}
		if err := checkQEReport(qrc.GetQeReport(), cs.qe); err != nil {
			return nil, err
		}
	} else if err := checkQE(q); err != nil {
		return nil, err
	}
	q.ExtraBytes = nil
	return q, nil
}

// pckChain returns the quote's PCK chain verified at now, from the cache
// or parsed and verified in full (and then cached).
func (v *Verifier) pckChain(chain []byte, now time.Time) (*pckChain, error) {
	k := sha256.Sum256(chain)
	c := v.chains.get(k)
	var cand *pckCandidate
	if c == nil {
		var err error
		if cand, err = parsePCKChain(chain, v.collateral); err != nil {
			return nil, err
		}
	}
	// go-tdx-guest obtains the collateral here, between parsing the PCK
	// chain and verifying it.
	if v.obtainErr != nil {
		return nil, v.obtainErr
	}
	if c != nil {
		if err := c.checkValidity(now); err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := cand.verify(now)
	if err != nil {
		return nil, err
	}
	v.chains.add(k, c)
	return c, nil
}

// checkCollateral does, in go-tdx-guest's order, what comes between the PCK
// chain and the quote: revocation of the chain, the chain's expiry, then the
// collateral's shape, times, and signatures.
func (v *Verifier) checkCollateral(cs *collateralSet, pck *pckChain, now time.Time) error {
	if cs != nil && cs.crls != nil {
		if err := cs.crls.checkChain(pck); err != nil {
			v.forget(cs, err)
			return err
		}
	}
	if err := pck.checkExpiration(now); err != nil {
		return err
	}
	if cs == nil {
		return nil
	}
	if err := cs.check(now); err != nil {
		v.forget(cs, err)
		return err
	}
	return nil
}

// forget drops fetched collateral that failed to verify (not merely
// expired), so that the next quote fetches it again.
func (v *Verifier) forget(cs *collateralSet, err error) {
	if v.fetch != nil && errors.Is(err, ErrCollateral) && !errors.Is(err, ErrExpired) {
		v.fetch.forget(cs)
	}
}

// checkSignatures is go-tdx-guest's verifyQuote without the collateral
// checks (Intel TDX DCAP Quoting Library API, "Quote Format": Quote
// Signature Data, QE Report Certification Data, QE Authentication Data),
// in its order:
//  1. the ECDSA P-256 signature (r||s) over SHA-256 of header || TD quote
//     body, by the attestation key (an uncompressed P-256 point, x||y);
//  2. the QE report's signature, over SHA-256 of the 384-byte report, by
//     the PCK leaf key;
//  3. QE report data = SHA-256(attestation key || QE authentication data)
//     || 32 zero bytes, which ties the attestation key to the QE.
//
// It reads the signed bytes from raw: Parse has checked the layout, and
// go-tdx-guest's encoder gives back exactly these bytes.
func checkSignatures(raw []byte, q *pb.QuoteV4, pck *pckChain) error {
	sd := q.GetSignedData()
	akBytes := sd.GetEcdsaAttestationKey()
	ak, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, akBytes...))
	if err != nil {
		return fmt.Errorf("quote: %w: attestation key %x is not a P-256 point: %w", ErrSignature, akBytes, err)
	}
	sig, err := abi.SignatureToDER(sd.GetSignature())
	if err != nil {
		return fmt.Errorf("quote: %w: quote signature: %w", ErrSignature, err)
	}
	h := sha256.Sum256(raw[:quoteSignedEnd])
	if !ecdsa.VerifyASN1(ak, h[:], sig) {
		return fmt.Errorf("quote: %w: signature over header and TD quote body does not verify with the attestation key", ErrSignature)
	}
	qrc := sd.GetCertificationData().GetQeReportCertificationData()
	if sig, err = abi.SignatureToDER(qrc.GetQeReportSignature()); err != nil {
		return fmt.Errorf("quote: %w: QE report signature: %w", ErrSignature, err)
	}
	h = sha256.Sum256(raw[qeReportStart : qeReportStart+qeReportSize])
	if !ecdsa.VerifyASN1(pck.leafKey, h[:], sig) {
		return fmt.Errorf("quote: %w: QE report signature does not verify with the PCK leaf key", ErrSignature)
	}
	d := sha256.New()
	d.Write(akBytes)
	d.Write(qrc.GetQeAuthData().GetData())
	want := d.Sum(make([]byte, 0, 64))
	want = append(want, make([]byte, 32)...)
	if got := qrc.GetQeReport().GetReportData(); !bytes.Equal(got, want) {
		return fmt.Errorf("quote: %w: QE report data = %x, want SHA-256(attestation key || QE auth data) || zeros = %x", ErrSignature, got, want)
	}
	return nil
}
