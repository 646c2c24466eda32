package gpu

import "errors"

// Errors. Every failure of Gate and Verify wraps one of these (tests use
// errors.Is); the message around it says what was expected and what was
// found.
var (
	// ErrCCOff: the driver reports the confidential-computing feature
	// disabled.
	ErrCCOff = errors.New("gpu: confidential computing is off")
	// ErrDevTools: CC is on but in developer-tools mode, where the GPU
	// exposes debugging and profiling to the host: not confidential.
	ErrDevTools = errors.New("gpu: confidential computing is in devtools mode")
	// ErrNotProduction: the CC environment is not PROD (SIM or unavailable).
	ErrNotProduction = errors.New("gpu: confidential computing environment is not production")
	// ErrNoGPU: NVML lists no GPU.
	ErrNoGPU = errors.New("gpu: no NVIDIA GPU")
	// ErrNoDriver: the NVIDIA driver (libnvidia-ml.so.1) is not installed or
	// not loaded.
	ErrNoDriver = errors.New("gpu: no NVIDIA driver")
	// ErrNonce: the attestation report answers another nonce than ours.
	ErrNonce = errors.New("gpu: attestation report nonce mismatch")
	// ErrSignature: the report's SPDM signature does not verify with the
	// leaf certificate's key.
	ErrSignature = errors.New("gpu: attestation report signature invalid")
	// ErrChain: the certificate chain is malformed, does not verify to a
	// pinned root, or does not belong to the report (FWID).
	ErrChain = errors.New("gpu: attestation certificate chain invalid")
	// ErrReport: the attestation report is malformed.
	ErrReport = errors.New("gpu: malformed attestation report")
	// ErrVersionMismatch: the signed report names another driver or VBIOS
	// version than the one NVML reports.
	ErrVersionMismatch = errors.New("gpu: attestation report version mismatch")
	// ErrReadyState: setting the CC "GPUs ready" state did not take.
	ErrReadyState = errors.New("gpu: could not set GPUs ready state")
	// ErrResult: a Result encoding is malformed or not canonical.
	ErrResult = errors.New("gpu: malformed result")
)
