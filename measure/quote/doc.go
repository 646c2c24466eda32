// Package quote verifies that an Intel TDX quote is genuine: a well-formed
// DCAP quote v4 whose ECDSA signature chains to Intel's SGX Root CA, checked
// at a time the caller passes in, optionally against Intel's collateral (TCB
// info, QE identity, CRLs).
//
// It answers "was this produced by a real, up-to-date TDX platform?" and
// nothing else. Whether the quoted TD is one we want to talk to (its image
// hash, registers, attributes, report data) is measure/policy's question;
// keep the two apart, as go-tdx-guest keeps verify apart from validate.
//
// The work is go-tdx-guest's (abi.QuoteToProto, verify.TdxQuote); this
// package pins the trust root, takes the clock and the network from the
// caller, feeds caller-held collateral to go-tdx-guest without a network,
// and sorts go-tdx-guest's errors into our typed errors:
//
//	ErrMalformed    not a TDX quote v4: truncated, wrong version or TEE type, bad sizes
//	ErrSignature    the quote or QE report signature, or the QE report data, does not verify
//	ErrCertificate  the PCK certificate chain does not verify to Intel's root, or is revoked
//	ErrCollateral   collateral missing, malformed, not signed by Intel, or rejecting the platform
//	ErrTCBStatus    (also ErrCollateral) the platform's TCB level is not UpToDate in the TCB info
//	ErrExpired      a certificate or collateral is outside its validity at Options.Now
//	                (always with ErrCertificate or ErrCollateral, saying which)
//
// Each wraps go-tdx-guest's own error, so its text is in the message.
//
// Without collateral, Verify also pins the quoting enclave (MRSIGNER of
// Intel's TD QE, ISVPRODID 2, not a debug enclave), which go-tdx-guest only
// checks against the QE identity collateral; a mismatch is ErrSignature.
// Offline verification does not check TCB level or revocation: pass
// Collateral (or a Getter) wherever a stale or revoked platform matters.
//
// A registry that verifies many quotes uses a Verifier (NewVerifier): the
// same checks and errors, with verified PCK chains, collateral signatures
// and CRLs kept between calls and everything that depends on the quote or
// on the time checked at each call: about 6,500 quotes/s per core where
// Verify does 570 with collateral and 1,700 without (bench_test.go; two
// ECDSA verifications are most of what is left). Verifier's documentation
// lists where it deliberately differs from Verify.
//
// Quote layout (Intel TDX DCAP Quote Generation Library and Quote
// Verification Library spec, "Quote Format" for version 4): a 48-byte header
// (version 4 at offset 0, attestation key type 2 = ECDSA P-256 at 2, TEE type
// 0x81 = TDX at 4), the 584-byte TD quote body (the TD report's measurements),
// a 4-byte signed data size, then the signed data: ECDSA signature over
// header||body, the attestation key, and certification data type 6 holding
// the QE report, its signature by the PCK key, QE authentication data, and
// the PCK certificate chain (PEM, leaf first). Bytes after the signed data
// are not covered by any signature; Verify drops them (QuoteV4.ExtraBytes).
package quote
