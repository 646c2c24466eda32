package quote

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"sync"
	"time"
)

// crlSet is the Intel SGX Root CA CRL and the PCK CA CRL (PCS API v4, "Get
// PCK Cert CRL"), parsed once, with their revoked serial numbers in maps so
// that revocation is a lookup per quote.
type crlSet struct {
	root, pck *x509.RevocationList
	// The Sgx-Pck-Crl-Issuer-Chain header. As in go-tdx-guest only the
	// validity of these is checked: the PCK CRL's signature is checked with
	// the quote's own (verified) intermediate CA.
	pckSigning, pckRoot *x509.Certificate
	pckIssuer           string

	rootRevoked, pckRevoked map[string]time.Time // serialKey -> revocation date

	// Signers each CRL has been verified with (issuer name and signature,
	// RFC 5280 §6.3.3 (f), (g)); only certificates of verified PCK chains
	// get here, and the maps are cleared at maxCRLSigners.
	mu            sync.Mutex
	rootOK, pckOK map[[sha256.Size]byte]bool
}

const maxCRLSigners = 16

func newCRLSet(root, pck *x509.RevocationList, pckSigning, pckRoot *x509.Certificate) *crlSet {
	s := &crlSet{
		root: root, pck: pck, pckSigning: pckSigning, pckRoot: pckRoot,
		pckIssuer:   pck.Issuer.String(),
		rootRevoked: revoked(root), pckRevoked: revoked(pck),
		rootOK: map[[sha256.Size]byte]bool{}, pckOK: map[[sha256.Size]byte]bool{},
	}
	return s
}

func revoked(l *x509.RevocationList) map[string]time.Time {
	m := make(map[string]time.Time, len(l.RevokedCertificateEntries))
	for _, e := range l.RevokedCertificateEntries {
		m[serialKey(e.SerialNumber)] = e.RevocationTime
	}
	return m
}

// checkCRL is go-tdx-guest's validateCRL: the CRL names the certificate's
// subject as its issuer and is signed by its key.
func checkCRL(l *x509.RevocationList, c *x509.Certificate) error {
	if got, want := l.Issuer.String(), c.Subject.String(); got != want {
		return fmt.Errorf("issuer %q, want %q", got, want)
	}
	if err := l.CheckSignatureFrom(c); err != nil {
		return fmt.Errorf("signature by %q: %w", c.Subject.CommonName, err)
	}
	return nil
}

// verifiedBy checks l with c once per certificate and remembers success.
func (s *crlSet) verifiedBy(ok map[[sha256.Size]byte]bool, l *x509.RevocationList, c *x509.Certificate, h [sha256.Size]byte) error {
	s.mu.Lock()
	done := ok[h]
	s.mu.Unlock()
	if done {
		return nil
	}
	if err := checkCRL(l, c); err != nil {
		return err
	}
	s.mu.Lock()
	if len(ok) >= maxCRLSigners {
		clear(ok)
	}
	ok[h] = true
	s.mu.Unlock()
	return nil
}

// checkChain is the revocation part of go-tdx-guest's
// verifyPCKCertificationChain, in its order: the root CA CRL verified with
// the chain's root, the PCK CRL with the chain's intermediate and naming the
// leaf's issuer, then the intermediate and the leaf looked up in them
// (RFC 5280 §6.3.3 (i)).
func (s *crlSet) checkChain(c *pckChain) error {
	if err := s.verifiedBy(s.rootOK, s.root, c.root, c.rootHash); err != nil {
		return fmt.Errorf("quote: %w: root CA CRL, checked with the PCK chain's root: %w", ErrCollateral, err)
	}
	if err := s.verifiedBy(s.pckOK, s.pck, c.intermediate, c.interHash); err != nil {
		return fmt.Errorf("quote: %w: PCK CRL, checked with the PCK chain's intermediate CA: %w", ErrCollateral, err)
	}
	if s.pckIssuer != c.leafIssuer {
		return fmt.Errorf("quote: %w: PCK CRL issued by %q, want the PCK leaf's issuer %q", ErrCollateral, s.pckIssuer, c.leafIssuer)
	}
	if t, ok := s.rootRevoked[c.interSerial]; ok {
		return fmt.Errorf("quote: %w: intermediate CA certificate (serial %s) revoked at %s by the root CA CRL", ErrCertificate, c.interSerial, t.UTC().Format(time.RFC3339))
	}
	if t, ok := s.pckRevoked[c.leafSerial]; ok {
		return fmt.Errorf("quote: %w: PCK leaf certificate (serial %s) revoked at %s by the PCK CRL", ErrCertificate, c.leafSerial, t.UTC().Format(time.RFC3339))
	}
	return nil
}
