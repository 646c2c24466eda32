package quote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// Names in Intel's PCK hierarchy (Intel SGX PCK Certificate and Certificate
// Revocation List Profile Specification: "Intel SGX Root CA", "Intel SGX PCK
// Platform CA" / "Processor CA", "Intel SGX PCK Certificate", and the TCB
// signing certificate "Intel SGX TCB Signing"). go-tdx-guest v0.3.1 accepts
// only the Platform CA as the intermediate of a PCK chain; so do we.
const (
	cnRoot       = "Intel SGX Root CA"
	cnPlatformCA = "Intel SGX PCK Platform CA"
	cnProcessCA  = "Intel SGX PCK Processor CA"
	cnPCK        = "Intel SGX PCK Certificate"
	cnTCBSigning = "Intel SGX TCB Signing"
)

// pckChain is what a Verifier keeps of a PCK certificate chain it has
// verified: enough to check a QE report signature, evaluate the TCB level,
// look the chain up in the CRLs and check every validity window again at
// each call. It holds no verdict that depends on time.
type pckChain struct {
	leafKey *ecdsa.PublicKey
	ext     *pcs.PckExtensions
	ca      string // PCS "ca" parameter: "platform" or "processor"; empty offline

	leafSerial, interSerial string // serialKey, for CRL lookups
	leafIssuer              string // compared with the PCK CRL's issuer
	intermediate, root      *x509.Certificate
	interHash, rootHash     [sha256.Size]byte // identify the CRL signers

	// valid: the windows x509 path validation checks (RFC 5280 §6.1.3
	// (a)(2)): leaf, intermediate, and the trust anchor it chains to.
	valid []window
	// notAfter: go-tdx-guest's own expiry check of the three certificates
	// as the quote carries them (root, intermediate, leaf, in its order).
	notAfter []window
}

// window is a validity period (RFC 5280 §4.1.2.5) with what it belongs to.
type window struct {
	what                string
	notBefore, notAfter time.Time
}

func certWindow(what string, c *x509.Certificate) window {
	return window{what, c.NotBefore, c.NotAfter}
}

// check reports now outside [notBefore, notAfter], with x509's boundaries
// (both ends inclusive).
func (w window) check(now time.Time) error {
	if now.Before(w.notBefore) {
		return fmt.Errorf("%s not valid before %s", w.what, w.notBefore.UTC().Format(time.RFC3339))
	}
	if now.After(w.notAfter) {
		return fmt.Errorf("%s expired at %s", w.what, w.notAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func expiredCert(now time.Time, err error) error {
	return fmt.Errorf("quote: %w: %w at %s: %w", ErrCertificate, ErrExpired, now.UTC().Format(time.RFC3339), err)
}

// checkValidity is the time part of the path validation done when the chain
// was verified, for a chain taken from the cache.
func (c *pckChain) checkValidity(now time.Time) error {
	for _, w := range c.valid {
		if err := w.check(now); err != nil {
			return expiredCert(now, err)
		}
	}
	return nil
}

// checkExpiration is go-tdx-guest's checkCertificateExpiration: NotAfter of
// the quote's root, intermediate and leaf, after the revocation checks.
func (c *pckChain) checkExpiration(now time.Time) error {
	for _, w := range c.notAfter {
		if now.After(w.notAfter) {
			return expiredCert(now, fmt.Errorf("%s expired at %s", w.what, w.notAfter.UTC().Format(time.RFC3339)))
		}
	}
	return nil
}

func serialKey(n *big.Int) string { return n.Text(16) }

// pckCandidate is a parsed, not yet verified, PCK certificate chain.
type pckCandidate struct {
	leaf, intermediate, root *x509.Certificate
	ext                      *pcs.PckExtensions
	ca                       string
}

// parsePCKChain reads certification data type 5 (Intel TDX DCAP Quoting
// Library API, "Quote Format", "PCK Cert Chain": the PEM leaf, intermediate
// CA and root CA certificates, concatenated) as go-tdx-guest's
// extractChainFromQuoteV4 does, then the SGX extensions of the leaf (PCK
// Certificate and CRL Profile, "SGX Extensions": PPID, TCB with CPUSVN
// components and PCESVN, PCE-ID, FMSPC) with go-tdx-guest's own parser. With
// collateral the issuing CA must be the Platform or Processor CA, whose CRL
// PCS serves (PCS API v4, "Get PCK Cert CRL", ca=platform|processor).
func parsePCKChain(b []byte, needCA bool) (*pckCandidate, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("quote: %w: PCK certificate chain: %s", ErrCertificate, fmt.Sprintf(format, a...))
	}
	if len(b) == 0 {
		return nil, bad("empty")
	}
	want := "want PEM CERTIFICATE blocks for the PCK leaf, intermediate CA and root CA"
	var c pckCandidate
	blk, rest := pem.Decode(b)
	if blk == nil || len(rest) == 0 || blk.Type != "CERTIFICATE" {
		return nil, bad("no leaf certificate; %s", want)
	}
	var err error
	if c.leaf, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, bad("leaf: %v", err)
	}
	if blk, rest = pem.Decode(rest); blk == nil || len(rest) == 0 || blk.Type != "CERTIFICATE" {
		return nil, bad("no intermediate CA certificate; %s", want)
	}
	if c.intermediate, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, bad("intermediate CA: %v", err)
	}
	if blk, rest = pem.Decode(rest); blk == nil || blk.Type != "CERTIFICATE" {
		return nil, bad("no root CA certificate; %s", want)
	}
	// The quoting library may end the chain with a NUL.
	if len(rest) != 0 && !bytes.Equal(rest, []byte{0}) {
		return nil, bad("%d bytes after the root CA certificate, want none or one NUL", len(rest))
	}
	if c.root, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, bad("root CA: %v", err)
	}
	if c.ext, err = pcs.PckCertificateExtensions(c.leaf); err != nil {
		return nil, bad("leaf SGX extensions: %v", err)
	}
	if needCA {
		switch cn := c.leaf.Issuer.CommonName; cn {
		case cnPlatformCA:
			c.ca = "platform"
		case cnProcessCA:
			c.ca = "processor"
		default:
			return nil, bad("leaf issued by %q, want %q or %q", cn, cnPlatformCA, cnProcessCA)
		}
	}
	return &c, nil
}

// checkIntelCert is the profile check go-tdx-guest applies to every
// certificate in Intel's hierarchy (PCK Certificate and CRL Profile: X.509
// v3, ecdsa-with-SHA256, EC P-256 keys; the subject common names above),
// then the issuer name and the signature by the parent (RFC 5280 §6.1.3
// (a)(1), (a)(4)).
func checkIntelCert(c, parent *x509.Certificate, cn string) error {
	if c.Version != 3 {
		return fmt.Errorf("X.509 version %d, want 3", c.Version)
	}
	if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		return fmt.Errorf("signature algorithm %v, want %v", c.SignatureAlgorithm, x509.ECDSAWithSHA256)
	}
	if c.PublicKeyAlgorithm != x509.ECDSA {
		return fmt.Errorf("public key algorithm %v, want %v", c.PublicKeyAlgorithm, x509.ECDSA)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		return fmt.Errorf("public key %T, want an ECDSA P-256 key", c.PublicKey)
	}
	if c.Subject.CommonName != cn {
		return fmt.Errorf("subject common name %q, want %q", c.Subject.CommonName, cn)
	}
	if got, want := c.Issuer.String(), parent.Subject.String(); got != want {
		return fmt.Errorf("issuer %q, want the parent's subject %q", got, want)
	}
	if err := c.CheckSignatureFrom(parent); err != nil {
		return fmt.Errorf("signature by %q: %w", parent.Subject.CommonName, err)
	}
	return nil
}

// verify is go-tdx-guest's verifyPCKCertificationChain up to the revocation
// checks: each certificate against the profile and its parent, then x509
// path validation at now to our pinned Intel root. It fails for a chain
// that is outside its validity at now, so that no failure is cached.
func (c *pckCandidate) verify(now time.Time) (*pckChain, error) {
	for _, s := range []struct {
		what         string
		cert, parent *x509.Certificate
		cn           string
	}{
		{"root CA", c.root, c.root, cnRoot},
		{"intermediate CA", c.intermediate, c.root, cnPlatformCA},
		{"PCK leaf", c.leaf, c.intermediate, cnPCK},
	} {
		if err := checkIntelCert(s.cert, s.parent, s.cn); err != nil {
			return nil, fmt.Errorf("quote: %w: %s certificate: %w", ErrCertificate, s.what, err)
		}
	}
	inter := x509.NewCertPool()
	inter.AddCert(c.intermediate)
	// Default key usage (server auth), as go-tdx-guest: PCK certificates
	// carry no extended key usage, which x509 takes as any.
	if _, err := c.leaf.Verify(x509.VerifyOptions{Roots: intelRoots(), Intermediates: inter, CurrentTime: now}); err != nil {
		if expired.in(err.Error()) {
			return nil, expiredCert(now, err)
		}
		return nil, fmt.Errorf("quote: %w: PCK leaf does not chain to the Intel SGX Root CA: %w", ErrCertificate, err)
	}
	return &pckChain{
		leafKey:      c.leaf.PublicKey.(*ecdsa.PublicKey),
		ext:          c.ext,
		ca:           c.ca,
		leafSerial:   serialKey(c.leaf.SerialNumber),
		interSerial:  serialKey(c.intermediate.SerialNumber),
		leafIssuer:   c.leaf.Issuer.String(),
		intermediate: c.intermediate,
		root:         c.root,
		interHash:    sha256.Sum256(c.intermediate.Raw),
		rootHash:     sha256.Sum256(c.root.Raw),
		valid: []window{
			certWindow("PCK leaf certificate", c.leaf),
			certWindow("PCK intermediate CA certificate", c.intermediate),
			certWindow("Intel SGX Root CA certificate", intelRoot()),
		},
		notAfter: []window{
			certWindow("PCK chain root CA certificate", c.root),
			certWindow("PCK intermediate CA certificate", c.intermediate),
			certWindow("PCK leaf certificate", c.leaf),
		},
	}, nil
}

// chainCache maps SHA-256 of a quote's PCK chain bytes to the verified
// chain. Only chains that verified are added, and at most max of them:
// a full cache drops an arbitrary entry (Go randomises map iteration), so
// no sequence of chains, however chosen, grows it or pins what it holds.
// (One real quote yields many distinct chain byte strings: PEM text around
// the blocks is free.)
type chainCache struct {
	mu  sync.RWMutex
	max int
	m   map[[sha256.Size]byte]*pckChain
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, m: make(map[[sha256.Size]byte]*pckChain)}
}

func (c *chainCache) get(k [sha256.Size]byte) *pckChain {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *chainCache) add(k [sha256.Size]byte, p *pckChain) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = p
}

func (c *chainCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
