package api

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// verifySig checks sig (hex) over domain || JSON(v) by pub.
func verifySig(pub ed25519.PublicKey, domain string, v any, sig string) error {
	raw, err := hex.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fail(http.StatusBadRequest, CodeBadSignature, nil, "sig is not %d bytes of hex", ed25519.SignatureSize)
	}
	m, err := wire.SignedMessage(domain, v)
	if err != nil {
		return fail(http.StatusBadRequest, CodeBadRequest, err, "cannot encode the signed message: %v", err)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, m, raw) {
		return fail(http.StatusForbidden, CodeBadSignature, nil,
			"signature does not verify with the key %x over %q followed by the signed object's JSON", []byte(pub), domain)
	}
	return nil
}

// checkFresh refuses a signed time more than MaxClockSkew from now.
func checkFresh(atMS int64, now time.Time) error {
	at := time.UnixMilli(atMS)
	if d := now.Sub(at); d > MaxClockSkew || d < -MaxClockSkew {
		return fail(http.StatusBadRequest, CodeStale, nil, "at %s is %v from the registry's clock %s, at most %v allowed",
			at.UTC().Format(time.RFC3339Nano), d.Round(time.Millisecond), now.UTC().Format(time.RFC3339Nano), MaxClockSkew)
	}
	return nil
}

// parseID checks a worker ID from a path (64 lower-case hex digits); a
// malformed one names no worker.
func parseID(id string) error {
	if len(id) != 2*sha256.Size || !isLowerHex(id) {
		return fail(http.StatusNotFound, CodeUnknownWorker, nil, "no worker %q: IDs are 64 lower-case hex digits", truncate(id, 80))
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// hexKey decodes a stored worker key.
func hexKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("stored public key %q is not %d hex bytes", truncate(s, 80), ed25519.PublicKeySize)
	}
	return b, nil
}
