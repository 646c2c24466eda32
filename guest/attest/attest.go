// Package attest is the appliance's attestation interface: one small
// Provider per kind of evidence (Intel TDX through configfs-tsm, a vTPM
// through go-tpm, and a clearly labelled TDX quote simulator for tests and
// the demo), and the Evidence they produce for 64 bytes of report data.
//
// The register side (read, event log, extend the runtime register) is the
// same interface the init uses (init/measured.Registers); a Provider adds
// quoting. Verification of evidence lives beside each provider (tdx: measure/quote and
// measure/policy; vtpm: the TPM2_Quote signature and PCR digest; sim: the
// simulator's test chain, accepted only where a policy allows simulation).
package attest

import (
	"context"
	"errors"

	"github.com/cocoon-appliance/cocoon/init/measured"
)

// Kind names a kind of evidence. The strings are part of the RA-TLS
// certificate format: never change them.
type Kind string

// Kinds.
const (
	TDX  Kind = "tdx"  // Intel TDX quote v4 from configfs-tsm
	VTPM Kind = "vtpm" // TPM2_Quote by an attestation key, with PCR values
	Sim  Kind = "sim"  // TDX quote v4 from the simulator: a test key signed it, not Intel
)

// ReportDataSize is the size of TDX REPORTDATA and of the TPM2_Quote
// qualifying data we use.
const ReportDataSize = 64

// Errors.
var (
	// ErrUnavailable: this machine has no such device or kernel interface.
	ErrUnavailable = errors.New("attest: provider not available on this machine")
	// ErrEvidence: evidence is malformed (wrong sizes, bad encoding).
	ErrEvidence = errors.New("attest: malformed evidence")
)

// Evidence is what a provider returns for one report data value. Fields a
// kind does not use stay empty.
type Evidence struct {
	Kind Kind `json:"kind"`
	// Quote is the raw TDX quote (TDX, Sim) or the marshalled TPMS_ATTEST
	// that TPM2_Quote signed (VTPM).
	Quote []byte `json:"quote"`
	// Signature is the marshalled TPMT_SIGNATURE over Quote (VTPM).
	Signature []byte `json:"signature,omitempty"`
	// AKPublic is the marshalled TPMT_PUBLIC of the attestation key (VTPM).
	AKPublic []byte `json:"ak_public,omitempty"`
	// PCRs are the quoted SHA-256 PCR values by index (VTPM).
	PCRs map[int][]byte `json:"pcrs,omitempty"`
	// EventLog is the firmware event log (CCEL or TCG), for a verifier to
	// replay; RuntimeLog is measure/runtime's JSON lines.
	EventLog   []byte `json:"event_log,omitempty"`
	RuntimeLog []byte `json:"runtime_log,omitempty"`
}

// Provider quotes and measures.
type Provider interface {
	measured.Registers
	// Quote returns evidence binding reportData.
	Quote(ctx context.Context, reportData [ReportDataSize]byte) (*Evidence, error)
}
