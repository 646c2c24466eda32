package quote

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/verify"
)

// Typed errors; see the package documentation for what each covers. Test
// with errors.Is.
var (
	ErrMalformed   = errors.New("malformed quote")
	ErrSignature   = errors.New("signature does not verify")
	ErrCertificate = errors.New("PCK certificate chain not valid")
	ErrCollateral  = errors.New("collateral check failed")
	ErrTCBStatus   = fmt.Errorf("%w: platform TCB level not UpToDate", ErrCollateral)
	ErrExpired     = errors.New("outside its validity period")
)

// go-tdx-guest v0.3.1 wraps most of its errors with %v, so its sentinels do
// not survive errors.Is; we recognise them, and its other messages, by text.
// The failure table in verify_test.go drives every branch with the real
// sample quote, so a go-tdx-guest upgrade that changes a message fails a test
// instead of silently changing a category.

// needles lists texts that place an error; a sentinel counts by its text.
type needles []any

func (n needles) in(msg string) bool {
	for _, x := range n {
		var s string
		switch x := x.(type) {
		case string:
			s = x
		case error:
			s = x.Error()
		}
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

var (
	expired = needles{
		// x509's own text for CertificateInvalidError{Reason: Expired}.
		strings.TrimSuffix(x509.CertificateInvalidError{Reason: x509.Expired}.Error(), ": "),
		verify.ErrPckLeafCertExpired, verify.ErrRootCaCertExpired, verify.ErrIntermediateCaCertExpired,
		verify.ErrTcbInfoExpired, verify.ErrQeIdentityExpired, verify.ErrRootCaCrlExpired, verify.ErrPCKCrlExpired,
		verify.ErrPCKCrlSigningCertExpired, verify.ErrPCKCrlRootCertExpired,
		verify.ErrTcbInfoSigningCertExpired, verify.ErrTcbInfoRootCertExpired,
		verify.ErrQeIdentitySigningCertExpired, verify.ErrQeIdentityRootCertExpired,
	}
	tcbStatus = needles{verify.ErrTcbStatus, "TCB status check", "TCB Status is not"}
	// Anything about Intel's collateral: TCB info, QE identity, CRLs, and
	// what is compared against them.
	collateral = needles{
		"collateral", "tcbInfo", "TCB info", "QeIdentity", "QE Identity", "Intel PCS", "CRL",
		verify.ErrTcbInfoExpired, verify.ErrQeIdentityExpired,
	}
	signature = needles{
		verify.ErrHashVerificationFail, verify.ErrSHA56VerificationFail,
		"QE report signature", "QE report's signature", "QE Report's signature",
		"attestation key in the quote is invalid", "QuoteV4's signature", "message digest",
	}
	certificate = needles{
		verify.ErrPCKCertChainNil, verify.ErrPCKCertChainInvalid, verify.ErrRootCertNil,
		verify.ErrPCKCertNil, verify.ErrIntermediateCertNil, verify.ErrCertPubKeyType,
		verify.ErrPckCertCANil, verify.ErrKeyMismatch,
		"certificate", "Certificate", "revoked",
	}
	malformed = needles{"QuoteV4 invalid", abi.ErrTeeType, abi.ErrAttestationKeyType}
)

// classify sorts an error from verify.TdxQuote into our typed errors,
// keeping it wrapped. Order matters: expiry first (it names where), TCB
// status before other collateral problems, collateral before signature and
// certificate (collateral messages mention both).
func classify(err error, now time.Time) error {
	msg := err.Error()
	at := now.UTC().Format(time.RFC3339)
	switch {
	case expired.in(msg):
		where := ErrCertificate
		if collateral.in(msg) {
			where = ErrCollateral
		}
		return fmt.Errorf("quote: %w: %w at %s: %w", where, ErrExpired, at, err)
	case tcbStatus.in(msg):
		return fmt.Errorf("quote: %w: %w", ErrTCBStatus, err)
	case collateral.in(msg):
		return fmt.Errorf("quote: %w: %w", ErrCollateral, err)
	case signature.in(msg):
		return fmt.Errorf("quote: %w: %w", ErrSignature, err)
	case certificate.in(msg):
		return fmt.Errorf("quote: %w: %w", ErrCertificate, err)
	case malformed.in(msg):
		return fmt.Errorf("quote: %w: %w", ErrMalformed, err)
	default:
		// Not shown genuine, for a reason we do not recognise: treat it as
		// the strongest failure rather than guess a milder one.
		return fmt.Errorf("quote: %w (unrecognised go-tdx-guest error): %w", ErrSignature, err)
	}
}
