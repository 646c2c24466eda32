// Package imagehash defines the image hash: the one 32-byte value that
// registries allowlist for a Cocoon worker image, and clients look for in a
// worker's verified TDX quote.
//
// The image hash is SHA-256 over a fixed-layout buffer of 277 bytes, built
// from fields of the TD report (TDREPORT_STRUCT.TDINFO, TDX module ABI spec;
// the same fields sit in the TD quote body of an Intel TDX DCAP quote v4,
// "TD Quote Body" table of the Quote Generation Library and Quote
// Verification spec). Every field is copied byte for byte, in the byte order
// it has in the report; nothing is reordered or converted:
//
//	offset  size  field
//	     0    21  domain separator, ASCII "cocoon-image-hash/v1" and one 0x00 byte
//	    21     8  TDATTRIBUTES (quote body offset 0x78)
//	    29     8  XFAM         (quote body offset 0x80)
//	    37    48  MRTD         (quote body offset 0x88)
//	    85    48  RTMR0        (quote body offset 0x148)
//	   133    48  RTMR1        (quote body offset 0x178)
//	   181    48  RTMR2        (quote body offset 0x1A8)
//	   229    48  RTMR3        (quote body offset 0x1D8)
//	   277        end
//
// Why these fields: MRTD is the firmware (TDVF) as loaded by the TDX module;
// RTMR0-3 are what firmware, kernel, command line and initrd measured at boot
// (see measure/tdx for their prediction); TDATTRIBUTES and XFAM say how the
// TD was configured (debug, SEPT #VE, PKS, the CPU state features it may use)
// and change what the measured code can be made to do, so the same image in a
// different TD configuration is a different identity.
//
// What is left out, on purpose:
//   - REPORTDATA: per quote (a nonce, or the RA-TLS key binding), never part
//     of an image's identity. Policies check it per session, with the value
//     the caller expects (measure/policy, Validate's reportData).
//   - MRCONFIGID, MROWNER, MROWNERCONFIG: set by whoever launches the TD (the
//     host passes them to TDH.MNG.INIT), not measured from the image. The same
//     image launched for two owners must keep one image hash; a policy checks
//     these separately, as exact values, when it cares (measure/policy).
//   - TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM, SEAMATTRIBUTES: the TDX module and the
//     platform, not the image; quote verification and policy cover them.
//
// The domain separator keeps this hash from being confused with any other
// SHA-256 over similar bytes, and its "/v1" names this layout: a different
// layout gets a different separator, never a silent change.
//
// Reference: the known-answer tests recompute the hash with printf, dd and
// sha256sum (commands in imagehash_test.go).
package imagehash
