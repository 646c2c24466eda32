// Package sim is a TDX QUOTE SIMULATOR. IT IS NOT ATTESTATION.
//
//	!!! SIMULATOR: no TDX hardware, no TDX module, no Intel key. !!!
//	!!! Every quote it makes is signed by a TEST key that anyone   !!!
//	!!! running the simulator holds; it proves nothing about the   !!!
//	!!! machine that produced it.                                  !!!
//
// It exists so that the code around attestation (RA-TLS, the registry, the
// client's policy checks, the demo) runs and is tested on machines without
// TDX. Its quotes are byte-for-byte in the real Intel TDX DCAP quote v4
// layout (Intel TDX DCAP Quoting Library API, "Quote Format" for version 4):
//
//	header             48 bytes: version 4, attestation key type 2 (ECDSA P-256),
//	                   TEE type 0x81 (TDX), QE vendor ID, user data
//	TD quote body     584 bytes: TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM, SEAMATTRIBUTES,
//	                   TDATTRIBUTES, XFAM, MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG,
//	                   RTMR0-3, REPORTDATA
//	signed data size    4 bytes
//	signed data:       ECDSA P-256 signature (r||s) over SHA-256(header || body) by the
//	                   attestation key; the attestation key (x||y); certification data
//	                   type 6 (QE report certification data): the 384-byte QE report
//	                   (an SGX REPORT body), its ECDSA signature by the PCK key, QE
//	                   authentication data, and certification data type 5: the PCK
//	                   certificate chain in PEM, leaf first
//
// so that measure/quote.Parse and go-tdx-guest's abi read them, and the
// same policy code (measure/policy) judges their measurements.
//
// The keys are TEST keys: an attestation key, a "PCK" key and a three-level
// certificate chain (root CA, platform CA, PCK leaf with Intel's SGX
// extensions) generated from a 32-byte seed, random (Options.Rand) or fixed
// (Options.Seed) for reproducible tests. The certificates carry the common
// names that DCAP verifiers expect ("Intel SGX Root CA", "Intel SGX PCK
// Platform CA", "Intel SGX PCK Certificate"), so an independent verifier
// checks their structure, but their organisation says "Cocoon TDX quote
// SIMULATOR (TEST KEY, NOT INTEL)", their key is not Intel's, and the QE
// report names a quoting enclave (MRSIGNER QEMRSigner) that is not
// Intel's. measure/quote.Verify, which pins Intel's root key, rejects every
// simulated quote (tested).
//
// Verify checks a simulated quote against the simulator's root, which the
// caller pins: the attestation key's signature, the QE report's signature
// by the PCK key, the QE report data binding the attestation key, and the
// chain to the given root. It tells a tampered simulated quote from an
// intact one; it does not make one trustworthy. Its results go to
// measure/policy with Evidence.Simulated = true, which every policy without
// "allow_simulated" refuses.
//
// The register side is init/measured.Fake: MRTD and RTMR0-2 as configured,
// RTMR3 extended by Extend with measure/runtime events, whose log the
// evidence carries (Evidence.RuntimeLog) for a verifier to replay.
package sim
