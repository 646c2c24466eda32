// Package receipt makes the worker's signed work receipts: one per served
// request, saying which worker served which model and how many tokens,
// with a commitment to the request instead of its content. The registry
// pays from them, and because each is signed by the key of the worker's
// RA-TLS certificate (bound to its attestation), anyone holding the
// registry's books can check every credited token against a key an
// attested appliance held.
//
// Receipts are numbered by the Store that keeps them (Seq, from 1, rising
// by one per receipt; a store that outlives a key, across reboots, keeps
// counting, so one key's numbers may have gaps) in an append-only journal
// on disk until the registry acknowledges them. A receipt is made after
// its response is sent (keeping an fsync off the latency path) and is on
// disk (fsync) before it is offered to the registry: a crash in between
// loses that one receipt, so the worker is at worst under-paid, never
// paid twice. Resending after a crash is idempotent because the registry
// keys receipts by (worker key, Seq), and an acknowledged receipt is never
// sent again.
package receipt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Version is the receipt format version.
const Version = 1

// domain separates receipt signatures from any other use of the key
// (the same Ed25519 key signs the RA-TLS certificate).
const domain = "cocoon-receipt/v1\x00"

// Errors.
var (
	ErrInvalid   = errors.New("receipt: invalid receipt")
	ErrSignature = errors.New("receipt: bad signature")
)

// Usage is the token counts of one request (OpenAI's usage object).
type Usage struct {
	Prompt     int64 `json:"prompt"`
	Cached     int64 `json:"cached"`
	Completion int64 `json:"completion"`
	Reasoning  int64 `json:"reasoning"`
}

// Receipt is the signed statement. Field order is the canonical JSON
// order: do not reorder.
type Receipt struct {
	V int `json:"v"`
	// Worker is the hex Ed25519 public key of the RA-TLS certificate.
	Worker string `json:"worker"`
	Seq    uint64 `json:"seq"`
	// Request is the gateway's request ID.
	Request string `json:"request"`
	Model   string `json:"model"`
	Usage   Usage  `json:"usage"`
	// Start and End are Unix milliseconds.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Commitment is HMAC-SHA256 of the request body under a worker-held
	// key (guest/gateway): it lets the client, who knows the body and is
	// given the key's output, recognise its receipt; it reveals nothing
	// about the content to the registry.
	Commitment string `json:"commitment"`
	Cancelled  bool   `json:"cancelled,omitempty"`
}

// Signed is a receipt with its signature, as stored and sent.
type Signed struct {
	Receipt   Receipt `json:"receipt"`
	Signature string  `json:"sig"` // hex Ed25519 signature over domain || canonical receipt
}

// Validate checks field syntax and bounds.
func (r *Receipt) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(f, a...)) }
	switch {
	case r.V != Version:
		return bad("version %d, want %d", r.V, Version)
	case !isHex(r.Worker, ed25519.PublicKeySize):
		return bad("worker %q, want %d hex bytes", r.Worker, ed25519.PublicKeySize)
	case r.Seq == 0:
		return bad("seq 0; receipts are numbered from 1")
	case r.Request == "" || len(r.Request) > 128 || !utf8.ValidString(r.Request):
		return bad("request id %q, want 1..128 bytes of UTF-8", r.Request)
	case r.Model == "" || len(r.Model) > 256 || !utf8.ValidString(r.Model):
		return bad("model %q, want 1..256 bytes of UTF-8", r.Model)
	case r.Usage.Prompt < 0 || r.Usage.Cached < 0 || r.Usage.Completion < 0 || r.Usage.Reasoning < 0:
		return bad("negative token count %+v", r.Usage)
	case r.Usage.Cached > r.Usage.Prompt:
		return bad("cached tokens %d exceed prompt tokens %d", r.Usage.Cached, r.Usage.Prompt)
	case r.Usage.Reasoning > r.Usage.Completion:
		return bad("reasoning tokens %d exceed completion tokens %d", r.Usage.Reasoning, r.Usage.Completion)
	case r.Start <= 0 || r.End < r.Start:
		return bad("times start %d end %d", r.Start, r.End)
	case !isHex(r.Commitment, 32):
		return bad("commitment %q, want 32 hex bytes", r.Commitment)
	}
	return nil
}

func isHex(s string, n int) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == n && s == strings.ToLower(s)
}

// message is what is signed.
func (r *Receipt) message() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	j, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append([]byte(domain), j...), nil
}

// Sign signs r with key; r.Worker must be key's public key.
func Sign(r Receipt, key ed25519.PrivateKey) (Signed, error) {
	if pub := hex.EncodeToString(key.Public().(ed25519.PublicKey)); r.Worker != pub {
		return Signed{}, fmt.Errorf("%w: worker %s is not the signing key %s", ErrInvalid, r.Worker, pub)
	}
	m, err := r.message()
	if err != nil {
		return Signed{}, err
	}
	return Signed{Receipt: r, Signature: hex.EncodeToString(ed25519.Sign(key, m))}, nil
}

// Verify checks the receipt and its signature by the worker key it names.
// Whether that key belongs to an attested worker is the caller's question.
func (s *Signed) Verify() error {
	m, err := s.Receipt.message()
	if err != nil {
		return err
	}
	pub, _ := hex.DecodeString(s.Receipt.Worker) // Validate checked it
	sig, err := hex.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature %q is not %d hex bytes", ErrSignature, s.Signature, ed25519.SignatureSize)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), m, sig) {
		return fmt.Errorf("%w: receipt %d of worker %s", ErrSignature, s.Receipt.Seq, s.Receipt.Worker)
	}
	return nil
}

// maxEncoded bounds one encoded signed receipt.
const maxEncoded = 4096

// Decode parses one signed receipt (strict JSON) and verifies it.
func Decode(r io.Reader) (*Signed, error) {
	var s Signed
	if err := strictjson.Decode(r, maxEncoded, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.Verify(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Encode is the JSON of s, as Decode reads it.
func (s *Signed) Encode() ([]byte, error) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
