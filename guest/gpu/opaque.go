package gpu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// NVIDIA fills the MEASUREMENTS OpaqueData with its own type-length-value
// fields: a little-endian uint16 type, a little-endian uint16 size, then
// size bytes, back to back (NVIDIA local verifier,
// attestation/spdm_msrt_resp_msg.py OpaqueData). The field types below are
// NVIDIA's OPAQUE_FIELD_ID_* numbers; the gate reads three of them.
const (
	OpaqueDriverVersion uint16 = 3  // OPAQUE_FIELD_ID_DRIVER_VERSION: ASCII, NUL-terminated
	OpaqueVBIOSVersion  uint16 = 6  // OPAQUE_FIELD_ID_VBIOS_VERSION: 8 bytes
	OpaqueFWID          uint16 = 20 // OPAQUE_FIELD_ID_FWID: SHA-384 of the GSP firmware
)

// OpaqueField is one NVIDIA opaque data field.
type OpaqueField struct {
	Type  uint16
	Value []byte
}

// Opaque is NVIDIA's opaque data, fields in report order.
type Opaque []OpaqueField

// ParseOpaque splits opaque data into fields. The fields must fill the data
// exactly and no type may repeat (NVIDIA's verifier keeps the last of a
// repeated type; we refuse the ambiguity). Errors wrap ErrReport.
func ParseOpaque(b []byte) (Opaque, error) {
	r := &reader{b: b}
	var o Opaque
	seen := map[uint16]bool{}
	for r.off < len(b) {
		t := uint16(r.u16("opaque field type"))
		v := r.take(r.u16("opaque field size"), "opaque field value")
		if r.err != nil {
			return nil, r.err
		}
		if seen[t] {
			return nil, fmt.Errorf("%w: opaque field %d appears twice", ErrReport, t)
		}
		seen[t] = true
		o = append(o, OpaqueField{Type: t, Value: v})
	}
	return o, nil
}

// Marshal encodes the fields; ParseOpaque(o.Marshal()) gives o back.
func (o Opaque) Marshal() []byte {
	var b []byte
	for _, f := range o {
		b = binary.LittleEndian.AppendUint16(b, f.Type)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(f.Value)))
		b = append(b, f.Value...)
	}
	return b
}

// Get returns the value of field t.
func (o Opaque) Get(t uint16) ([]byte, bool) {
	for _, f := range o {
		if f.Type == t {
			return f.Value, true
		}
	}
	return nil, false
}

// DriverVersion is the driver version the GPU firmware recorded, without
// its terminating NUL.
func (o Opaque) DriverVersion() (string, error) {
	v, ok := o.Get(OpaqueDriverVersion)
	if !ok {
		return "", fmt.Errorf("%w: opaque data has no driver version (field %d)", ErrReport, OpaqueDriverVersion)
	}
	v = bytes.TrimSuffix(v, []byte{0})
	if len(v) == 0 || !utf8.Valid(v) || bytes.IndexByte(v, 0) >= 0 {
		return "", fmt.Errorf("%w: driver version field %q is not a version string", ErrReport, v)
	}
	return string(v), nil
}

// VBIOSVersion formats the 8-byte VBIOS version field the way NVML prints
// it: bytes 3, 2, 1, 0 and 4 in hex, dot separated, so that
// 00 9f 00 96 01 00 00 00 reads "96.00.9f.00.01" (NVIDIA local verifier
// utils.format_vbios_version: the little-endian value's low 32 bits, then
// byte 4).
func (o Opaque) VBIOSVersion() (string, error) {
	v, ok := o.Get(OpaqueVBIOSVersion)
	if !ok {
		return "", fmt.Errorf("%w: opaque data has no VBIOS version (field %d)", ErrReport, OpaqueVBIOSVersion)
	}
	if len(v) != 8 {
		return "", fmt.Errorf("%w: VBIOS version field of %d bytes, want 8", ErrReport, len(v))
	}
	return fmt.Sprintf("%02x.%02x.%02x.%02x.%02x", v[3], v[2], v[1], v[0], v[4]), nil
}

// FWID is the SHA-384 firmware ID, when the report carries one (older
// drivers do not: the recorded 545.00 report in testdata has none, the
// 550.90.07 one has).
func (o Opaque) FWID() ([]byte, bool, error) {
	v, ok := o.Get(OpaqueFWID)
	if !ok {
		return nil, false, nil
	}
	if len(v) != DigestSize {
		return nil, false, fmt.Errorf("%w: FWID of %d bytes, want %d", ErrReport, len(v), DigestSize)
	}
	return v, true, nil
}
