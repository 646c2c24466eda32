// Package policy decides whether a verified TDX quote is one we accept: the
// right image, in the right TD configuration, bound to the right session.
// Whether the quote is genuine is measure/quote's job; Validate assumes it
// was asked first (or that the caller knowingly passes simulator evidence).
//
// # Policy file
//
// A policy is a JSON object; unknown fields are errors, and so is any hex
// value of the wrong length. A full example (the test suite parses it):
//
//	{
//	  "schema": "cocoon-policy/v1",
//	  "allow_simulated": false,
//	  "allow_debug": false,
//	  "image_hashes": [
//	    "69aaad308a05d8033b2f6b776a83f85376860325d1bd2280d820b942b2734a51"
//	  ],
//	  "measurements": [
//	    {
//	      "mrtd": "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb",
//	      "rtmr0": "2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a",
//	      "rtmr1": "2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61",
//	      "rtmr2": "8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e",
//	      "rtmr3": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
//	    }
//	  ],
//	  "td_attributes": {"sept_ve_disable": false, "pks": true, "perfmon": false},
//	  "xfam": "e71a060000000000",
//	  "mr_config_id": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
//	  "mr_owner": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
//	  "mr_owner_config": "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
//	  "min_tee_tcb_svn": "03000400000000000000000000000000"
//	}
//
// (These are the values of go-tdx-guest's sample production quote, which
// the tests validate against this very policy. That TD runs without
// SEPT_VE_DISABLE; a policy for Cocoon's own image wants it true, since
// Linux refuses to run as a TD guest without it unless debugging.)
//
// Fields:
//
//   - schema (required): exactly "cocoon-policy/v1".
//   - allow_simulated: accept evidence the caller marks as coming from the TDX
//     simulator (Evidence.Simulated), which no Intel key signed. For
//     development only; false by default.
//   - allow_debug: accept TDs with any TUD bit set (TDATTRIBUTES bits 7:0,
//     "TD under debug": DEBUG and the profiling bits). A debug TD's memory and
//     registers are readable by the host, so it proves nothing; false by
//     default, and Validate refuses such TDs with ErrDebug.
//   - image_hashes: allowlisted image hashes, 64 hex digits each
//     (measure/imagehash: SHA-256 over TDATTRIBUTES, XFAM, MRTD, RTMR0-3).
//   - measurements: allowlisted register sets, each with all five of mrtd,
//     rtmr0, rtmr1, rtmr2, rtmr3 (96 hex digits each, exact match).
//     At least one of image_hashes and measurements must be non-empty; a
//     quote is accepted when it matches any listed hash or any listed set.
//     An image hash also pins TDATTRIBUTES and XFAM exactly; a measurement
//     set does not, so pair it with td_attributes and xfam.
//   - td_attributes: named TDATTRIBUTES flags the TD must have (true) or must
//     not have (false); flags not named are not checked. Names and bits (TDX
//     module ABI spec, "TD Attributes Definition"; the same bits as Linux's
//     arch/x86/include/asm/shared/tdx.h): icssd 16, lass 27,
//     sept_ve_disable 28, migratable 29, pks 30, kl 31 (the SEC group, bits
//     31:8: may affect the TD's security), tpa 62, perfmon 63 (the OTHER
//     group). There is no "debug" flag here: debug is allow_debug's alone.
//     Independently of this object, SEC-group bits that the spec leaves
//     reserved must be 0 (a newer TDX module's security-relevant feature is
//     refused until we name it).
//   - xfam: the exact XFAM, 16 hex digits, bytes as in the quote
//     (little-endian).
//   - mr_config_id, mr_owner, mr_owner_config: exact values, 96 hex digits.
//     The host sets these when it creates the TD; they are not part of the
//     image hash, so a policy that relies on them must list them here.
//   - min_tee_tcb_svn: TEE_TCB_SVN must be at least this, byte by byte (32
//     hex digits, the rule of go-tdx-guest's validate). The authoritative TCB
//     check is Intel's TCB info in measure/quote with collateral.
//
// Report data is not in the file: it is per session (a nonce, or the hash of
// the key RA-TLS binds), so Validate takes it as an argument.
//
// Hex is case-insensitive on input and written lower-case.
package policy
