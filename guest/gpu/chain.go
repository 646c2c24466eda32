package gpu

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"time"
)

// maxChainCerts bounds the attestation chain; Hopper's has 5 (leaf
// "GH100 A01 GSP FMC LF", "GH100 A01 GSP BROM", "NVIDIA GH100 Provisioner
// ICA 1", "NVIDIA GH100 Identity", root "NVIDIA Device Identity CA").
const maxChainCerts = 8

// ParseCertChain parses the PEM attestation certificate chain NVML returns.
// Only CERTIFICATE blocks without headers, separated by whitespace, are
// accepted; trailing NUL bytes (NVML's fixed-size buffer) are ignored.
// Errors wrap ErrChain.
func ParseCertChain(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := b
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n\x00")
		if len(rest) == 0 {
			break
		}
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, fmt.Errorf("%w: unexpected data at offset %d, want a PEM certificate", ErrChain, len(b)-len(rest))
		}
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		switch {
		case blk == nil:
			return nil, fmt.Errorf("%w: malformed PEM block at offset %d", ErrChain, len(b)-len(rest))
		case blk.Type != "CERTIFICATE" || len(blk.Headers) != 0:
			return nil, fmt.Errorf("%w: PEM block %q with %d headers, want CERTIFICATE", ErrChain, blk.Type, len(blk.Headers))
		case len(certs) == maxChainCerts:
			return nil, fmt.Errorf("%w: more than %d certificates", ErrChain, maxChainCerts)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %w", ErrChain, len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		return nil, fmt.Errorf("%w: %d certificates, want the attestation certificate up to the root", ErrChain, len(certs))
	}
	return certs, nil
}

// VerifyCertChain checks that certs, leaf first, is a valid certification
// path at now that ends in a certificate of roots, in exactly the order
// given: every certificate is signed by the next, and the last is one of
// the pinned roots itself (NVIDIA's verifier also requires the chain's
// root to be its pinned root, not merely to chain to it). nil roots means
// the pinned NVIDIA root, never the system's. Errors wrap ErrChain.
func VerifyCertChain(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	if len(certs) < 2 {
		return fmt.Errorf("%w: %d certificates", ErrChain, len(certs))
	}
	if roots == nil {
		var err error
		if roots, err = NVIDIARoots(); err != nil {
			return err
		}
	}
	if now.IsZero() {
		// x509 would read the wall clock: the caller passes the time.
		return fmt.Errorf("%w: no verification time given", ErrChain)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1 : len(certs)-1] {
		inter.AddCert(c)
	}
	paths, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		// NVIDIA's device certificates carry no extended key usage.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("%w: leaf %q: %w", ErrChain, certs[0].Subject, err)
	}
	for _, p := range paths {
		if samePath(p, certs) {
			return nil
		}
	}
	return fmt.Errorf("%w: leaf %q verifies, but not through the %d certificates presented ending in a pinned root", ErrChain, certs[0].Subject, len(certs))
}

func samePath(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// ChainSHA256 is the chain's fingerprint: SHA-256 over the DER
// certificates, leaf first, concatenated.
func ChainSHA256(certs []*x509.Certificate) [32]byte {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c.Raw)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// oidDiceFWID is the extension NVIDIA's attestation certificates carry
// under 2.23.133.5.4.1 (TCG "Implicit Identity Based Device Attestation",
// composite device identifier). Its content, as in every recorded chain:
//
//	SEQUENCE {
//	  version   INTEGER (1),
//	  deviceID  SubjectPublicKeyInfo,   -- the issuing layer's key
//	  fwid      SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }
//	}
//
// The TCG DICE Attestation Architecture later gave the same arc to
// DiceTcbInfo, a different structure; NVIDIA's verifier sidesteps the
// question by taking the extension's last 48 bytes. We parse the structure
// and fail on anything else.
var (
	oidDiceFWID = asn1.ObjectIdentifier{2, 23, 133, 5, 4, 1}
	oidSHA384   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
)

type compositeDeviceID struct {
	Version  int
	DeviceID asn1.RawValue
	FWID     struct {
		HashAlg asn1.ObjectIdentifier
		Digest  []byte
	}
}

// CertFWID returns the SHA-384 FWID of an attestation certificate and the
// DER SubjectPublicKeyInfo of the device ID beside it; ok is false when the
// certificate has no such extension. Errors wrap ErrChain.
func CertFWID(c *x509.Certificate) (fwid, deviceID []byte, ok bool, err error) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidDiceFWID) {
			continue
		}
		var v compositeDeviceID
		rest, err := asn1.Unmarshal(e.Value, &v)
		switch {
		case err != nil:
			return nil, nil, false, fmt.Errorf("%w: FWID extension: %w", ErrChain, err)
		case len(rest) != 0:
			return nil, nil, false, fmt.Errorf("%w: FWID extension has %d trailing bytes", ErrChain, len(rest))
		case v.Version != 1:
			return nil, nil, false, fmt.Errorf("%w: FWID extension version %d, want 1", ErrChain, v.Version)
		case !v.FWID.HashAlg.Equal(oidSHA384) || len(v.FWID.Digest) != DigestSize:
			return nil, nil, false, fmt.Errorf("%w: FWID %v of %d bytes, want SHA-384", ErrChain, v.FWID.HashAlg, len(v.FWID.Digest))
		}
		return v.FWID.Digest, v.DeviceID.FullBytes, true, nil
	}
	return nil, nil, false, nil
}
