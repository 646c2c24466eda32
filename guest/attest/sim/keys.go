package sim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// SeedSize is the size of the secret every simulator key derives from.
const SeedSize = 32

// Names of the simulated PCK hierarchy. The common names are those of
// Intel's PCK hierarchy (Intel SGX PCK Certificate and CRL Profile
// Specification), which DCAP verifiers such as go-tdx-guest require by name;
// the organisation says what these certificates really are.
const (
	cnRoot       = "Intel SGX Root CA"
	cnPlatformCA = "Intel SGX PCK Platform CA"
	cnPCK        = "Intel SGX PCK Certificate"
	// Organization of every simulated certificate.
	Organization = "Cocoon TDX quote SIMULATOR (TEST KEY, NOT INTEL)"
)

// The chain never expires: a simulator's trust anchor is whatever the test
// pins, and a fixed window keeps chains reproducible from the seed alone.
// 99991231235959Z is RFC 5280 §4.1.2.5's "no well-defined expiration date".
var (
	chainNotBefore = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)
	chainNotAfter  = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)
)

// Fixed platform values of the simulated PCK certificate and QE report.
var (
	// FMSPC "cocoon" in ASCII: no real platform has it, so no Intel TCB
	// info will ever match it.
	simFMSPC  = [6]byte{'c', 'o', 'c', 'o', 'o', 'n'}
	simPCEID  = [2]byte{0, 0}
	simPCESVN = uint16(13)
	simCPUSVN = [16]byte{4, 4, 0x0d, 0x0f, 3, 0xff, 0, 3}
)

// keys is everything the simulator signs with, derived from one seed.
type keys struct {
	ak        *ecdsa.PrivateKey // attestation key: signs header || body
	pck       *ecdsa.PrivateKey // "PCK" key: signs the QE report
	root      *x509.Certificate
	chainPEM  []byte // PCK leaf, platform CA, root, PEM
	qeAuth    []byte // QE authentication data
	qeVendor  [qeVendorIDSize]byte
	userData  [headerUserDataSize]byte
	akPublic  [akSize]byte
	qeReport  []byte // the signed 384-byte QE report
	qeReportS [sigSize]byte
}

// derive returns n bytes for one purpose from the seed (HKDF-SHA-256, RFC
// 5869, with the purpose in "info"): each key and serial number is
// independent of the others, and all are reproducible from the seed.
func derive(seed []byte, label string, n int) []byte {
	b, err := hkdf.Key(sha256.New, seed, nil, "cocoon-sim/v1 "+label, n)
	if err != nil {
		panic(err) // only for n > 255*32
	}
	return b
}

// deriveKey returns a P-256 key from the seed: the first derived scalar in
// [1, n-1] (a 32-byte value is out of range with probability about 2^-32).
func deriveKey(seed []byte, label string) (*ecdsa.PrivateKey, error) {
	for i := 0; i < 16; i++ {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), derive(seed, fmt.Sprintf("%s key %d", label, i), 32))
		if err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("sim: no valid P-256 scalar derived for %s", label)
}

// serial is a positive serial number of at most 20 octets (RFC 5280
// §4.1.2.2).
func serial(seed []byte, label string) *big.Int {
	b := derive(seed, label+" serial", 16)
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b)
}

// skid is the subject key identifier of RFC 5280 §4.2.1.2 method (1): the
// SHA-1 of the subjectPublicKey BIT STRING (for EC keys, the uncompressed
// point).
func skid(k *ecdsa.PublicKey) ([]byte, error) {
	p, err := k.Bytes()
	if err != nil {
		return nil, err
	}
	h := sha1.Sum(p)
	return h[:], nil
}

func name(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{Organization}}
}

func newKeys(seed []byte) (*keys, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("sim: seed is %d bytes, want %d", len(seed), SeedSize)
	}
	k := &keys{qeAuth: derive(seed, "qe auth data", 32)}
	var err error
	if k.ak, err = deriveKey(seed, "attestation"); err != nil {
		return nil, err
	}
	if k.pck, err = deriveKey(seed, "pck"); err != nil {
		return nil, err
	}
	rootKey, err := deriveKey(seed, "root ca")
	if err != nil {
		return nil, err
	}
	caKey, err := deriveKey(seed, "platform ca")
	if err != nil {
		return nil, err
	}
	copy(k.qeVendor[:], QEVendorID[:])
	// Header user data: Intel's QE puts a platform QE ID in the first 16
	// bytes; ours is derived from the seed.
	copy(k.userData[:], derive(seed, "qe id", 16))
	pub, err := k.ak.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	copy(k.akPublic[:], pub[1:]) // drop the 0x04 of the uncompressed point

	if err := k.makeChain(seed, rootKey, caKey); err != nil {
		return nil, err
	}
	return k, k.makeQEReport()
}

// makeChain issues root CA -> platform CA -> PCK leaf, with the extensions
// and key usages of Intel's PCK certificate profile: CAs with certSign and
// cRLSign, the leaf with digitalSignature and nonRepudiation, and exactly
// the six extensions DCAP verifiers count on the leaf (authority and subject
// key identifiers, CRL distribution points, key usage, basic constraints,
// SGX extensions). Signatures are RFC 6979 deterministic (nil rand), so the
// chain is a function of the seed.
func (k *keys) makeChain(seed []byte, rootKey, caKey *ecdsa.PrivateKey) error {
	rootSKID, err := skid(&rootKey.PublicKey)
	if err != nil {
		return err
	}
	rootT := &x509.Certificate{
		SerialNumber: serial(seed, "root ca"), Subject: name(cnRoot),
		NotBefore: chainNotBefore, NotAfter: chainNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
		SubjectKeyId:       rootSKID,
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	rootDER, err := x509.CreateCertificate(nil, rootT, rootT, &rootKey.PublicKey, rootKey)
	if err != nil {
		return fmt.Errorf("sim: root certificate: %w", err)
	}
	if k.root, err = x509.ParseCertificate(rootDER); err != nil {
		return err
	}
	caSKID, err := skid(&caKey.PublicKey)
	if err != nil {
		return err
	}
	caT := &x509.Certificate{
		SerialNumber: serial(seed, "platform ca"), Subject: name(cnPlatformCA),
		NotBefore: chainNotBefore, NotAfter: chainNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: 0, MaxPathLenZero: true,
		SubjectKeyId:       caSKID,
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	caDER, err := x509.CreateCertificate(nil, caT, k.root, &caKey.PublicKey, rootKey)
	if err != nil {
		return fmt.Errorf("sim: platform CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	pckSKID, err := skid(&k.pck.PublicKey)
	if err != nil {
		return err
	}
	sgx, err := sgxExtension(derive(seed, "ppid", 16), derive(seed, "platform instance id", 16))
	if err != nil {
		return err
	}
	leafT := &x509.Certificate{
		SerialNumber: serial(seed, "pck"), Subject: name(cnPCK),
		NotBefore: chainNotBefore, NotAfter: chainNotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true, IsCA: false,
		SubjectKeyId: pckSKID,
		// Where Intel's PCK certificates point to PCS; .invalid (RFC 2606)
		// never resolves.
		CRLDistributionPoints: []string{"https://pcs.simulator.invalid/sgx/certification/v4/pckcrl?ca=platform&encoding=der"},
		ExtraExtensions:       []pkix.Extension{sgx},
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	leafDER, err := x509.CreateCertificate(nil, leafT, ca, &k.pck.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("sim: PCK certificate: %w", err)
	}
	for _, der := range [][]byte{leafDER, caDER, rootDER} {
		k.chainPEM = append(k.chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return nil
}

// OIDs of the SGX extensions (Intel SGX PCK Certificate and CRL Profile
// Specification, "SGX Extensions").
var (
	oidSGX                = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID               = sub(oidSGX, 1)
	oidTCB                = sub(oidSGX, 2)
	oidPCEID              = sub(oidSGX, 3)
	oidFMSPC              = sub(oidSGX, 4)
	oidSGXType            = sub(oidSGX, 5)
	oidPlatformInstanceID = sub(oidSGX, 6)
	oidConfiguration      = sub(oidSGX, 7)
)

// oidValue is one SGX extension entry: SEQUENCE { OBJECT IDENTIFIER, value }.
type oidValue struct {
	ID    asn1.ObjectIdentifier
	Value any
}

func sub(parent asn1.ObjectIdentifier, n int) asn1.ObjectIdentifier {
	return append(parent[:len(parent):len(parent)], n)
}

// sgxExtension builds the SGX extensions of a platform-CA-issued PCK
// certificate: PPID, TCB (16 SGX TCB component SVNs, PCESVN, CPUSVN),
// PCE-ID, FMSPC, SGX type (1: scalable), platform instance ID and
// configuration (dynamic platform, cached keys, SMT enabled), in that order.
func sgxExtension(ppid, instanceID []byte) (pkix.Extension, error) {
	var tcb []oidValue
	for i, svn := range simCPUSVN {
		tcb = append(tcb, oidValue{sub(oidTCB, i+1), int(svn)})
	}
	tcb = append(tcb, oidValue{sub(oidTCB, 17), int(simPCESVN)}, oidValue{sub(oidTCB, 18), simCPUSVN[:]})
	v, err := asn1.Marshal([]oidValue{
		{oidPPID, ppid},
		{oidTCB, tcb},
		{oidPCEID, simPCEID[:]},
		{oidFMSPC, simFMSPC[:]},
		{oidSGXType, asn1.Enumerated(1)},
		{oidPlatformInstanceID, instanceID},
		{oidConfiguration, []oidValue{
			{sub(oidConfiguration, 1), true},
			{sub(oidConfiguration, 2), false},
			{sub(oidConfiguration, 3), true},
		}},
	})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("sim: SGX extensions: %w", err)
	}
	return pkix.Extension{Id: oidSGX, Value: v}, nil
}

// makeQEReport makes and signs the quoting enclave's report. Its report
// data binds the attestation key: SHA-256(attestation key || QE
// authentication data) || 32 zero bytes ("QE Report Certification Data"),
// which is what makes the PCK key vouch for the attestation key.
func (k *keys) makeQEReport() error {
	r := qeReport{
		CPUSVN:    simCPUSVN,
		MREnclave: QEMREnclave,
		MRSigner:  QEMRSigner,
		ISVProdID: QEProdID,
		ISVSVN:    4,
	}
	// ATTRIBUTES: INIT | MODE64BIT | PROVISIONKEY, DEBUG clear; XFRM x87|SSE|AVX|... as Intel's QE.
	r.Attributes[0] = 0x15
	r.Attributes[8] = 0xe7
	h := sha256.New()
	h.Write(k.akPublic[:])
	h.Write(k.qeAuth)
	copy(r.ReportData[:32], h.Sum(nil))
	k.qeReport = r.marshal()
	sig, err := sign(k.pck, k.qeReport)
	if err != nil {
		return err
	}
	k.qeReportS = sig
	return nil
}

// sign returns the ECDSA P-256 signature of SHA-256(msg) as r||s, 32 bytes
// each, big-endian: the form in the quote. A nil rand makes it RFC 6979
// deterministic.
func sign(k *ecdsa.PrivateKey, msg []byte) ([sigSize]byte, error) {
	var out [sigSize]byte
	d := sha256.Sum256(msg)
	der, err := k.Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		return out, fmt.Errorf("sim: signing: %w", err)
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		return out, fmt.Errorf("sim: signing: ECDSA signature does not decode: %v", err)
	}
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}
