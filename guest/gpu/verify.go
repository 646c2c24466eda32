package gpu

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Evidence is what one GPU hands over for one nonce.
type Evidence struct {
	// Report is the attestation report (AttestationReport.Report).
	Report []byte
	// CertChain is the PEM attestation certificate chain
	// (Certificates.AttestationCertChain).
	CertChain []byte
}

// Expect is what the evidence must match.
type Expect struct {
	// Nonce is the nonce the verifier chose for this report.
	Nonce [NonceSize]byte
	// Roots are the trust anchors; nil means the pinned NVIDIA root.
	Roots *x509.CertPool
	// Now is the certificate validity time; required.
	Now time.Time
	// DriverVersion and VBIOSVersion are NVML's view (nvmlSystemGetDriverVersion,
	// nvmlDeviceGetVbiosVersion); the signed report must name the same. Empty
	// skips the comparison, for a verifier that only has the evidence.
	DriverVersion string
	VBIOSVersion  string
}

// Verified is evidence that passed Verify.
type Verified struct {
	Report *Report
	Opaque Opaque
	// Chain is the verified attestation chain, leaf first.
	Chain []*x509.Certificate
	// FWID is the GSP firmware ID both the report and the leaf certificate
	// carry; nil for reports without one.
	FWID []byte
	// DriverVersion and VBIOSVersion as the signed report states them.
	DriverVersion string
	VBIOSVersion  string
}

// Verify checks one GPU's evidence against want: certificate chain, nonce,
// signature, and then, reading only signed bytes, the FWID binding and the
// versions (the checks of NVIDIA's local verifier, which compares the
// versions before the signature). It is pure: the caller supplies the
// nonce, roots and time.
func Verify(ev Evidence, want Expect) (*Verified, error) {
	rep, err := ParseReport(ev.Report)
	if err != nil {
		return nil, err
	}
	chain, err := ParseCertChain(ev.CertChain)
	if err != nil {
		return nil, err
	}
	if err := VerifyCertChain(chain, want.Roots, want.Now); err != nil {
		return nil, err
	}
	if rep.Request.Nonce != want.Nonce {
		return nil, fmt.Errorf("%w: report answers nonce %x, want %x", ErrNonce, rep.Request.Nonce, want.Nonce)
	}
	leafKey, ok := chain[0].PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: leaf key is %T, want ECDSA P-384", ErrSignature, chain[0].PublicKey)
	}
	if err := rep.VerifySignature(leafKey); err != nil {
		return nil, err
	}
	// Only signed bytes are interpreted from here on.
	op, err := ParseOpaque(rep.Response.Opaque)
	if err != nil {
		return nil, err
	}
	v := &Verified{Report: rep, Opaque: op, Chain: chain}
	if err := v.bindFWID(); err != nil {
		return nil, err
	}
	if v.DriverVersion, err = op.DriverVersion(); err != nil {
		return nil, err
	}
	if v.VBIOSVersion, err = op.VBIOSVersion(); err != nil {
		return nil, err
	}
	if want.DriverVersion != "" && v.DriverVersion != want.DriverVersion {
		return nil, fmt.Errorf("%w: report names driver %q, NVML %q", ErrVersionMismatch, v.DriverVersion, want.DriverVersion)
	}
	if want.VBIOSVersion != "" && !strings.EqualFold(v.VBIOSVersion, want.VBIOSVersion) {
		return nil, fmt.Errorf("%w: report names VBIOS %s, NVML %s", ErrVersionMismatch, v.VBIOSVersion, want.VBIOSVersion)
	}
	return v, nil
}

// bindFWID ties the report to the chain beyond the signature: the firmware
// ID the GPU put in its signed opaque data must be the one in the leaf
// certificate, and that certificate's device ID must be its issuer's key
// (NVIDIA local verifier: verify_gpu_certificate_chain compares the FWIDs
// when the report has one).
func (v *Verified) bindFWID() error {
	reportFWID, inReport, err := v.Opaque.FWID()
	if err != nil {
		return err
	}
	certFWID, deviceID, inCert, err := CertFWID(v.Chain[0])
	if err != nil {
		return err
	}
	if inCert && !bytes.Equal(deviceID, v.Chain[1].RawSubjectPublicKeyInfo) {
		return fmt.Errorf("%w: leaf FWID extension names a device key other than its issuer's (%q)", ErrChain, v.Chain[1].Subject)
	}
	if !inReport {
		return nil
	}
	if !inCert {
		return fmt.Errorf("%w: report carries FWID %x, leaf certificate none", ErrChain, reportFWID)
	}
	if !bytes.Equal(reportFWID, certFWID) {
		return fmt.Errorf("%w: report FWID %x, leaf certificate FWID %x", ErrChain, reportFWID, certFWID)
	}
	v.FWID = reportFWID
	return nil
}
