// Package ratls is remote-attested TLS: a worker proves, inside the TLS 1.3
// handshake, that the key it handshakes with was made by an attested
// Cocoon image, before a client sends it a private prompt.
//
// # Certificate
//
// The worker's certificate is self-signed with an Ed25519 key (RFC 8410,
// RFC 8032), valid for a short time (DefaultValidity, 1 hour), and carries
// two CRITICAL extensions (RFC 5280 §4.2: a verifier that does not
// understand them must refuse the certificate, so an RA-TLS certificate
// can never pass as a plain one):
//
//	OIDEvidence  1.3.6.1.4.1.32473.1.1  the attestation evidence (attest.Evidence)
//	OIDClaims    1.3.6.1.4.1.32473.1.2  the claims the evidence binds
//
// The arc 1.3.6.1.4.1.32473 is the Private Enterprise Number that RFC 5612
// reserves for documentation: a PLACEHOLDER, written once in OIDArc. Before
// production the project registers its own PEN with IANA and changes that
// one constant (the evidence and claims versions stay).
//
// # Claims (version 1)
//
// DER (ITU-T X.690), which is canonical by construction; a decoder here
// re-encodes what it read and refuses any other encoding of the same
// values, so the bytes hashed are the only encoding of the claims.
//
//	CocoonClaims ::= SEQUENCE {
//	    version     INTEGER (1),
//	    publicKey   OCTET STRING (SIZE (32)),   -- the certificate's raw Ed25519 key
//	    issuedAt    GeneralizedTime,            -- UTC, whole seconds ("YYYYMMDDHHMMSSZ")
//	    configHash  OCTET STRING (SIZE (32)),   -- SHA-256 of the guest's static config
//	    workerID    UTF8String (SIZE (1..256)),
//	    imageHash   [0] IMPLICIT OCTET STRING (SIZE (32)) OPTIONAL,  -- measure/imagehash
//	    nonce       [1] IMPLICIT OCTET STRING (SIZE (1..64)) OPTIONAL -- a verifier's challenge
//	}
//
// The evidence's report data (TDX REPORTDATA, TPM2_Quote qualifying data,
// 64 bytes) is SHA-512 of the claims' DER. The public key in the claims
// ties the quote to the TLS key; TLS 1.3's CertificateVerify (RFC 8446
// §4.4.3) proves the peer holds that key's private half in this
// handshake. Together: this connection ends in the attested TD.
//
// # Evidence (version 1)
//
//	CocoonEvidence ::= SEQUENCE {
//	    version     INTEGER (1),
//	    kind        UTF8String,                  -- attest.Kind: "tdx", "vtpm", "sim"
//	    quote       OCTET STRING,                -- TDX quote v4, or TPMS_ATTEST
//	    signature   [0] IMPLICIT OCTET STRING OPTIONAL,  -- TPMT_SIGNATURE (vtpm)
//	    akPublic    [1] IMPLICIT OCTET STRING OPTIONAL,  -- TPMT_PUBLIC (vtpm)
//	    pcrs        [2] IMPLICIT SEQUENCE OF PCRValue OPTIONAL,  -- ascending index, no repeats
//	    eventLog    [3] IMPLICIT OCTET STRING OPTIONAL,  -- firmware CCEL / TCG log
//	    runtimeLog  [4] IMPLICIT OCTET STRING OPTIONAL   -- measure/runtime JSON lines
//	}
//	PCRValue ::= SEQUENCE { index INTEGER (0..23), digest OCTET STRING }
//
// The evidence is not hashed into anything: the quote inside it is signed
// by the platform and carries the report data.
//
// # Verification
//
// Verifier.VerifyPeerCertificate (for tls.Config) and Verifier.Verify
// check, in order: the certificate parses, is Ed25519, self-signed, not a
// CA (ErrCertificate); every critical extension is one of ours
// (ErrUnknownCritical); both of ours are present (ErrNoEvidence) and decode
// (ErrMalformed); its validity is at most MaxValidity (ErrCertificate) and
// contains the injected clock's now, give or take Skew (ErrExpired); the
// claims' key is the certificate's key, the issue time lies in the
// validity, the nonce is the one asked for (ErrBinding); then the evidence
// verifier for its kind checks that the evidence is genuine (ErrQuote),
// binds SHA-512(claims) (ErrBinding) and satisfies the policy (ErrPolicy,
// wrapping measure/policy's error); last, the claimed image hash and config
// hash must be what the evidence measured (ErrBinding). Accepted
// certificates are cached, by SHA-256 of their DER, until they expire.
//
// Evidence verifiers: TDXVerifier (measure/quote's Verifier, then
// measure/policy), SimVerifier (guest/attest/sim.Verify against a pinned
// simulator root, then measure/policy with Evidence.Simulated, which only
// a policy with allow_simulated accepts), and VTPMVerifier (below).
//
// # vTPM evidence (development boot path)
//
// VTPMVerifier checks evidence of QEMU + swtpm guests with
// guest/attest/vtpm.Verify (the AK's signature over the TPMS_ATTEST, the
// PCR values against the quoted digest; the qualifying data must be
// SHA-256 of the report data, else ErrBinding) and then a VTPMPolicy
// ("cocoon-vtpm-policy/v1", LoadVTPMPolicy): the AK must be one the policy
// pins, and the quoted PCRs must match one allowlisted PCR set (PCRs 4 and
// 9 as `cocoon measure tpm` predicts them, optionally 15), else ErrPolicy.
// The runtime log must replay to the quoted PCR 15, so the claims' config
// hash is checked against its static-config event, as with TDX's RTMR3.
//
// Nobody certifies a vTPM's attestation key: whoever runs swtpm can quote
// anything with a key of their own. Pinning the AK names recorded on a
// machine you control is what gives the evidence meaning; a policy with
// allow_any_ak accepts any key and is for development only. There is no
// image hash on this path (it hashes TDX registers): a certificate that
// claims one is refused.
//
// # TLS
//
// ServerConfig and ClientConfig make TLS 1.3-only configurations.
// The client sets InsecureSkipVerify: Go then skips web-PKI chain building
// and name checks, which an RA-TLS certificate cannot pass (it is
// self-signed, and its trust comes from the quote, not from a CA), and
// still calls VerifyPeerCertificate with the peer's certificate, where our
// verifier does every check above and fails the handshake on any error.
// Nothing is skipped that applies; the one thing left to Go is what it
// always does, checking CertificateVerify with the certificate's key.
// Session tickets are off on the server, so no connection resumes without
// its certificate being verified again.
package ratls
