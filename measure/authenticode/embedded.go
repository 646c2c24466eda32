package authenticode

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
)

// WIN_CERTIFICATE (Microsoft PE Format, "The Attribute Certificate Table").
const (
	winCertHeaderLen          = 8
	winCertRevision1          = 0x0100
	winCertRevision2          = 0x0200
	winCertTypePKCSSignedData = 0x0002
)

var (
	oidSignedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}      // RFC 2315
	oidSpcIndirectData  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}  // SPC_INDIRECT_DATA_OBJID
	oidSpcPEImageData   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15} // SPC_PE_IMAGE_DATAOBJ
	digestAlgorithmOIDs = []struct {
		oid asn1.ObjectIdentifier
		h   crypto.Hash
	}{
		{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
	}
)

// contentInfo is RFC 2315 ContentInfo.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"optional"`
}

// inner returns the TLV inside content's "[0] EXPLICIT" wrapper.
func (c contentInfo) inner() ([]byte, bool) {
	v := c.Content
	return v.Bytes, v.Class == asn1.ClassContextSpecific && v.Tag == 0 && v.IsCompound
}

// signedData is the head of RFC 2315 SignedData; the certificates and
// signerInfos that follow are not needed here.
type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	ContentInfo      contentInfo
}

// spcIndirectDataContent is Authenticode's SpcIndirectDataContent.
type spcIndirectDataContent struct {
	Data          spcAttributeTypeAndOptionalValue
	MessageDigest digestInfo
}

type spcAttributeTypeAndOptionalValue struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"optional"`
}

type digestInfo struct {
	DigestAlgorithm pkix.AlgorithmIdentifier
	Digest          []byte
}

// Embedded returns the hash algorithm and the Authenticode digest recorded in
// the image's first signature (the SpcIndirectDataContent messageDigest). It
// does not verify the signature: compare the digest with Digest to learn
// whether the signed content is what the file holds.
func Embedded(image []byte) (crypto.Hash, []byte, error) {
	l, err := parse(image)
	if err != nil {
		return 0, nil, err
	}
	if l.certSize == 0 {
		return 0, nil, ErrUnsigned
	}
	cert := image[l.certOff : l.certOff+l.certSize]
	if len(cert) < winCertHeaderLen {
		return 0, nil, malformed("certificate table is %d bytes, want at least %d", len(cert), winCertHeaderLen)
	}
	length := binary.LittleEndian.Uint32(cert)
	revision := binary.LittleEndian.Uint16(cert[4:])
	typ := binary.LittleEndian.Uint16(cert[6:])
	if length < winCertHeaderLen || uint64(length) > uint64(len(cert)) {
		return 0, nil, malformed("WIN_CERTIFICATE dwLength %d, want %d..%d", length, winCertHeaderLen, len(cert))
	}
	if revision != winCertRevision1 && revision != winCertRevision2 {
		return 0, nil, malformed("WIN_CERTIFICATE wRevision %#x, want %#x or %#x", revision, winCertRevision1, winCertRevision2)
	}
	if typ != winCertTypePKCSSignedData {
		return 0, nil, malformed("WIN_CERTIFICATE wCertificateType %#x, want %#x (PKCS signed data)", typ, winCertTypePKCSSignedData)
	}
	return parsePKCS7(cert[winCertHeaderLen:length])
}

func parsePKCS7(der []byte) (crypto.Hash, []byte, error) {
	var ci contentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return 0, nil, malformed("PKCS#7 ContentInfo: %v", err)
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return 0, nil, malformed("PKCS#7 content type %v, want signedData %v", ci.ContentType, oidSignedData)
	}
	content, ok := ci.inner()
	if !ok {
		return 0, nil, malformed("PKCS#7 ContentInfo has no [0] content")
	}
	var sd signedData
	if _, err := asn1.Unmarshal(content, &sd); err != nil {
		return 0, nil, malformed("PKCS#7 SignedData: %v", err)
	}
	if !sd.ContentInfo.ContentType.Equal(oidSpcIndirectData) {
		return 0, nil, malformed("SignedData content type %v, want SpcIndirectDataContent %v", sd.ContentInfo.ContentType, oidSpcIndirectData)
	}
	content, ok = sd.ContentInfo.inner()
	if !ok {
		return 0, nil, malformed("SignedData contentInfo has no [0] content")
	}
	var spc spcIndirectDataContent
	if _, err := asn1.Unmarshal(content, &spc); err != nil {
		return 0, nil, malformed("SpcIndirectDataContent: %v", err)
	}
	if !spc.Data.Type.Equal(oidSpcPEImageData) {
		return 0, nil, malformed("SpcIndirectDataContent data type %v, want SpcPeImageData %v", spc.Data.Type, oidSpcPEImageData)
	}
	alg := spc.MessageDigest.DigestAlgorithm.Algorithm
	for _, a := range digestAlgorithmOIDs {
		if !alg.Equal(a.oid) {
			continue
		}
		if got := len(spc.MessageDigest.Digest); got != a.h.Size() {
			return 0, nil, malformed("%v digest is %d bytes, want %d", a.h, got, a.h.Size())
		}
		return a.h, spc.MessageDigest.Digest, nil
	}
	return 0, nil, malformed("digest algorithm %v, want SHA-1, SHA-256, SHA-384 or SHA-512", alg)
}
