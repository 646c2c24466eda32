package gputest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// SyntheticGPU makes SYNTHETIC evidence: a three-certificate P-384 chain
// under a run-time test CA and reports signed by its leaf. Fields may be
// changed before calling Evidence to produce specific (also broken)
// evidence.
type SyntheticGPU struct {
	// Roots holds only the synthetic CA.
	Roots *x509.CertPool
	// ChainPEM is leaf, intermediate, root.
	ChainPEM []byte
	Chain    []*x509.Certificate
	// Driver and VBIOS go into the opaque data; VBIOS as NVML prints it.
	Driver string
	VBIOS  string
	// FWID goes into the opaque data (nil: none) and is in the leaf.
	FWID []byte
	// Blocks are the measurement blocks.
	Blocks []gpu.MeasurementBlock
	// Mutate, if set, edits the report before it is signed.
	Mutate func(*gpu.Report)

	key      *ecdsa.PrivateKey
	interKey *ecdsa.PrivateKey
	rand     io.Reader
	now      time.Time
}

// NewSynthetic makes a synthetic GPU whose certificates are valid from an
// hour before now for a year. Its FWID and measurement digests are
// SHA-384 of fixed labels, one block (index 9) is zero.
func NewSynthetic(rand io.Reader, now time.Time) (*SyntheticGPU, error) {
	fwid := sha512.Sum384([]byte("SYNTHETIC gputest GSP firmware"))
	s := &SyntheticGPU{Driver: "550.90.07", VBIOS: "96.00.9f.00.01", FWID: fwid[:], rand: rand, now: now}
	for i := 1; i <= 12; i++ {
		d := sha512.Sum384(fmt.Appendf(nil, "SYNTHETIC gputest measurement %d", i))
		if i == 9 {
			d = [gpu.DigestSize]byte{}
		}
		s.Blocks = append(s.Blocks, gpu.MeasurementBlock{Index: byte(i), ValueType: 1, Value: d[:]})
	}
	if err := s.makeChain(now); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *SyntheticGPU) makeChain(now time.Time) error {
	keys := make([]*ecdsa.PrivateKey, 3) // root, intermediate, leaf
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P384(), s.rand)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	names := []string{"SYNTHETIC gputest Device Identity CA (not NVIDIA)", "SYNTHETIC gputest GSP BROM", "SYNTHETIC gputest GSP FMC LF"}
	var parent *x509.Certificate
	var certs []*x509.Certificate
	for i, k := range keys {
		serial, err := randSerial(s.rand)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:       serial,
			Subject:            pkix.Name{CommonName: names[i], Organization: []string{"cocoon gputest"}},
			NotBefore:          now.Add(-time.Hour),
			NotAfter:           now.Add(365 * 24 * time.Hour),
			SignatureAlgorithm: x509.ECDSAWithSHA384,
		}
		signer := k
		if i < 2 {
			tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
			tmpl.KeyUsage = x509.KeyUsageCertSign
		} else {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			ext, err := FWIDExtension(1, parent.RawSubjectPublicKeyInfo, sha384OID, s.FWID)
			if err != nil {
				return err
			}
			tmpl.ExtraExtensions = []pkix.Extension{ext}
		}
		issuer := tmpl
		if parent != nil {
			issuer, signer = parent, keys[i-1]
		}
		der, err := x509.CreateCertificate(s.rand, tmpl, issuer, &k.PublicKey, signer)
		if err != nil {
			return err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		certs = append(certs, c)
		parent = c
	}
	s.key, s.interKey = keys[2], keys[1]
	s.setChain(certs[2], certs[1], certs[0])
	s.Roots = x509.NewCertPool()
	s.Roots.AddCert(certs[0])
	return nil
}

func (s *SyntheticGPU) setChain(certs ...*x509.Certificate) {
	s.Chain = certs
	s.ChainPEM = nil
	for _, c := range certs {
		s.ChainPEM = append(s.ChainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
}

// ReissueLeaf replaces the leaf certificate by one with the same key whose
// 2.23.133.5.4.1 extension is ext (nil: none), for tests of malformed or
// mismatched FWID extensions. FWIDExtension builds a well-formed one.
func (s *SyntheticGPU) ReissueLeaf(ext *pkix.Extension) error {
	serial, err := randSerial(s.rand)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            s.Chain[0].Subject,
		NotBefore:          s.now.Add(-time.Hour),
		NotAfter:           s.now.Add(365 * 24 * time.Hour),
		SignatureAlgorithm: x509.ECDSAWithSHA384,
		KeyUsage:           x509.KeyUsageDigitalSignature,
	}
	if ext != nil {
		tmpl.ExtraExtensions = []pkix.Extension{*ext}
	}
	der, err := x509.CreateCertificate(s.rand, tmpl, s.Chain[1], &s.key.PublicKey, s.interKey)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	s.setChain(leaf, s.Chain[1], s.Chain[2])
	return nil
}

var sha384OID = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}

// FWIDExtension builds the 2.23.133.5.4.1 extension the way NVIDIA's
// leaves carry it (see gpu.CertFWID): version, the issuer's
// SubjectPublicKeyInfo (DER) and the FWID with its hash algorithm.
func FWIDExtension(version int, deviceID []byte, hashAlg asn1.ObjectIdentifier, fwid []byte) (pkix.Extension, error) {
	v := struct {
		Version  int
		DeviceID asn1.RawValue
		FWID     struct {
			HashAlg asn1.ObjectIdentifier
			Digest  []byte
		}
	}{Version: version, DeviceID: asn1.RawValue{FullBytes: deviceID}}
	v.FWID.HashAlg = hashAlg
	v.FWID.Digest = fwid
	b, err := asn1.Marshal(v)
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 23, 133, 5, 4, 1}, Value: b}, err
}

func randSerial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	b[0] |= 0x01
	return new(big.Int).SetBytes(b), nil
}

// vbiosBytes is the inverse of gpu.Opaque.VBIOSVersion.
func vbiosBytes(v string) ([]byte, error) {
	var b [5]byte
	if _, err := fmt.Sscanf(v, "%02x.%02x.%02x.%02x.%02x", &b[0], &b[1], &b[2], &b[3], &b[4]); err != nil {
		return nil, fmt.Errorf("gputest: VBIOS version %q: %w", v, err)
	}
	return []byte{b[3], b[2], b[1], b[0], b[4], 0, 0, 0}, nil
}

// Report builds and signs a report for nonce.
func (s *SyntheticGPU) Report(nonce [gpu.NonceSize]byte) ([]byte, error) {
	vb, err := vbiosBytes(s.VBIOS)
	if err != nil {
		return nil, err
	}
	op := gpu.Opaque{
		{Type: gpu.OpaqueDriverVersion, Value: append([]byte(s.Driver), 0)},
		{Type: gpu.OpaqueVBIOSVersion, Value: vb},
	}
	if s.FWID != nil {
		op = append(op, gpu.OpaqueField{Type: gpu.OpaqueFWID, Value: s.FWID})
	}
	rep := &gpu.Report{
		Request: gpu.MeasurementRequest{Version: 0x11, Attributes: 0x01, Operation: 0xff, Nonce: nonce},
		Response: gpu.MeasurementResponse{
			Version:   0x11,
			Blocks:    s.Blocks,
			Opaque:    op.Marshal(),
			Signature: make([]byte, gpu.SignatureSize),
		},
	}
	if _, err := io.ReadFull(s.rand, rep.Response.Nonce[:]); err != nil {
		return nil, err
	}
	if s.Mutate != nil {
		s.Mutate(rep)
	}
	data, err := rep.SignedData()
	if err != nil {
		return nil, err
	}
	digest := sha512.Sum384(data)
	r, sv, err := ecdsa.Sign(s.rand, s.key, digest[:])
	if err != nil {
		return nil, err
	}
	r.FillBytes(rep.Response.Signature[:gpu.SignatureSize/2])
	sv.FillBytes(rep.Response.Signature[gpu.SignatureSize/2:])
	return rep.Marshal()
}

// Device is a fake device answering with this synthetic GPU's evidence.
func (s *SyntheticGPU) Device(info gpu.DeviceInfo) *Device {
	return &Device{
		Info:  info,
		VBIOS: s.VBIOS,
		Attest: func(nonce [gpu.NonceSize]byte) (gpu.AttestationReport, error) {
			r, err := s.Report(nonce)
			return gpu.AttestationReport{Report: r}, err
		},
		Certs: gpu.Certificates{AttestationCertChain: s.ChainPEM},
	}
}
