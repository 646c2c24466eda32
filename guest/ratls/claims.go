package ratls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/asn1"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// OIDArc is the arc of our certificate extensions: RFC 5612's documentation
// PEN 32473, a PLACEHOLDER until the project registers its own (see the
// package documentation). Change it here only.
var OIDArc = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1}

// Our extensions, under OIDArc.
var (
	OIDEvidence = sub(OIDArc, 1)
	OIDClaims   = sub(OIDArc, 2)
)

func sub(arc asn1.ObjectIdentifier, n int) asn1.ObjectIdentifier {
	return append(arc[:len(arc):len(arc)], n)
}

// Versions of the encodings (the first field of each).
const (
	ClaimsVersion   = 1
	EvidenceVersion = 1
)

// Limits of the claims.
const (
	MaxWorkerID = 256
	MaxNonce    = 64
)

// Claims are what the evidence vouches for (package documentation,
// "Claims"). Decoded claims share no memory with the certificate.
type Claims struct {
	// PublicKey is the certificate's Ed25519 key; NewCertificate fills it.
	PublicKey ed25519.PublicKey
	// IssuedAt is the issue time, UTC, whole seconds; NewCertificate fills
	// it from its clock, and it is the certificate's NotBefore.
	IssuedAt time.Time
	// ConfigHash is SHA-256 of the guest's static config, the payload the
	// init extends into RTMR3 as a static-config event.
	ConfigHash [32]byte
	// WorkerID names the worker (1 to 256 bytes of UTF-8).
	WorkerID string
	// ImageHash, when set, is the image hash (measure/imagehash) the worker
	// claims; verification requires it to be the quote's.
	ImageHash *[32]byte
	// Nonce, when set (1 to 64 bytes), answers a verifier's challenge.
	Nonce []byte
}

// claimsDER is the ASN.1 form; field order and tags as documented.
type claimsDER struct {
	Version    int
	PublicKey  []byte
	IssuedAt   time.Time `asn1:"generalized"`
	ConfigHash []byte
	WorkerID   string `asn1:"utf8"`
	ImageHash  []byte `asn1:"optional,omitempty,tag:0"`
	Nonce      []byte `asn1:"optional,omitempty,tag:1"`
}

// Validate checks the claims' sizes and values.
func (c *Claims) Validate() error {
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: claims public key is %d bytes, want %d (Ed25519)", ErrMalformed, len(c.PublicKey), ed25519.PublicKeySize)
	}
	if c.IssuedAt.IsZero() || c.IssuedAt.Nanosecond() != 0 || c.IssuedAt.Year() < 1950 || c.IssuedAt.Year() > 9999 {
		return fmt.Errorf("%w: claims issue time %v, want whole seconds in years 1950-9999", ErrMalformed, c.IssuedAt)
	}
	if n := len(c.WorkerID); n == 0 || n > MaxWorkerID || !utf8.ValidString(c.WorkerID) {
		return fmt.Errorf("%w: worker ID of %d bytes, want 1 to %d bytes of UTF-8", ErrMalformed, n, MaxWorkerID)
	}
	if c.Nonce != nil && (len(c.Nonce) == 0 || len(c.Nonce) > MaxNonce) {
		return fmt.Errorf("%w: nonce of %d bytes, want 1 to %d", ErrMalformed, len(c.Nonce), MaxNonce)
	}
	return nil
}

// Marshal returns the claims' DER, the bytes whose SHA-512 is the report
// data.
func (c *Claims) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := claimsDER{
		Version:    ClaimsVersion,
		PublicKey:  c.PublicKey,
		IssuedAt:   c.IssuedAt.UTC(),
		ConfigHash: c.ConfigHash[:],
		WorkerID:   c.WorkerID,
		Nonce:      c.Nonce,
	}
	if c.ImageHash != nil {
		d.ImageHash = c.ImageHash[:]
	}
	b, err := asn1.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	return b, nil
}

// ReportData is SHA-512 of the claims' DER: the 64 bytes the evidence binds.
func ReportData(claimsDER []byte) [attest.ReportDataSize]byte {
	return sha512.Sum512(claimsDER)
}

// ParseClaims decodes claims, refusing any encoding but the canonical DER
// of what it decodes to. Errors wrap ErrMalformed.
func ParseClaims(der []byte) (Claims, error) {
	var d claimsDER
	rest, err := asn1.Unmarshal(der, &d)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return Claims{}, fmt.Errorf("%w: claims: %d bytes after the DER value", ErrMalformed, len(rest))
	}
	if d.Version != ClaimsVersion {
		return Claims{}, fmt.Errorf("%w: claims version %d, want %d", ErrMalformed, d.Version, ClaimsVersion)
	}
	if len(d.ConfigHash) != 32 {
		return Claims{}, fmt.Errorf("%w: config hash is %d bytes, want 32", ErrMalformed, len(d.ConfigHash))
	}
	c := Claims{
		PublicKey: bytes.Clone(d.PublicKey),
		IssuedAt:  d.IssuedAt.UTC(),
		WorkerID:  d.WorkerID,
		Nonce:     bytes.Clone(d.Nonce),
	}
	copy(c.ConfigHash[:], d.ConfigHash)
	if d.ImageHash != nil {
		if len(d.ImageHash) != 32 {
			return Claims{}, fmt.Errorf("%w: image hash is %d bytes, want 32", ErrMalformed, len(d.ImageHash))
		}
		c.ImageHash = (*[32]byte)(bytes.Clone(d.ImageHash))
	}
	if err := c.Validate(); err != nil {
		return Claims{}, err
	}
	// DER has one encoding per value; BER, UTCTime, a PrintableString or
	// an empty optional field would decode to the same claims from other
	// bytes, and the hash would then depend on which.
	again, err := c.Marshal()
	if err != nil {
		return Claims{}, err
	}
	if !bytes.Equal(again, der) {
		return Claims{}, fmt.Errorf("%w: claims are not in canonical DER", ErrMalformed)
	}
	return c, nil
}
