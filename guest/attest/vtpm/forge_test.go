package vtpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// forgery builds vTPM evidence with a key held in software, so each check
// of Verify can be reached with a valid signature over a structure no TPM
// would sign. It is also the reason Verified.CheckAK exists: nothing in the
// evidence itself tells a software key from a TPM's.
type forgery struct {
	key     crypto.Signer
	pub     tpm2.TPMTPublic
	sigAlg  tpm2.TPMAlgID // TPMT_SIGNATURE.sigAlg
	sigHash tpm2.TPMAlgID // hash in the signature and the one signed with
	attest  tpm2.TPMSAttest
	quote   *tpm2.TPMSQuoteInfo
	pcrs    map[int][]byte
	trailer []byte // appended to the quote before signing
	rawType uint16 // TPMS_ATTEST.type written over the quote's, when not 0
}

var (
	eccKey     = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	eccKeyP384 = must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	rsaKey     = must(rsa.GenerateKey(rand.Reader, 2048))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newForgery is a forgery that verifies: an ECC P-256 AK with the
// attributes of akTemplate, quoting PCRs 7 and 15.
func newForgery(rd [attest.ReportDataSize]byte) *forgery {
	tmpl, _ := akTemplate(ECCP256)
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: eccKey.X.FillBytes(make([]byte, 32))},
		Y: tpm2.TPM2BECCParameter{Buffer: eccKey.Y.FillBytes(make([]byte, 32))},
	})
	f := &forgery{
		key: eccKey, pub: tmpl, sigAlg: tpm2.TPMAlgECDSA, sigHash: tpm2.TPMAlgSHA256,
		pcrs: map[int][]byte{7: sha(7), 15: sha(15)},
	}
	f.quote = &tpm2.TPMSQuoteInfo{
		PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(7, 15)},
		}},
	}
	f.attest = tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: make([]byte, 34)},
		ExtraData:       tpm2.TPM2BData{Buffer: QualifyingData(rd)},
		ClockInfo:       tpm2.TPMSClockInfo{Clock: 1, ResetCount: 2, RestartCount: 3, Safe: true},
		FirmwareVersion: 4,
	}
	return f
}

func sha(i int) []byte {
	d := sha256.Sum256([]byte{byte(i)})
	return d[:]
}

func (f *forgery) withRSA(scheme tpm2.TPMAlgID) *forgery {
	tmpl, _ := akTemplate(RSA2048)
	parms, _ := tmpl.Parameters.RSADetail()
	parms.Scheme = tpm2.TPMTRSAScheme{Scheme: scheme, Details: tpm2.NewTPMUAsymScheme(scheme, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256})}
	if scheme == tpm2.TPMAlgRSAPSS {
		parms.Scheme.Details = tpm2.NewTPMUAsymScheme(scheme, &tpm2.TPMSSigSchemeRSAPSS{HashAlg: tpm2.TPMAlgSHA256})
	}
	tmpl.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, parms)
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: rsaKey.N.Bytes()})
	f.key, f.pub, f.sigAlg = rsaKey, tmpl, scheme
	return f
}

func (f *forgery) evidence(t testing.TB) *attest.Evidence {
	t.Helper()
	h, err := f.sigHash.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if f.quote.PCRDigest.Buffer == nil {
		d := h.New()
		for _, s := range f.quote.PCRSelect.PCRSelections {
			for b, v := range s.PCRSelect {
				for bit := range 8 {
					if v&(1<<bit) != 0 {
						d.Write(f.pcrs[8*b+bit])
					}
				}
			}
		}
		f.quote.PCRDigest.Buffer = d.Sum(nil)
	}
	a := f.attest
	a.Attested = tpm2.NewTPMUAttest(a.Type, f.quote)
	msg := append(tpm2.Marshal(a), f.trailer...)
	if f.rawType != 0 {
		binary.BigEndian.PutUint16(msg[4:6], f.rawType) // after the 4-byte magic
	}
	digest := hashOf(h, msg)
	var sig tpm2.TPMTSignature
	switch f.sigAlg {
	case tpm2.TPMAlgECDSA:
		r, s, err := ecdsa.Sign(rand.Reader, f.key.(*ecdsa.PrivateKey), digest)
		if err != nil {
			t.Fatal(err)
		}
		sig = tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash: f.sigHash, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()}, SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()},
		})}
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		var b []byte
		if f.sigAlg == tpm2.TPMAlgRSASSA {
			b, err = rsa.SignPKCS1v15(rand.Reader, f.key.(*rsa.PrivateKey), h, digest)
		} else {
			b, err = rsa.SignPSS(rand.Reader, f.key.(*rsa.PrivateKey), h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		if err != nil {
			t.Fatal(err)
		}
		sig = tpm2.TPMTSignature{SigAlg: f.sigAlg, Signature: tpm2.NewTPMUSignature(f.sigAlg, &tpm2.TPMSSignatureRSA{
			Hash: f.sigHash, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: b},
		})}
	}
	return &attest.Evidence{
		Kind: attest.VTPM, Quote: msg, Signature: tpm2.Marshal(sig), AKPublic: tpm2.Marshal(f.pub), PCRs: f.pcrs,
	}
}

// TestVerifyForgeries reaches each check behind the signature with a
// software key. The first cases verify: a software key with the right
// attributes passes everything Verify can check, and only CheckAK (a pin)
// rejects it.
func TestVerifyForgeries(t *testing.T) {
	rd := testReportData("forgery")
	eccP384 := func(f *forgery) {
		f.key = eccKeyP384
		parms, _ := f.pub.Parameters.ECCDetail()
		parms.CurveID = tpm2.TPMECCNistP384
		parms.Scheme.Details = tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA384})
		f.pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, parms)
		f.pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: eccKeyP384.X.FillBytes(make([]byte, 48))},
			Y: tpm2.TPM2BECCParameter{Buffer: eccKeyP384.Y.FillBytes(make([]byte, 48))},
		})
		f.sigHash = tpm2.TPMAlgSHA384
	}
	attrs := func(set func(a *tpm2.TPMAObject)) func(*forgery) {
		return func(f *forgery) { set(&f.pub.ObjectAttributes) }
	}
	sel := func(s ...tpm2.TPMSPCRSelection) func(*forgery) {
		return func(f *forgery) { f.quote.PCRSelect.PCRSelections = s }
	}
	for _, tc := range []struct {
		name string
		mod  func(*forgery)
		want error // nil: verifies
	}{
		{"software ECC key", func(*forgery) {}, nil},
		{"software ECC P-384 key, SHA-384 scheme and PCR digest", eccP384, nil},
		{"software RSASSA key", func(f *forgery) { f.withRSA(tpm2.TPMAlgRSASSA) }, nil},
		{"software RSAPSS key", func(f *forgery) { f.withRSA(tpm2.TPMAlgRSAPSS) }, nil},

		{"magic not TPM_GENERATED", func(f *forgery) { f.attest.Magic = 0xff544348 }, ErrAttest},
		{"certify, not quote", func(f *forgery) { f.rawType = uint16(tpm2.TPMSTAttestCertify) }, ErrAttest},
		{"bytes after the TPMS_ATTEST", func(f *forgery) { f.trailer = []byte{0} }, ErrAttest},
		{"extraData is the raw report data", func(f *forgery) { f.attest.ExtraData.Buffer = rd[:] }, ErrNonce},
		{"extraData empty", func(f *forgery) { f.attest.ExtraData.Buffer = nil }, ErrNonce},
		{"PCR digest of other values", func(f *forgery) { f.quote.PCRDigest.Buffer = sha(0) }, ErrPCRDigest},
		{"SHA-1 bank", sel(tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA1, PCRSelect: tpm2.PCClientCompatible.PCRs(7, 15)}), attest.ErrEvidence},
		{"SHA-256 and SHA-384 banks", sel(
			tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(7, 15)},
			tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA384, PCRSelect: tpm2.PCClientCompatible.PCRs(7)}), attest.ErrEvidence},
		{"no PCR selected", sel(tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA256, PCRSelect: []byte{0, 0, 0}}), attest.ErrEvidence},
		{"no selection", sel(), attest.ErrEvidence},

		{"AK not restricted", attrs(func(a *tpm2.TPMAObject) { a.Restricted = false }), ErrAK},
		{"AK not a signing key", attrs(func(a *tpm2.TPMAObject) { a.SignEncrypt = false }), ErrAK},
		{"AK can decrypt", attrs(func(a *tpm2.TPMAObject) { a.Decrypt = true }), ErrAK},
		{"AK may be duplicated", attrs(func(a *tpm2.TPMAObject) { a.FixedParent = false }), ErrAK},
		{"AK may leave the TPM", attrs(func(a *tpm2.TPMAObject) { a.FixedTPM = false }), ErrAK},
		{"AK imported", attrs(func(a *tpm2.TPMAObject) { a.SensitiveDataOrigin = false }), ErrAK},
		{"AK named with SHA-1", func(f *forgery) { f.pub.NameAlg = tpm2.TPMAlgSHA1 }, ErrAK},
		{"AK without a scheme", func(f *forgery) {
			parms, _ := f.pub.Parameters.ECCDetail()
			parms.Scheme = tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull}
			f.pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, parms)
		}, ErrAK},
		{"AK point not on the curve", func(f *forgery) {
			f.pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
				X: tpm2.TPM2BECCParameter{Buffer: []byte{1}}, Y: tpm2.TPM2BECCParameter{Buffer: []byte{1}},
			})
		}, ErrAK},
		{"AK is a symmetric key", func(f *forgery) {
			f.pub.Type = tpm2.TPMAlgKeyedHash
			f.pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}})
			f.pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{Buffer: sha(1)})
		}, ErrAK},
		{"RSA AK of 1024 bits", func(f *forgery) {
			f.withRSA(tpm2.TPMAlgRSASSA)
			parms, _ := f.pub.Parameters.RSADetail()
			parms.KeyBits = 1024
			f.pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, parms)
			f.pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: rsaKey.N.Bytes()[:128]})
		}, ErrAK},
		{"RSA AK with keyBits not its modulus", func(f *forgery) {
			f.withRSA(tpm2.TPMAlgRSASSA)
			parms, _ := f.pub.Parameters.RSADetail()
			parms.KeyBits = 3072
			f.pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, parms)
		}, ErrAK},
		{"RSA AK with an even exponent", func(f *forgery) {
			f.withRSA(tpm2.TPMAlgRSASSA)
			parms, _ := f.pub.Parameters.RSADetail()
			parms.Exponent = 65536
			f.pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, parms)
		}, ErrAK},

		{"signed with SHA-384 by a SHA-256 AK", func(f *forgery) { f.sigHash = tpm2.TPMAlgSHA384 }, ErrSignature},
		{"RSASSA signature from an RSAPSS AK", func(f *forgery) {
			f.withRSA(tpm2.TPMAlgRSAPSS)
			f.sigAlg = tpm2.TPMAlgRSASSA
		}, ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newForgery(rd)
			tc.mod(f)
			ev := f.evidence(t)
			v, err := Verify(ev, rd)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if v.Hierarchy != 0 {
					t.Errorf("hierarchy %#x for a key whose qualified name is zeros", v.Hierarchy)
				}
				if err := v.CheckAK(); !errors.Is(err, ErrAKNotAllowed) {
					t.Errorf("CheckAK with no allowed key: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}
