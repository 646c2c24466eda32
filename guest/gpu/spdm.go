package gpu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"math/big"
)

// The attestation report NVML returns is one SPDM 1.1 exchange: the
// GET_MEASUREMENTS request the driver sent the GPU, followed by the GPU's
// MEASUREMENTS response (DMTF DSP0274 1.1.0, "GET_MEASUREMENTS request and
// MEASUREMENTS response messages"). All multi-byte integers are little
// endian.
//
// GET_MEASUREMENTS request, signature requested (37 bytes):
//
//	0   SPDMVersion          1   0x11
//	1   RequestResponseCode  1   0xE0
//	2   Param1 (attributes)  1   bit 0: signature requested
//	3   Param2 (operation)   1   0xFF: all measurement blocks
//	4   Nonce                32
//	36  SlotIDParam          1   bits 3:0 certificate slot (added in 1.1)
//
// MEASUREMENTS response:
//
//	0        SPDMVersion              1
//	1        RequestResponseCode      1   0x60
//	2        Param1                   1   reserved when Param2 of the request != 0
//	3        Param2                   1   bits 3:0 slot
//	4        NumberOfBlocks           1
//	5        MeasurementRecordLength  3
//	8        MeasurementRecord        L1
//	8+L1     Nonce                    32  (the responder's)
//	40+L1    OpaqueLength             2   at most 1024
//	42+L1    OpaqueData               L2
//	42+L1+L2 Signature                S   (96: TPM_ALG_ECDSA_ECC_NIST_P384, r || s)
//
// Measurement block ("measurement block format"):
//
//	0  Index                     1
//	1  MeasurementSpecification  1   bit 0: DMTF
//	2  MeasurementSize           2
//	4  Measurement               MeasurementSize
//
// and the DMTF measurement inside it ("DMTF measurement specification
// format"):
//
//	0  DMTFSpecMeasurementValueType  1   bit 7: raw bit stream, bits 6:0 type
//	1  DMTFSpecMeasurementValueSize  2
//	3  DMTFSpecMeasurementValue      size
//
// Hopper negotiates SHA-384 for measurements and ECDSA P-384 with SHA-384
// for signatures (NVIDIA local verifier: HopperSettings.signature_length 96,
// HashFunction sha384). The report carries no NEGOTIATE_ALGORITHMS
// transcript, so those are fixed here; anything else fails to parse or to
// verify.
const (
	// NonceSize is the SPDM nonce size (NVML_CC_GPU_CEC_NONCE_SIZE).
	NonceSize = 32
	// SignatureSize is an ECDSA P-384 signature, r || s.
	SignatureSize = 96
	// DigestSize is a SHA-384 measurement digest.
	DigestSize = 48

	spdmVersion11       = 0x11
	codeGetMeasurements = 0xE0
	codeMeasurements    = 0x60
	attrSignature       = 0x01
	opAllMeasurements   = 0xFF
	requestSize         = 4 + NonceSize + 1
	responseHeaderSize  = 8
	maxOpaque           = 1024 // DSP0274 1.1: OpaqueLength shall not exceed 1024
	maxRecord           = 1<<24 - 1
	specDMTF            = 0x01
	rawBitStream        = 0x80
	blockHeaderSize     = 4
	dmtfHeaderSize      = 3
)

// MeasurementRequest is the GET_MEASUREMENTS request.
type MeasurementRequest struct {
	Version    byte
	Attributes byte // Param1
	Operation  byte // Param2
	Nonce      [NonceSize]byte
	SlotID     byte // SlotIDParam
}

// MeasurementBlock is one DMTF measurement block.
type MeasurementBlock struct {
	Index byte
	// ValueType is DMTFSpecMeasurementValueType: bit 7 raw bit stream,
	// bits 6:0 the kind (0 immutable ROM, 1 mutable firmware, 2 hardware
	// configuration, 3 firmware configuration, 4 measurement manifest).
	ValueType byte
	// Value is the SHA-384 digest, or the raw bit stream when Raw().
	Value []byte
}

// Raw reports whether the block carries a raw bit stream, not a digest.
func (b MeasurementBlock) Raw() bool { return b.ValueType&rawBitStream != 0 }

// Kind is the measurement kind, ValueType bits 6:0.
func (b MeasurementBlock) Kind() byte { return b.ValueType &^ rawBitStream }

// MeasurementResponse is the MEASUREMENTS response.
type MeasurementResponse struct {
	Version   byte
	Param1    byte
	Param2    byte
	Blocks    []MeasurementBlock
	Nonce     [NonceSize]byte
	Opaque    []byte
	Signature []byte
}

// Report is a parsed attestation report.
type Report struct {
	Request  MeasurementRequest
	Response MeasurementResponse
}

// reader reads fields in order and remembers the first shortfall.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: %s at offset %d: need %d bytes, have %d", ErrReport, what, r.off, n, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(what string) byte {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(what string) int {
	if v := r.take(2, what); v != nil {
		return int(binary.LittleEndian.Uint16(v))
	}
	return 0
}

func (r *reader) u24(what string) int {
	if v := r.take(3, what); v != nil {
		return int(v[0]) | int(v[1])<<8 | int(v[2])<<16
	}
	return 0
}

// ParseReport parses an attestation report strictly: the fixed algorithms
// above, DMTF blocks with distinct indices 1..254, exact lengths and nothing
// after the signature. Errors wrap ErrReport. It does not verify anything.
func ParseReport(b []byte) (*Report, error) {
	r := &reader{b: b}
	var rep Report
	q := &rep.Request
	q.Version = r.u8("request SPDMVersion")
	code := r.u8("request RequestResponseCode")
	q.Attributes = r.u8("request Param1")
	q.Operation = r.u8("request Param2")
	copy(q.Nonce[:], r.take(NonceSize, "request Nonce"))
	q.SlotID = r.u8("request SlotIDParam")
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case q.Version != spdmVersion11:
		return nil, fmt.Errorf("%w: request SPDM version 0x%02x, want 0x%02x (DSP0274 1.1)", ErrReport, q.Version, spdmVersion11)
	case code != codeGetMeasurements:
		return nil, fmt.Errorf("%w: request code 0x%02x, want GET_MEASUREMENTS 0x%02x", ErrReport, code, codeGetMeasurements)
	case q.Attributes != attrSignature:
		return nil, fmt.Errorf("%w: request attributes 0x%02x, want 0x%02x (signature requested)", ErrReport, q.Attributes, attrSignature)
	case q.Operation != opAllMeasurements:
		return nil, fmt.Errorf("%w: request operation 0x%02x, want 0x%02x (all measurements)", ErrReport, q.Operation, opAllMeasurements)
	case q.SlotID > 7:
		return nil, fmt.Errorf("%w: request slot 0x%02x, want 0..7", ErrReport, q.SlotID)
	}

	p := &rep.Response
	p.Version = r.u8("response SPDMVersion")
	code = r.u8("response RequestResponseCode")
	p.Param1 = r.u8("response Param1")
	p.Param2 = r.u8("response Param2")
	n := int(r.u8("response NumberOfBlocks"))
	record := r.take(r.u24("response MeasurementRecordLength"), "response MeasurementRecord")
	copy(p.Nonce[:], r.take(NonceSize, "response Nonce"))
	p.Opaque = r.take(r.u16("response OpaqueLength"), "response OpaqueData")
	p.Signature = r.take(SignatureSize, "response Signature")
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case r.off != len(b):
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrReport, len(b)-r.off)
	case p.Version != q.Version:
		return nil, fmt.Errorf("%w: response SPDM version 0x%02x, request 0x%02x", ErrReport, p.Version, q.Version)
	case code != codeMeasurements:
		return nil, fmt.Errorf("%w: response code 0x%02x, want MEASUREMENTS 0x%02x", ErrReport, code, codeMeasurements)
	case p.Param2&0x0f != q.SlotID:
		return nil, fmt.Errorf("%w: response slot %d, request slot %d", ErrReport, p.Param2&0x0f, q.SlotID)
	case len(p.Opaque) > maxOpaque:
		return nil, fmt.Errorf("%w: opaque data of %d bytes, at most %d", ErrReport, len(p.Opaque), maxOpaque)
	case n == 0:
		return nil, fmt.Errorf("%w: no measurement blocks", ErrReport)
	}
	blocks, err := parseRecord(record, n)
	if err != nil {
		return nil, err
	}
	p.Blocks = blocks
	return &rep, nil
}

// parseRecord parses the MeasurementRecord: exactly n blocks filling it.
func parseRecord(b []byte, n int) ([]MeasurementBlock, error) {
	r := &reader{b: b}
	blocks := make([]MeasurementBlock, 0, n)
	seen := map[byte]bool{}
	for i := range n {
		idx := r.u8("block Index")
		spec := r.u8("block MeasurementSpecification")
		size := r.u16("block MeasurementSize")
		m := r.take(size, "block Measurement")
		if r.err != nil {
			return nil, fmt.Errorf("measurement block %d of %d: %w", i+1, n, r.err)
		}
		switch {
		case idx == 0 || idx == 0xff:
			return nil, fmt.Errorf("%w: measurement block %d has index %d, want 1..254", ErrReport, i+1, idx)
		case seen[idx]:
			return nil, fmt.Errorf("%w: measurement index %d appears twice", ErrReport, idx)
		case spec != specDMTF:
			return nil, fmt.Errorf("%w: measurement %d specification 0x%02x, want 0x%02x (DMTF)", ErrReport, idx, spec, specDMTF)
		case size < dmtfHeaderSize:
			return nil, fmt.Errorf("%w: measurement %d of %d bytes, shorter than the DMTF header", ErrReport, idx, size)
		}
		seen[idx] = true
		blk := MeasurementBlock{Index: idx, ValueType: m[0], Value: m[dmtfHeaderSize:]}
		if vs := int(binary.LittleEndian.Uint16(m[1:3])); vs != len(blk.Value) {
			return nil, fmt.Errorf("%w: measurement %d value size %d, block holds %d", ErrReport, idx, vs, len(blk.Value))
		}
		if !blk.Raw() && len(blk.Value) != DigestSize {
			return nil, fmt.Errorf("%w: measurement %d digest of %d bytes, want %d (SHA-384)", ErrReport, idx, len(blk.Value), DigestSize)
		}
		blocks = append(blocks, blk)
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after %d measurement blocks", ErrReport, len(b)-r.off, n)
	}
	return blocks, nil
}

// Marshal encodes the report. For a report from ParseReport it returns the
// parsed bytes; for one built in memory (gputest) it fails with ErrReport
// where a field does not fit its encoding.
func (rep *Report) Marshal() ([]byte, error) {
	q, p := rep.Request, rep.Response
	var rec []byte
	for _, blk := range p.Blocks {
		size := dmtfHeaderSize + len(blk.Value)
		if size > 0xffff {
			return nil, fmt.Errorf("%w: measurement %d of %d bytes", ErrReport, blk.Index, size)
		}
		rec = append(rec, blk.Index, specDMTF)
		rec = binary.LittleEndian.AppendUint16(rec, uint16(size))
		rec = append(rec, blk.ValueType)
		rec = binary.LittleEndian.AppendUint16(rec, uint16(len(blk.Value)))
		rec = append(rec, blk.Value...)
	}
	switch {
	case len(p.Blocks) > 0xff:
		return nil, fmt.Errorf("%w: %d measurement blocks", ErrReport, len(p.Blocks))
	case len(rec) > maxRecord:
		return nil, fmt.Errorf("%w: measurement record of %d bytes", ErrReport, len(rec))
	case len(p.Opaque) > maxOpaque:
		return nil, fmt.Errorf("%w: opaque data of %d bytes", ErrReport, len(p.Opaque))
	case len(p.Signature) != SignatureSize:
		return nil, fmt.Errorf("%w: signature of %d bytes, want %d", ErrReport, len(p.Signature), SignatureSize)
	}
	b := make([]byte, 0, requestSize+responseHeaderSize+len(rec)+NonceSize+2+len(p.Opaque)+SignatureSize)
	b = append(b, q.Version, codeGetMeasurements, q.Attributes, q.Operation)
	b = append(b, q.Nonce[:]...)
	b = append(b, q.SlotID)
	b = append(b, p.Version, codeMeasurements, p.Param1, p.Param2, byte(len(p.Blocks)))
	b = append(b, byte(len(rec)), byte(len(rec)>>8), byte(len(rec)>>16))
	b = append(b, rec...)
	b = append(b, p.Nonce[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(p.Opaque)))
	b = append(b, p.Opaque...)
	b = append(b, p.Signature...)
	return b, nil
}

// SignedData is what the GPU signs: the request and the response up to the
// signature (SPDM 1.1 L1/L2 for a single GET_MEASUREMENTS exchange).
func (rep *Report) SignedData() ([]byte, error) {
	b, err := rep.Marshal()
	if err != nil {
		return nil, err
	}
	return b[:len(b)-SignatureSize], nil
}

// VerifySignature checks the response signature with the attestation
// (leaf) certificate's public key: ECDSA P-384 over SHA-384 of SignedData,
// the signature as big-endian r || s (DSP0274 1.1, signature over L1/L2;
// NVIDIA local verifier AttestationReport.verify_signature). Errors wrap
// ErrSignature.
func (rep *Report) VerifySignature(pub *ecdsa.PublicKey) error {
	if pub == nil || pub.Curve != elliptic.P384() {
		return fmt.Errorf("%w: leaf key is not ECDSA P-384", ErrSignature)
	}
	data, err := rep.SignedData()
	if err != nil {
		return err
	}
	sig := rep.Response.Signature
	digest := sha512.Sum384(data)
	r := new(big.Int).SetBytes(sig[:SignatureSize/2])
	s := new(big.Int).SetBytes(sig[SignatureSize/2:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return fmt.Errorf("%w: ECDSA P-384 signature over %d bytes of request and response does not verify with the leaf key", ErrSignature, len(data))
	}
	return nil
}
