// Package gpu is the GPU gate: the worker runs only on NVIDIA GPUs that are
// in confidential-computing (CC) mode, in the production environment, with
// developer tools off, and whose attestation evidence verifies against the
// pinned NVIDIA Device Identity CA.
//
// The package is pure Go. NVML, which needs cgo, sits behind the small NVML
// and Device interfaces; the real implementation is guest/gpu/nvml (go-nvml),
// the fake for tests is guest/gpu/gputest.
//
// # What the gate checks (Gate)
//
//  1. nvmlSystemGetConfComputeState: ccFeature enabled (else ErrCCOff),
//     devToolsMode off (else ErrDevTools), environment PROD (else
//     ErrNotProduction).
//  2. At least one GPU (else ErrNoGPU).
//  3. Per GPU, with a fresh 32-byte nonce from the caller's randomness:
//     nvmlDeviceGetConfComputeGpuAttestationReport and
//     nvmlDeviceGetConfComputeGpuCertificate, then Verify:
//     - the report parses as an SPDM 1.1 GET_MEASUREMENTS request followed
//     by its MEASUREMENTS response (DMTF DSP0274 1.1.0), strictly: exact
//     lengths, DMTF measurement blocks only, no trailing bytes (ErrReport);
//     - the attestation certificate chain (PEM, leaf first, root last) is a
//     valid X.509 path, in the order presented, ending in a pinned root
//     (ErrChain);
//     - the request nonce is ours (ErrNonce);
//     - the ECDSA P-384 / SHA-384 signature over request || response-
//     without-signature verifies with the leaf key (ErrSignature): SPDM 1.1
//     signs the L1/L2 transcript, which for NVIDIA's single-exchange report
//     is exactly those bytes (libspdm "standard all-measurements report");
//     - the FWID in the report's opaque data equals the FWID in the leaf's
//     2.23.133.5.4.1 extension when the report carries one (ErrChain);
//     - the driver and VBIOS versions in the signed opaque data equal what
//     NVML reports (ErrVersionMismatch).
//     These are the checks of NVIDIA's local verifier (nvtrust
//     guest_tools/gpu_verifiers/local_gpu_verifier, cc_admin_utils.py).
//  4. No two GPUs present the same certificate chain.
//  5. nvmlSystemSetConfComputeGpusReadyState(ACCEPTING_CLIENT_REQUESTS_TRUE),
//     read back (ErrReadyState). Any failure after step 1 clears the ready
//     state again, best effort: fail closed.
//
// Not checked here: revocation (OCSP) of the device certificates, and the
// measurements against NVIDIA's reference integrity manifests (RIMs). Both
// need NVIDIA's services; the Result records the measurement values and the
// certificate chain and report digests so that a remote verifier can apply
// such policy to what RTMR3 recorded.
//
// # Result
//
// Gate returns a Result whose Canonical encoding is measured into RTMR3 as
// the measure/runtime "gpu-attestation" event; see result.go for the exact
// encoding rules.
package gpu
