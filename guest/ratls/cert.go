package ratls

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

const (
	// DefaultValidity is NewCertificate's validity when it is given 0.
	DefaultValidity = time.Hour
	// MaxCertificateSize bounds a certificate's DER: Go's TLS refuses a
	// Certificate message over 256 KiB, and the evidence (quote, event
	// logs) must fit in one with room for the message's framing.
	MaxCertificateSize = 256<<10 - 1024
)

// NewCertificate makes the worker's RA-TLS certificate: it fills the claims'
// public key (key's) and issue time (now, in whole seconds), asks provider
// for evidence binding SHA-512 of the claims, and self-signs a certificate
// valid from now for validity (DefaultValidity if 0) that carries both as
// critical extensions. The certificate is a function of its inputs (Ed25519
// signatures are deterministic; the serial number comes from the report
// data), so the same evidence gives the same bytes.
func NewCertificate(ctx context.Context, provider attest.Provider, claims Claims, key ed25519.PrivateKey, now time.Time, validity time.Duration) (tls.Certificate, error) {
	if provider == nil {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: no attestation provider")
	}
	if len(key) != ed25519.PrivateKeySize {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: Ed25519 private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if now.IsZero() {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: now is zero; pass the issue time")
	}
	if validity == 0 {
		validity = DefaultValidity
	}
	if validity < time.Second {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: validity %v, want at least 1s", validity)
	}
	pub := key.Public().(ed25519.PublicKey)
	if claims.PublicKey != nil && !pub.Equal(claims.PublicKey) {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: %w: claims carry a public key that is not the certificate key's", ErrBinding)
	}
	issued := now.UTC().Truncate(time.Second)
	if !claims.IssuedAt.IsZero() && !claims.IssuedAt.Equal(issued) {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: claims issue time %v, want it zero or %v (NewCertificate sets it)", claims.IssuedAt, issued)
	}
	claims.PublicKey, claims.IssuedAt = pub, issued
	claimsDER, err := claims.Marshal()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: %w", err)
	}
	rd := ReportData(claimsDER)
	ev, err := provider.Quote(ctx, rd)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: quote: %w", err)
	}
	evDER, err := MarshalEvidence(ev)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: %w", err)
	}
	// A positive serial of at most 20 octets (RFC 5280 §4.1.2.2), unique
	// per claims: the issuer is the key itself, and the claims hold the key
	// and the issue time.
	sn := rd[:16]
	sn[0] = sn[0]&0x7f | 0x01
	t := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sn),
		Subject:      pkix.Name{CommonName: "cocoon worker " + claims.WorkerID},
		NotBefore:    issued,
		NotAfter:     issued.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Server for the worker, client for mutual RA-TLS.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		ExtraExtensions: []pkix.Extension{
			{Id: OIDEvidence, Critical: true, Value: evDER},
			{Id: OIDClaims, Critical: true, Value: claimsDER},
		},
	}
	// Ed25519 signing reads no randomness (RFC 8032 §5.1.6).
	der, err := x509.CreateCertificate(nil, t, t, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: %w", err)
	}
	if len(der) > MaxCertificateSize {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: %w: certificate is %d bytes, more than %d fit a TLS Certificate message", ErrCertificate, len(der), MaxCertificateSize)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ratls: NewCertificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Certificate is a decoded, not yet verified, RA-TLS certificate.
type Certificate struct {
	Leaf      *x509.Certificate
	Claims    Claims
	ClaimsDER []byte // the exact bytes SHA-512 is taken over
	Evidence  *attest.Evidence
}

// ParseCertificate decodes an RA-TLS certificate without verifying it:
// it parses the DER, requires every critical extension to be one of ours
// (ErrUnknownCritical) and ours to be critical (ErrCertificate), and decodes
// the claims and the evidence (ErrNoEvidence, ErrMalformed).
func ParseCertificate(der []byte) (*Certificate, error) {
	if len(der) > MaxCertificateSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrCertificate, len(der), MaxCertificateSize)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	// Go's parser lists the critical extensions it does not process; ours
	// are among them, anything else is a meaning we would be ignoring.
	for _, id := range leaf.UnhandledCriticalExtensions {
		if !id.Equal(OIDEvidence) && !id.Equal(OIDClaims) {
			return nil, fmt.Errorf("%w: %v", ErrUnknownCritical, id)
		}
	}
	var evDER, claimsDER []byte
	for _, e := range leaf.Extensions {
		var dst *[]byte
		switch {
		case e.Id.Equal(OIDEvidence):
			dst = &evDER
		case e.Id.Equal(OIDClaims):
			dst = &claimsDER
		default:
			continue
		}
		// Critical, so that a verifier unaware of RA-TLS refuses the
		// certificate instead of trusting a self-signed key. (Go's parser
		// refuses a repeated extension.)
		if !e.Critical {
			return nil, fmt.Errorf("%w: extension %v is not marked critical", ErrCertificate, e.Id)
		}
		*dst = e.Value
	}
	if evDER == nil {
		return nil, fmt.Errorf("%w: no evidence extension (%v)", ErrNoEvidence, OIDEvidence)
	}
	if claimsDER == nil {
		return nil, fmt.Errorf("%w: no claims extension (%v)", ErrNoEvidence, OIDClaims)
	}
	claims, err := ParseClaims(claimsDER)
	if err != nil {
		return nil, err
	}
	ev, err := ParseEvidence(evDER)
	if err != nil {
		return nil, err
	}
	return &Certificate{Leaf: leaf, Claims: claims, ClaimsDER: claimsDER, Evidence: ev}, nil
}
