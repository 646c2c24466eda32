package quote

import (
	"encoding/binary"
	"fmt"
)

// Offsets and sizes of the quote v4 layout (Intel TDX DCAP Quote Generation
// Library and Quote Verification Library spec, "Quote Format": Quote Header,
// TD Quote Body, Quote Signature Data, Certification Data, QE Report
// Certification Data, QE Authentication Data).
const (
	headerSize        = 48
	version4          = 4     // header offset 0, 2 bytes
	teeTypeTDX        = 0x81  // header offset 4, 4 bytes
	offSignedDataSize = 0x278 // after the 48-byte header and 584-byte body
	offSignedData     = 0x27C
	sigAndKey         = 0x80  // ECDSA signature (64) and attestation key (64)
	certHeader        = 6     // certification data type (2) and size (4)
	qeReportAndSig    = 0x1C0 // QE report (384) and its signature (64)
	authSizeField     = 2
	chainHeader       = 6 // PCK chain certification data type (2) and size (4)

	// What the attestation key signs: the header and the TD quote body.
	quoteSignedEnd = offSignedDataSize
	// The QE report (an SGX REPORT body), which the PCK key signs.
	qeReportStart = offSignedData + sigAndKey + certHeader
	qeReportSize  = 0x180
)

// checkLayout walks the size fields of a v4 quote before go-tdx-guest sees
// it: go-tdx-guest v0.3.1's parser slices by these fields without bounds
// checks and panics on, for example, a QE authentication data size larger
// than what follows (found by FuzzParse; the input is kept as
// testdata/fuzz/FuzzParse/qe-auth-size-overflow).
func checkLayout(raw []byte) error {
	if len(raw) < offSignedData {
		return fmt.Errorf("%d bytes, shorter than header, TD quote body and signed data size (%d)", len(raw), offSignedData)
	}
	n := binary.LittleEndian.Uint32(raw[offSignedDataSize:])
	if avail := uint64(len(raw) - offSignedData); uint64(n) > avail {
		return fmt.Errorf("signed data size %d, but %d bytes follow", n, avail)
	}
	s := raw[offSignedData : offSignedData+int(n)]
	if len(s) < sigAndKey+certHeader {
		return fmt.Errorf("signed data is %d bytes, shorter than signature, attestation key and certification data header (%d)", len(s), sigAndKey+certHeader)
	}
	certSize := binary.LittleEndian.Uint32(s[sigAndKey+2:])
	cd := s[sigAndKey+certHeader:]
	if uint64(len(cd)) != uint64(certSize) {
		return fmt.Errorf("certification data size %d, but %d bytes of signed data remain", certSize, len(cd))
	}
	if len(cd) < qeReportAndSig+authSizeField {
		return fmt.Errorf("certification data is %d bytes, shorter than QE report, its signature and the auth data size (%d)", len(cd), qeReportAndSig+authSizeField)
	}
	auth := int(binary.LittleEndian.Uint16(cd[qeReportAndSig:]))
	rest := cd[qeReportAndSig+authSizeField:]
	if auth > len(rest) {
		return fmt.Errorf("QE authentication data size %d, but %d bytes remain", auth, len(rest))
	}
	rest = rest[auth:]
	if len(rest) < chainHeader {
		return fmt.Errorf("%d bytes left for the PCK certificate chain header (%d)", len(rest), chainHeader)
	}
	return nil
}
