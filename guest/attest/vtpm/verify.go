package vtpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// Errors of Verify. Malformed evidence (wrong kind, bad encodings, PCR
// values missing or not quoted) is attest.ErrEvidence.
var (
	// ErrAK: the attestation key is not a TPM-resident restricted signing
	// key with a usable scheme.
	ErrAK = errors.New("vtpm: attestation key not acceptable")
	// ErrSignature: the signature over the quote does not verify with the AK.
	ErrSignature = errors.New("vtpm: quote signature does not verify")
	// ErrNonce: the quote's extraData is not QualifyingData(reportData).
	ErrNonce = errors.New("vtpm: quote does not carry the expected qualifying data")
	// ErrPCRDigest: the PCR values in the evidence do not hash to the
	// quoted PCR digest.
	ErrPCRDigest = errors.New("vtpm: PCR values do not match the quoted digest")
	// ErrAKNotAllowed: the AK verified but is not one the caller trusts.
	ErrAKNotAllowed = errors.New("vtpm: attestation key not allowed")
)

// Size bounds checked before any decoding: TPMT_PUBLIC of an RSA-4096 key
// with a SHA-512 policy is under 600 bytes, TPMT_SIGNATURE of RSA-4096
// about 520.
const (
	maxPublicSize    = 2048
	maxSignatureSize = 1024
)

// QualifyingData is the TPM2_Quote qualifyingData bound to 64 bytes of
// report data: their SHA-256.
//
// Why not the 64 bytes themselves: qualifyingData is a TPM2B_DATA, whose
// buffer is sizeof(TPMT_HA), 2 plus the largest digest the TPM implements
// (TPM 2.0 Part 2 §10.4.3). swtpm/libtpms implements SHA-512 and takes 64
// bytes (TestQualifyingDataSizes), but a TPM whose largest bank is SHA-256
// or SHA-384 answers TPM_RC_SIZE. SHA-256 is mandatory on every TPM 2.0 (PC
// Client PTP), so 32 bytes fit everywhere, and the binding is as strong as
// SHA-256's collision resistance, which RA-TLS already relies on.
func QualifyingData(reportData [attest.ReportDataSize]byte) []byte {
	h := sha256.Sum256(reportData[:])
	return h[:]
}

// Verified is what Verify established.
type Verified struct {
	// PCRs are the quoted SHA-256 PCR values, by index.
	PCRs map[int][]byte
	// Selection lists the quoted PCRs in ascending order.
	Selection []int
	// AKName is the AK's TPM Name (TPM 2.0 Part 1, "Names"): nameAlg (2 bytes)
	// || H(TPMT_PUBLIC). It identifies the key; pin it.
	AKName []byte
	// AKPublic is the AK as a crypto key (*ecdsa.PublicKey or *rsa.PublicKey).
	AKPublic crypto.PublicKey
	// Hierarchy is the hierarchy (tpm2.TPMRHEndorsement, TPMRHOwner, ...)
	// the AK is a primary key of, read from the quote's qualified signer;
	// zero when the AK is not a primary key (its parent is another key).
	Hierarchy tpm2.TPMHandle
	// Attest is the decoded TPMS_ATTEST.
	Attest *Attest
}

// AKFingerprint is the AK name in hex, for configuration files and logs.
func (v *Verified) AKFingerprint() string { return hex.EncodeToString(v.AKName) }

// CheckAK returns ErrAKNotAllowed unless the AK's name is one of allowed.
// A vTPM's AK has no manufacturer certificate (see the package
// documentation), so this pin, or an equivalent policy, is what makes a
// verified quote mean anything.
func (v *Verified) CheckAK(allowed ...[]byte) error {
	for _, a := range allowed {
		if bytes.Equal(a, v.AKName) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not among the %d allowed keys", ErrAKNotAllowed, v.AKFingerprint(), len(allowed))
}

// Verify checks vTPM evidence for reportData: the AK is a restricted signing
// key, its signature over Quote verifies, Quote is a TPM-generated
// TPM_ST_ATTEST_QUOTE whose extraData is QualifyingData(reportData), it
// quotes only the SHA-256 bank, and the evidence's PCR values are exactly
// the quoted ones and hash, in selection order, to the quoted digest.
//
// Verify does not decide whether to trust the AK: see Verified.CheckAK.
func Verify(ev *attest.Evidence, reportData [attest.ReportDataSize]byte) (*Verified, error) {
	if ev == nil {
		return nil, fmt.Errorf("vtpm: %w: no evidence", attest.ErrEvidence)
	}
	if ev.Kind != attest.VTPM {
		return nil, fmt.Errorf("vtpm: %w: kind %q, want %q", attest.ErrEvidence, ev.Kind, attest.VTPM)
	}
	ak, err := parseAK(ev.AKPublic)
	if err != nil {
		return nil, err
	}
	if err := ak.verify(ev.Quote, ev.Signature); err != nil {
		return nil, err
	}
	// Only signed bytes are decoded from here on.
	a, err := ParseAttest(ev.Quote)
	if err != nil {
		return nil, err
	}
	if want := QualifyingData(reportData); !bytes.Equal(a.ExtraData, want) {
		return nil, fmt.Errorf("%w: extraData = %x, want SHA-256(report data) = %x", ErrNonce, a.ExtraData, want)
	}
	sel, err := quotedPCRs(a)
	if err != nil {
		return nil, err
	}
	pcrs, err := checkPCRs(ev.PCRs, sel, ak.hash, a.PCRDigest)
	if err != nil {
		return nil, err
	}
	return &Verified{
		PCRs:      pcrs,
		Selection: sel,
		AKName:    ak.name,
		AKPublic:  ak.pub,
		Hierarchy: ak.hierarchy(a.QualifiedSigner),
		Attest:    a,
	}, nil
}

// quotedPCRs returns the quote's selection, which must be one non-empty
// SHA-256 bank: the PCRs the provider reads and the bank measure/tpm
// predicts.
func quotedPCRs(a *Attest) ([]int, error) {
	if len(a.Selection) != 1 || a.Selection[0].Hash != tpm2.TPMAlgSHA256 || len(a.Selection[0].PCRs) == 0 {
		var banks []string
		for _, s := range a.Selection {
			banks = append(banks, fmt.Sprintf("%#04x:%v", uint16(s.Hash), s.PCRs))
		}
		return nil, fmt.Errorf("vtpm: %w: quote selects %v, want PCRs of the SHA-256 bank (%#04x) only", attest.ErrEvidence, banks, uint16(tpm2.TPMAlgSHA256))
	}
	return a.Selection[0].PCRs, nil
}

// checkPCRs checks that values holds exactly the selected PCRs and that
// they hash to digest. TPM 2.0 Part 3 §18.4 (TPM2_Quote): pcrDigest is the
// hash, with the signing scheme's hash, of the selected PCR values
// concatenated in selection order (banks in list order, PCRs ascending).
func checkPCRs(values map[int][]byte, sel []int, h crypto.Hash, digest []byte) (map[int][]byte, error) {
	for i := range values {
		if !slices.Contains(sel, i) {
			return nil, fmt.Errorf("vtpm: %w: PCR %d in the evidence is not quoted (quoted: %v)", attest.ErrEvidence, i, sel)
		}
	}
	d := h.New()
	out := make(map[int][]byte, len(sel))
	for _, i := range sel {
		v, ok := values[i]
		if !ok {
			return nil, fmt.Errorf("vtpm: %w: quoted PCR %d has no value in the evidence", attest.ErrEvidence, i)
		}
		if len(v) != sha256.Size {
			return nil, fmt.Errorf("vtpm: %w: PCR %d is %d bytes, want %d (SHA-256)", attest.ErrEvidence, i, len(v), sha256.Size)
		}
		d.Write(v)
		out[i] = bytes.Clone(v)
	}
	if got := d.Sum(nil); !bytes.Equal(got, digest) {
		return nil, fmt.Errorf("%w: PCRs %v hash to %x, the quote says %x", ErrPCRDigest, sel, got, digest)
	}
	return out, nil
}

// akKey is a parsed attestation key.
type akKey struct {
	pub     crypto.PublicKey
	scheme  tpm2.TPMAlgID // TPM_ALG_ECDSA, TPM_ALG_RSASSA or TPM_ALG_RSAPSS
	hashAlg tpm2.TPMAlgID
	hash    crypto.Hash
	nameAlg crypto.Hash
	name    []byte
}

// unmarshal is tpm2.Unmarshal for bytes from an untrusted peer: a panic in
// the reflection decoder becomes an error, and the bytes must be the one
// encoding go-tpm writes back (no trailing bytes), so that what is hashed
// or signed is what was decoded.
func unmarshal[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte) (v *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("go-tpm decoder panicked: %v", r)
		}
	}()
	v, err = tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, err
	}
	if back := tpm2.Marshal(*v); !bytes.Equal(back, b) {
		return nil, fmt.Errorf("%d bytes, of which the structure is %d", len(b), len(back))
	}
	return v, nil
}

// parseAK decodes a TPMT_PUBLIC (TPM 2.0 Part 2 §12.2.4) and checks it is
// an attestation key: a restricted signing key (Part 1, "restricted"
// attribute: it signs only digests the TPM computed over structures it
// generated, which begin with TPM_GENERATED_VALUE), fixedTPM and
// fixedParent (it cannot leave this TPM), sensitiveDataOrigin (the TPM
// generated the private key). Nobody outside the TPM vouches for these
// bits here: see the package documentation.
func parseAK(b []byte) (*akKey, error) {
	if len(b) == 0 || len(b) > maxPublicSize {
		return nil, fmt.Errorf("%w: %w: AK public area is %d bytes", ErrAK, attest.ErrEvidence, len(b))
	}
	pub, err := unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: AK public area (TPMT_PUBLIC): %w", ErrAK, attest.ErrEvidence, err)
	}
	attr := pub.ObjectAttributes
	for _, c := range []struct {
		ok   bool
		what string
	}{
		{attr.Restricted, "restricted is clear"},
		{attr.SignEncrypt, "sign is clear"},
		{!attr.Decrypt, "decrypt is set"},
		{attr.FixedTPM, "fixedTPM is clear"},
		{attr.FixedParent, "fixedParent is clear"},
		{attr.SensitiveDataOrigin, "sensitiveDataOrigin is clear"},
	} {
		if !c.ok {
			return nil, fmt.Errorf("%w: not a TPM-resident restricted signing key: %s", ErrAK, c.what)
		}
	}
	k := &akKey{}
	if k.nameAlg, err = pub.NameAlg.Hash(); err != nil || pub.NameAlg == tpm2.TPMAlgSHA1 {
		return nil, fmt.Errorf("%w: name algorithm %#04x, want SHA-256, SHA-384 or SHA-512", ErrAK, uint16(pub.NameAlg))
	}
	// Name = nameAlg || H_nameAlg(TPMT_PUBLIC) (Part 1, "Names"); b is the
	// canonical encoding, checked above.
	k.name = binary.BigEndian.AppendUint16(nil, uint16(pub.NameAlg))
	k.name = append(k.name, hashOf(k.nameAlg, b)...)

	switch pub.Type {
	case tpm2.TPMAlgECC:
		err = k.ecc(pub)
	case tpm2.TPMAlgRSA:
		err = k.rsa(pub)
	default:
		err = fmt.Errorf("key type %#04x, want ECC or RSA", uint16(pub.Type))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAK, err)
	}
	return k, nil
}

func (k *akKey) ecc(pub *tpm2.TPMTPublic) error {
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return err
	}
	// A restricted signing key has a fixed scheme (TPMS_ECC_PARMS, Part 2 §12.2.3.6): the
	// TPM signs only with it, so only it can verify.
	if parms.Scheme.Scheme != tpm2.TPMAlgECDSA {
		return fmt.Errorf("ECC scheme %#04x, want ECDSA", uint16(parms.Scheme.Scheme))
	}
	d, err := parms.Scheme.Details.ECDSA()
	if err != nil {
		return err
	}
	if err := k.setHash(d.HashAlg); err != nil {
		return err
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return err
	}
	key, err := tpm2.ECDSAPub(parms, point)
	if err != nil {
		return err
	}
	// ECDSAPub does not check the point; ECDH() does.
	if _, err := key.ECDH(); err != nil {
		return fmt.Errorf("ECC point: %w", err)
	}
	k.pub, k.scheme = key, tpm2.TPMAlgECDSA
	return nil
}

func (k *akKey) rsa(pub *tpm2.TPMTPublic) error {
	parms, err := pub.Parameters.RSADetail()
	if err != nil {
		return err
	}
	var d *tpm2.TPMSSchemeHash
	switch parms.Scheme.Scheme {
	case tpm2.TPMAlgRSASSA:
		var s *tpm2.TPMSSigSchemeRSASSA
		s, err = parms.Scheme.Details.RSASSA()
		d = (*tpm2.TPMSSchemeHash)(s)
	case tpm2.TPMAlgRSAPSS:
		var s *tpm2.TPMSSigSchemeRSAPSS
		s, err = parms.Scheme.Details.RSAPSS()
		d = (*tpm2.TPMSSchemeHash)(s)
	default:
		return fmt.Errorf("RSA scheme %#04x, want RSASSA or RSAPSS", uint16(parms.Scheme.Scheme))
	}
	if err != nil {
		return err
	}
	if err := k.setHash(d.HashAlg); err != nil {
		return err
	}
	n, err := pub.Unique.RSA()
	if err != nil {
		return err
	}
	key, err := tpm2.RSAPub(parms, n)
	if err != nil {
		return err
	}
	if bits := key.N.BitLen(); bits < 2048 || bits != int(parms.KeyBits) {
		return fmt.Errorf("RSA modulus of %d bits, keyBits %d; want at least 2048 and equal", bits, parms.KeyBits)
	}
	if key.E < 3 || key.E%2 == 0 {
		return fmt.Errorf("RSA exponent %d", key.E)
	}
	k.pub, k.scheme = key, parms.Scheme.Scheme
	return nil
}

func (k *akKey) setHash(alg tpm2.TPMAlgID) error {
	h, err := alg.Hash()
	if err != nil || alg == tpm2.TPMAlgSHA1 {
		return fmt.Errorf("scheme hash %#04x, want SHA-256, SHA-384 or SHA-512", uint16(alg))
	}
	k.hash, k.hashAlg = h, alg
	return nil
}

// verify checks sig, a TPMT_SIGNATURE (Part 2 §11.3.4), over msg.
func (k *akKey) verify(msg, sig []byte) error {
	if len(msg) == 0 || len(msg) > maxAttestSize {
		return fmt.Errorf("vtpm: %w: quote is %d bytes", attest.ErrEvidence, len(msg))
	}
	if len(sig) == 0 || len(sig) > maxSignatureSize {
		return fmt.Errorf("%w: %w: signature is %d bytes", ErrSignature, attest.ErrEvidence, len(sig))
	}
	s, err := unmarshal[tpm2.TPMTSignature](sig)
	if err != nil {
		return fmt.Errorf("%w: %w: TPMT_SIGNATURE: %w", ErrSignature, attest.ErrEvidence, err)
	}
	if s.SigAlg != k.scheme {
		return fmt.Errorf("%w: signature scheme %#04x, the AK's is %#04x", ErrSignature, uint16(s.SigAlg), uint16(k.scheme))
	}
	digest := hashOf(k.hash, msg)
	var ok bool
	switch s.SigAlg {
	case tpm2.TPMAlgECDSA:
		e, err := s.Signature.ECDSA()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSignature, err)
		}
		if e.Hash != k.hashAlg {
			return fmt.Errorf("%w: signature hash %#04x, the AK's is %#04x", ErrSignature, uint16(e.Hash), uint16(k.hashAlg))
		}
		// r and s (TPMS_SIGNATURE_ECC, Part 2 §11.3.2) are below the
		// curve order; longer encodings with leading zeros would verify
		// the same and only make the evidence malleable.
		pub := k.pub.(*ecdsa.PublicKey)
		if n := (pub.Curve.Params().N.BitLen() + 7) / 8; len(e.SignatureR.Buffer) > n || len(e.SignatureS.Buffer) > n {
			return fmt.Errorf("%w: ECDSA r or s longer than %d bytes", ErrSignature, n)
		}
		r := new(big.Int).SetBytes(e.SignatureR.Buffer)
		ss := new(big.Int).SetBytes(e.SignatureS.Buffer)
		ok = ecdsa.Verify(pub, digest, r, ss)
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		var r *tpm2.TPMSSignatureRSA
		if s.SigAlg == tpm2.TPMAlgRSASSA {
			r, err = s.Signature.RSASSA()
		} else {
			r, err = s.Signature.RSAPSS()
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSignature, err)
		}
		if r.Hash != k.hashAlg {
			return fmt.Errorf("%w: signature hash %#04x, the AK's is %#04x", ErrSignature, uint16(r.Hash), uint16(k.hashAlg))
		}
		pub := k.pub.(*rsa.PublicKey)
		if s.SigAlg == tpm2.TPMAlgRSASSA {
			ok = rsa.VerifyPKCS1v15(pub, k.hash, digest, r.Sig.Buffer) == nil
		} else {
			// TPMs use a salt as long as the digest or the longest that
			// fits; Auto accepts both.
			ok = rsa.VerifyPSS(pub, k.hash, digest, r.Sig.Buffer, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
		}
	}
	if !ok {
		return fmt.Errorf("%w: by AK %x", ErrSignature, k.name)
	}
	return nil
}

// hierarchy finds the hierarchy the AK is a primary key of: the Qualified
// Name of an object is H_nameAlg(QN of its parent || its Name), and a
// hierarchy's QN is its handle (Part 1, "Qualified Name"), so a primary key's QN is
// nameAlg || H(handle || Name).
func (k *akKey) hierarchy(qn []byte) tpm2.TPMHandle {
	for _, h := range []tpm2.TPMHandle{tpm2.TPMRHEndorsement, tpm2.TPMRHOwner, tpm2.TPMRHPlatform, tpm2.TPMRHNull} {
		in := binary.BigEndian.AppendUint32(nil, uint32(h))
		in = append(in, k.name...)
		want := append(slices.Clone(k.name[:2]), hashOf(k.nameAlg, in)...)
		if bytes.Equal(want, qn) {
			return h
		}
	}
	return 0
}

func hashOf(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}
