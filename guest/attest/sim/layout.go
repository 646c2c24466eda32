package sim

import (
	"encoding/binary"
	"fmt"
)

// Sizes and constants of the quote v4 layout (Intel TDX DCAP Quoting
// Library API, "Quote Format": Quote Header, TD Quote Body, Quote Signature
// Data, ECDSA 256-bit Quote Signature Data Structure, QE Report
// Certification Data, QE Authentication Data, PCK Cert Chain).
const (
	headerSize     = 48
	bodySize       = 584
	signedSizeOff  = headerSize + bodySize // 0x278: the 4-byte signed data size
	signedDataOff  = signedSizeOff + 4     // 0x27C
	sigSize        = 64                    // ECDSA P-256 r||s, 32 bytes each, big-endian
	akSize         = 64                    // P-256 point x||y, without the 0x04 prefix
	qeReportSize   = 384                   // SGX REPORT body (SGX SDM, "REPORT")
	qeReportOff    = signedDataOff + sigSize + akSize + certDataHeader
	certDataHeader = 6 // certification data type (2) and size (4)

	quoteVersion       = 4
	akTypeECDSAP256    = 2
	teeTypeTDX         = 0x81
	certTypeQEReport   = 6 // certification data type 6: QE report certification data
	certTypePCKChain   = 5 // certification data type 5: PCK certificate chain, PEM
	reportDataSize     = 64
	measurementSize    = 48 // SHA-384 registers
	qeVendorIDSize     = 16
	headerUserDataSize = 20
)

// header is the 48-byte quote header.
type header struct {
	QEVendorID [qeVendorIDSize]byte
	UserData   [headerUserDataSize]byte
}

// marshal writes the header (version 4, key type 2, TEE type TDX; the two
// 2-byte fields at offsets 8 and 10 are reserved for TDX and zero).
func (h header) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = binary.LittleEndian.AppendUint16(b, quoteVersion)
	b = binary.LittleEndian.AppendUint16(b, akTypeECDSAP256)
	b = binary.LittleEndian.AppendUint32(b, teeTypeTDX)
	b = append(b, 0, 0, 0, 0)
	b = append(b, h.QEVendorID[:]...)
	return append(b, h.UserData[:]...)
}

// marshal writes the 584-byte TD quote body, fields in the order and sizes
// of the "TD Quote Body" table (the TDREPORT's TDINFO plus TEE_TCB_SVN and
// the SEAM measurements). TDATTRIBUTES and XFAM are little-endian, as the
// TDX module writes them.
func (b *Body) marshal(rtmr [4][measurementSize]byte, reportData [reportDataSize]byte) []byte {
	out := make([]byte, 0, bodySize)
	out = append(out, b.TEETCBSVN[:]...)
	out = append(out, b.MRSEAM[:]...)
	out = append(out, b.MRSIGNERSEAM[:]...)
	out = append(out, b.SEAMAttributes[:]...)
	out = binary.LittleEndian.AppendUint64(out, b.TDAttributes)
	out = binary.LittleEndian.AppendUint64(out, b.XFAM)
	out = append(out, b.MRTD[:]...)
	out = append(out, b.MRConfigID[:]...)
	out = append(out, b.MROwner[:]...)
	out = append(out, b.MROwnerConfig[:]...)
	for i := range rtmr {
		out = append(out, rtmr[i][:]...)
	}
	return append(out, reportData[:]...)
}

// qeReport is the SGX REPORT body of the quoting enclave (Intel SGX SDM
// vol. 3, "REPORT": CPUSVN 16, MISCSELECT 4, reserved 28, ATTRIBUTES 16,
// MRENCLAVE 32, reserved 32, MRSIGNER 32, reserved 96, ISVPRODID 2, ISVSVN 2,
// reserved 60, REPORTDATA 64; 384 bytes).
type qeReport struct {
	CPUSVN     [16]byte
	MiscSelect uint32
	Attributes [16]byte
	MREnclave  [32]byte
	MRSigner   [32]byte
	ISVProdID  uint16
	ISVSVN     uint16
	ReportData [reportDataSize]byte
}

func (r *qeReport) marshal() []byte {
	b := make([]byte, 0, qeReportSize)
	b = append(b, r.CPUSVN[:]...)
	b = binary.LittleEndian.AppendUint32(b, r.MiscSelect)
	b = append(b, make([]byte, 28)...)
	b = append(b, r.Attributes[:]...)
	b = append(b, r.MREnclave[:]...)
	b = append(b, make([]byte, 32)...)
	b = append(b, r.MRSigner[:]...)
	b = append(b, make([]byte, 96)...)
	b = binary.LittleEndian.AppendUint16(b, r.ISVProdID)
	b = binary.LittleEndian.AppendUint16(b, r.ISVSVN)
	b = append(b, make([]byte, 60)...)
	return append(b, r.ReportData[:]...)
}

// assemble lays out a whole quote from its parts. signed is the 48+584
// bytes the attestation key signed; qeRep the 384-byte QE report.
func assemble(signed []byte, sig, ak [64]byte, qeRep []byte, qeSig [64]byte, auth, chain []byte) ([]byte, error) {
	if len(signed) != headerSize+bodySize || len(qeRep) != qeReportSize {
		return nil, fmt.Errorf("sim: internal error: %d signed bytes, %d-byte QE report", len(signed), len(qeRep))
	}
	if len(auth) > 0xffff {
		return nil, fmt.Errorf("sim: QE authentication data is %d bytes, at most 65535 fit its size field", len(auth))
	}
	// Certification data type 5: the PEM chain.
	pck := make([]byte, 0, certDataHeader+len(chain))
	pck = binary.LittleEndian.AppendUint16(pck, certTypePCKChain)
	pck = binary.LittleEndian.AppendUint32(pck, uint32(len(chain)))
	pck = append(pck, chain...)
	// QE report certification data: report, signature, auth data, type 5.
	qrc := make([]byte, 0, qeReportSize+sigSize+2+len(auth)+len(pck))
	qrc = append(qrc, qeRep...)
	qrc = append(qrc, qeSig[:]...)
	qrc = binary.LittleEndian.AppendUint16(qrc, uint16(len(auth)))
	qrc = append(qrc, auth...)
	qrc = append(qrc, pck...)
	// Signed data: signature, attestation key, certification data type 6.
	sd := make([]byte, 0, sigSize+akSize+certDataHeader+len(qrc))
	sd = append(sd, sig[:]...)
	sd = append(sd, ak[:]...)
	sd = binary.LittleEndian.AppendUint16(sd, certTypeQEReport)
	sd = binary.LittleEndian.AppendUint32(sd, uint32(len(qrc)))
	sd = append(sd, qrc...)

	q := make([]byte, 0, signedDataOff+len(sd))
	q = append(q, signed...)
	q = binary.LittleEndian.AppendUint32(q, uint32(len(sd)))
	return append(q, sd...), nil
}
