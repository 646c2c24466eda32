package gpu

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// ResultVersion names the result format below. Any change to the fields or
// the encoding rules gets a new version: the bytes are measured.
const ResultVersion = "cocoon-gpu-attestation/v1"

// Result is what the gate measured. Its Canonical encoding is the payload
// of the measure/runtime "gpu-attestation" event extended into RTMR3, so
// it holds no time and nothing the verifier could not reproduce from the
// evidence: identity and versions from NVML, which the signed report
// confirms, the nonce, digests binding the exact evidence, and the
// measurement values.
//
// # Canonical encoding (version cocoon-gpu-attestation/v1)
//
//   - JSON (RFC 8259) with no insignificant whitespace and no trailing
//     newline, as encoding/json writes these types: object members in the
//     order of the struct fields below, strings escaped by encoding/json
//     (so "<", ">", "&" become \u003c, \u003e, \u0026), booleans, and
//     integers in decimal;
//   - byte strings in lowercase hex;
//   - gpus sorted by pci_bus_id, then uuid; measurements sorted by index;
//   - measurement blocks whose value is all zero bytes (indices the GPU
//     does not use; NVIDIA's RIMs list them as zero or inactive) are left
//     out, which keeps eight GPUs under measure/runtime.MaxPayload;
//     report_sha256 still binds every byte of the report;
//   - members marked omitempty are absent when empty.
//
// DecodeResult accepts exactly the bytes Canonical produces.
type Result struct {
	Version       string      `json:"version"`
	CC            CCResult    `json:"cc"`
	DriverVersion string      `json:"driver_version"`
	GPUs          []GPUResult `json:"gpus"`
}

// CCResult is the system confidential-computing state the gate accepted.
type CCResult struct {
	Feature     string `json:"feature"`     // "on"
	Environment string `json:"environment"` // "production"
	DevTools    string `json:"devtools"`    // "off"
}

// GPUResult is one attested GPU.
type GPUResult struct {
	UUID     string `json:"uuid"`
	Name     string `json:"name"`
	PCIBusID string `json:"pci_bus_id"`
	// VBIOSVersion as the signed report states it ("96.00.9f.00.01").
	VBIOSVersion string `json:"vbios_version"`
	// Nonce is the gate's nonce for this GPU, hex.
	Nonce string `json:"nonce"`
	// CertChainSHA256 is ChainSHA256 of the verified attestation chain.
	CertChainSHA256 string `json:"cert_chain_sha256"`
	// FWID is the GSP firmware ID in report and leaf certificate, if any.
	FWID string `json:"fwid,omitempty"`
	// ReportSHA256 is SHA-256 of the raw attestation report.
	ReportSHA256 string `json:"report_sha256"`
	// CECReportSHA256 is SHA-256 of the CEC attestation report NVML returned
	// beside it, if any (recorded, not verified).
	CECReportSHA256 string        `json:"cec_report_sha256,omitempty"`
	Measurements    []Measurement `json:"measurements"`
}

// Measurement is one non-zero measurement block.
type Measurement struct {
	Index int `json:"index"`
	// Type is the DMTF measurement kind (DMTFSpecMeasurementValueType bits 6:0).
	Type int `json:"type"`
	// Raw marks a raw bit stream; otherwise Value is a SHA-384 digest.
	Raw   bool   `json:"raw,omitempty"`
	Value string `json:"value"`
}

// DeviceInfo is what NVML says about a GPU, as the result records it.
type DeviceInfo struct {
	UUID     string
	Name     string
	PCIBusID string
}

// NewGPUResult records one verified GPU.
func NewGPUResult(info DeviceInfo, nonce [NonceSize]byte, ev Evidence, cec []byte, v *Verified) GPUResult {
	chain := ChainSHA256(v.Chain)
	report := sha256.Sum256(ev.Report)
	g := GPUResult{
		UUID:            info.UUID,
		Name:            info.Name,
		PCIBusID:        info.PCIBusID,
		VBIOSVersion:    v.VBIOSVersion,
		Nonce:           hex.EncodeToString(nonce[:]),
		CertChainSHA256: hex.EncodeToString(chain[:]),
		FWID:            hex.EncodeToString(v.FWID),
		ReportSHA256:    hex.EncodeToString(report[:]),
		Measurements:    []Measurement{},
	}
	if len(cec) > 0 {
		sum := sha256.Sum256(cec)
		g.CECReportSHA256 = hex.EncodeToString(sum[:])
	}
	for _, b := range v.Report.Response.Blocks {
		if isZero(b.Value) {
			continue
		}
		g.Measurements = append(g.Measurements, Measurement{
			Index: int(b.Index),
			Type:  int(b.Kind()),
			Raw:   b.Raw(),
			Value: hex.EncodeToString(b.Value),
		})
	}
	slices.SortFunc(g.Measurements, func(a, b Measurement) int { return cmp.Compare(a.Index, b.Index) })
	return g
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sortGPUs puts GPUs in canonical order.
func sortGPUs(g []GPUResult) {
	slices.SortFunc(g, func(a, b GPUResult) int {
		return cmp.Or(cmp.Compare(a.PCIBusID, b.PCIBusID), cmp.Compare(a.UUID, b.UUID))
	})
}

// Canonical returns the canonical encoding. It fails with ErrResult on a
// result that Gate could not have produced.
func (r *Result) Canonical() ([]byte, error) {
	c := *r
	c.GPUs = slices.Clone(r.GPUs)
	sortGPUs(c.GPUs)
	if err := c.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(&c)
}

func (r *Result) validate() error {
	if r.Version != ResultVersion {
		return fmt.Errorf("%w: version %q, want %q", ErrResult, r.Version, ResultVersion)
	}
	if len(r.GPUs) == 0 {
		return fmt.Errorf("%w: no GPUs", ErrResult)
	}
	for i, g := range r.GPUs {
		for _, h := range []struct {
			name, v string
			n       int
		}{
			{"nonce", g.Nonce, NonceSize},
			{"cert_chain_sha256", g.CertChainSHA256, 32},
			{"report_sha256", g.ReportSHA256, 32},
		} {
			if err := checkHex(h.v, h.n); err != nil {
				return fmt.Errorf("%w: gpu %d %s: %w", ErrResult, i, h.name, err)
			}
		}
		if g.FWID != "" {
			if err := checkHex(g.FWID, DigestSize); err != nil {
				return fmt.Errorf("%w: gpu %d fwid: %w", ErrResult, i, err)
			}
		}
		if g.CECReportSHA256 != "" {
			if err := checkHex(g.CECReportSHA256, 32); err != nil {
				return fmt.Errorf("%w: gpu %d cec_report_sha256: %w", ErrResult, i, err)
			}
		}
		if g.Measurements == nil {
			return fmt.Errorf("%w: gpu %d has no measurements list", ErrResult, i)
		}
		last := 0
		for _, m := range g.Measurements {
			n := DigestSize
			if m.Raw {
				n = len(m.Value) / 2
			}
			switch {
			case m.Index <= last || m.Index > 254:
				return fmt.Errorf("%w: gpu %d measurement index %d after %d", ErrResult, i, m.Index, last)
			case m.Type < 0 || m.Type > 0x7f:
				return fmt.Errorf("%w: gpu %d measurement %d type %d", ErrResult, i, m.Index, m.Type)
			}
			if err := checkHex(m.Value, n); err != nil {
				return fmt.Errorf("%w: gpu %d measurement %d: %w", ErrResult, i, m.Index, err)
			}
			if b, _ := hex.DecodeString(m.Value); isZero(b) {
				return fmt.Errorf("%w: gpu %d measurement %d is zero (zero blocks are left out)", ErrResult, i, m.Index)
			}
			last = m.Index
		}
	}
	return nil
}

// checkHex requires s to be n bytes in lowercase hex.
func checkHex(s string, n int) error {
	if len(s) != 2*n {
		return fmt.Errorf("%d hex digits, want %d", len(s), 2*n)
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%q is not lowercase hex", s)
		}
	}
	return nil
}

// DecodeResult parses a canonical result, as a verifier replaying the RTMR3
// event log receives it: unknown members, other member orders, whitespace
// or any other non-canonical form fail with ErrResult.
func DecodeResult(b []byte) (*Result, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var r Result
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrResult, err)
	}
	if d.More() || d.InputOffset() != int64(len(b)) {
		return nil, fmt.Errorf("%w: data after the result object", ErrResult)
	}
	c, err := r.Canonical()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c, b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrResult)
	}
	return &r, nil
}
