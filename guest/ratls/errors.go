package ratls

import "errors"

// Typed errors; test with errors.Is. Every verification failure matches
// exactly one of them (ErrPolicy also matches measure/policy's own error,
// such as policy.ErrSimulated or policy.ErrDebug).
var (
	// ErrCertificate: not an RA-TLS certificate we accept: it does not
	// parse, is not Ed25519, not self-signed, a CA, too large, valid for
	// too long, or one of our extensions is not critical.
	ErrCertificate = errors.New("ratls: bad certificate")
	// ErrUnknownCritical: a critical extension that is not ours (RFC 5280
	// §4.2: a certificate with a critical extension the verifier does not
	// process must be rejected).
	ErrUnknownCritical = errors.New("ratls: unknown critical extension")
	// ErrNoEvidence: the evidence or the claims extension is missing.
	ErrNoEvidence = errors.New("ratls: no attestation evidence")
	// ErrMalformed: the evidence or the claims do not decode (wrong
	// version, not canonical DER, bad sizes).
	ErrMalformed = errors.New("ratls: malformed evidence or claims")
	// ErrExpired: the certificate is outside its validity at the
	// verifier's clock, skew allowed for.
	ErrExpired = errors.New("ratls: certificate outside its validity period")
	// ErrBinding: the claims and the certificate, the evidence, or the
	// verifier's challenge disagree: report data is not SHA-512(claims),
	// the claimed key is not the certificate's, the claimed image or
	// config hash is not what was measured, the nonce is not the one asked.
	ErrBinding = errors.New("ratls: evidence not bound to this certificate")
	// ErrQuote: the evidence is not genuine (signature, chain, collateral),
	// or no verifier is configured for its kind.
	ErrQuote = errors.New("ratls: evidence does not verify")
	// ErrPolicy: genuine evidence of a TD the policy does not accept.
	ErrPolicy = errors.New("ratls: policy refuses the evidence")
)
