package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/cocoon-appliance/cocoon/measure/quote"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// Typed errors of Verify; test with errors.Is.
var (
	// ErrMalformed: not a well-formed quote v4 (wraps quote.ErrMalformed
	// where measure/quote.Parse said so), or bytes after the signed data.
	ErrMalformed = errors.New("sim: malformed quote")
	// ErrCertificate: the PCK certificate chain is malformed or does not
	// lead to the pinned simulator root.
	ErrCertificate = errors.New("sim: PCK certificate chain not from the pinned simulator root")
	// ErrSignature: the attestation key's signature, the QE report's
	// signature, the QE report data or the QE identity does not verify.
	ErrSignature = errors.New("sim: signature does not verify")
)

// Verify checks that raw is an intact quote made by a simulator whose root
// certificate is root (Simulator.Root), and returns it parsed. In order:
//
//  1. layout, as measure/quote.Parse (no bytes after the signed data: the
//     simulator writes none);
//  2. the PCK chain: exactly three PEM certificates, leaf first; the third
//     is root, byte for byte; the platform CA is signed by root and is a
//     CA; the leaf is signed by the platform CA, is not a CA and has a
//     P-256 key; each issuer name is its parent's subject (RFC 5280 §6.1.3);
//  3. the ECDSA P-256 signature over SHA-256(header || TD quote body) by the
//     attestation key in the quote;
//  4. the QE report's signature by the PCK leaf key;
//  5. QE report data = SHA-256(attestation key || QE auth data) || 32 zero
//     bytes, which ties the attestation key to the PCK key;
//  6. the quoting enclave is the simulator's: QE vendor ID, MRSIGNER,
//     ISVPRODID, DEBUG clear.
//
// Validity windows are not checked: the simulator's chain is valid from
// 2000 to 9999 and its trust is the caller's pin, not a date. A quote that
// passes proves only that whoever holds the simulator's seed made it; pass
// it to measure/policy with Evidence.Simulated set.
func Verify(raw []byte, root *x509.Certificate) (*pb.QuoteV4, error) {
	if root == nil {
		return nil, fmt.Errorf("%w: no simulator root pinned", ErrCertificate)
	}
	q, err := quote.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if n := len(q.GetExtraBytes()); n != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signed data", ErrMalformed, n)
	}
	sd := q.GetSignedData()
	qrc := sd.GetCertificationData().GetQeReportCertificationData()
	leafKey, err := verifyChain(qrc.GetPckCertificateChainData().GetPckCertChain(), root)
	if err != nil {
		return nil, err
	}
	ak, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, sd.GetEcdsaAttestationKey()...))
	if err != nil {
		return nil, fmt.Errorf("%w: attestation key is not a P-256 point: %w", ErrSignature, err)
	}
	if !verifyRS(ak, raw[:signedSizeOff], sd.GetSignature()) {
		return nil, fmt.Errorf("%w: signature over header and TD quote body does not verify with the attestation key", ErrSignature)
	}
	// Parse checked the layout, so the QE report sits at its fixed offset.
	if !verifyRS(leafKey, raw[qeReportOff:qeReportOff+qeReportSize], qrc.GetQeReportSignature()) {
		return nil, fmt.Errorf("%w: QE report signature does not verify with the PCK leaf key", ErrSignature)
	}
	h := sha256.New()
	h.Write(sd.GetEcdsaAttestationKey())
	h.Write(qrc.GetQeAuthData().GetData())
	want := append(h.Sum(nil), make([]byte, 32)...)
	r := qrc.GetQeReport()
	if got := r.GetReportData(); !bytes.Equal(got, want) {
		return nil, fmt.Errorf("%w: QE report data = %x, want SHA-256(attestation key || QE auth data) || zeros = %x", ErrSignature, got, want)
	}
	if got := q.GetHeader().GetQeVendorId(); !bytes.Equal(got, QEVendorID[:]) {
		return nil, fmt.Errorf("%w: QE vendor ID = %x, want the simulator's %x", ErrSignature, got, QEVendorID)
	}
	if got := r.GetMrSigner(); !bytes.Equal(got, QEMRSigner[:]) {
		return nil, fmt.Errorf("%w: QE report MRSIGNER = %x, want the simulated QE's %x", ErrSignature, got, QEMRSigner)
	}
	if got := r.GetIsvProdId(); got != QEProdID {
		return nil, fmt.Errorf("%w: QE report ISVPRODID = %d, want %d", ErrSignature, got, QEProdID)
	}
	if a := r.GetAttributes(); len(a) == 0 || a[0]&0x02 != 0 {
		return nil, fmt.Errorf("%w: QE report ATTRIBUTES = %x, want DEBUG (bit 1) clear", ErrSignature, a)
	}
	return q, nil
}

// verifyRS checks an r||s ECDSA signature over SHA-256(msg).
func verifyRS(k *ecdsa.PublicKey, msg, sig []byte) bool {
	if len(sig) != sigSize {
		return false
	}
	d := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(k, d[:], r, s)
}

// verifyChain checks certification data type 5 against the pinned root and
// returns the PCK leaf's key.
func verifyChain(chain []byte, root *x509.Certificate) (*ecdsa.PublicKey, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrCertificate, fmt.Sprintf(format, a...))
	}
	// A single NUL may end the chain, as Intel's QE writes it.
	rest := bytes.TrimSuffix(chain, []byte{0})
	var certs []*x509.Certificate
	for len(rest) > 0 {
		if len(certs) == 3 {
			return nil, bad("%d bytes after the third certificate", len(rest))
		}
		// pem.Decode skips text before a block; nothing but PEM may be here.
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, bad("certificate %d: not a PEM block", len(certs))
		}
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil || b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
			return nil, bad("certificate %d: not a PEM CERTIFICATE block", len(certs))
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, bad("certificate %d: %v", len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 3 {
		return nil, bad("%d certificates, want 3 (PCK leaf, platform CA, root)", len(certs))
	}
	leaf, ca := certs[0], certs[1]
	if !bytes.Equal(certs[2].Raw, root.Raw) {
		return nil, bad("root certificate with SHA-256 %x is not the pinned simulator root %x", sha256.Sum256(certs[2].Raw), sha256.Sum256(root.Raw))
	}
	if !bytes.Equal(ca.RawIssuer, root.RawSubject) || !bytes.Equal(leaf.RawIssuer, ca.RawSubject) {
		return nil, bad("issuer names do not chain (leaf issuer %q, CA %q issued by %q, root %q)", leaf.Issuer, ca.Subject, ca.Issuer, root.Subject)
	}
	if err := ca.CheckSignatureFrom(root); err != nil {
		return nil, bad("platform CA: %v", err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, bad("PCK leaf: %v", err)
	}
	if leaf.IsCA {
		return nil, bad("PCK leaf is a CA")
	}
	k, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, bad("PCK leaf key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	return k, nil
}
