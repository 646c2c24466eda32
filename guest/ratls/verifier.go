package ratls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

const (
	// DefaultSkew is Verifier.Skew when 0: the clock difference tolerated
	// at both ends of a certificate's validity.
	DefaultSkew = time.Minute
	// DefaultMaxValidity is Verifier.MaxValidity when 0.
	DefaultMaxValidity = 24 * time.Hour
	// DefaultCacheSize is Verifier.CacheSize when 0.
	DefaultCacheSize = 1024
)

// Verifier verifies RA-TLS certificates (package documentation,
// "Verification"). Set its fields, then use it; do not change or copy it
// after the first verification. It is safe for concurrent use.
type Verifier struct {
	// Evidence holds the verifier of each kind of evidence accepted;
	// evidence of any other kind is refused (ErrQuote).
	Evidence map[attest.Kind]EvidenceVerifier
	// Now is the clock (required).
	Now func() time.Time
	// Skew is tolerated at both ends of the validity; 0 means
	// DefaultSkew, negative means none.
	Skew time.Duration
	// MaxValidity refuses certificates valid for longer (a stolen key
	// with a long-lived certificate outlives the TD); 0 means
	// DefaultMaxValidity.
	MaxValidity time.Duration
	// Nonce, when set, must be the claims' nonce: a challenge the verifier
	// sent the worker, which shows the certificate was made after it.
	Nonce []byte
	// CacheSize bounds the cache of accepted certificates; 0 means
	// DefaultCacheSize, negative disables the cache.
	CacheSize int

	mu           sync.Mutex
	cache        *lru
	hits, misses uint64
}

// Result is an accepted certificate. Results may be shared between calls
// (the cache): treat them as read-only.
type Result struct {
	Claims   Claims
	Evidence *attest.Evidence
	Attested *Attested
	// NotBefore and NotAfter are the certificate's validity; a cached
	// result is used only inside it (with Skew).
	NotBefore, NotAfter time.Time
}

// CacheStats counts cache use since the Verifier was made.
type CacheStats struct {
	Hits, Misses uint64
	Entries      int
}

// CacheStats returns the cache counters.
func (v *Verifier) CacheStats() CacheStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := CacheStats{Hits: v.hits, Misses: v.misses}
	if v.cache != nil {
		s.Entries = v.cache.len()
	}
	return s
}

// VerifyPeerCertificate is for tls.Config.VerifyPeerCertificate: the peer
// must send exactly one certificate, an RA-TLS certificate that Verify
// accepts.
func (v *Verifier) VerifyPeerCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) != 1 {
		return fmt.Errorf("%w: peer sent %d certificates, want exactly one (self-signed RA-TLS)", ErrCertificate, len(rawCerts))
	}
	_, err := v.Verify(rawCerts[0])
	return err
}

// Peer returns the verified result for the peer of an established
// connection (from the cache, where the handshake put it).
func (v *Verifier) Peer(cs tls.ConnectionState) (*Result, error) {
	if len(cs.PeerCertificates) != 1 {
		return nil, fmt.Errorf("%w: peer sent %d certificates, want exactly one", ErrCertificate, len(cs.PeerCertificates))
	}
	return v.Verify(cs.PeerCertificates[0].Raw)
}

func (v *Verifier) skew() time.Duration {
	switch {
	case v.Skew == 0:
		return DefaultSkew
	case v.Skew < 0:
		return 0
	}
	return v.Skew
}

// Verify checks an RA-TLS certificate's DER at v.Now().
func (v *Verifier) Verify(der []byte) (*Result, error) {
	if v.Now == nil {
		return nil, errors.New("ratls: Verifier.Now is nil; pass the clock")
	}
	now := v.Now()
	key := sha256.Sum256(der)
	if r := v.cached(key, now); r != nil {
		return r, nil
	}
	r, err := v.verify(der, now)
	if err != nil {
		return nil, err
	}
	v.store(key, r)
	return r, nil
}

// cached returns a result still inside its validity at now, and drops one
// that is not (verify then says why).
func (v *Verifier) cached(k [sha256.Size]byte, now time.Time) *Result {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.CacheSize < 0 {
		v.misses++
		return nil
	}
	if v.cache == nil {
		n := v.CacheSize
		if n == 0 {
			n = DefaultCacheSize
		}
		v.cache = newLRU(n)
	}
	r := v.cache.get(k)
	if r != nil && v.within(r.NotBefore, r.NotAfter, now) == nil {
		v.hits++
		return r
	}
	if r != nil {
		v.cache.remove(k)
	}
	v.misses++
	return nil
}

func (v *Verifier) store(k [sha256.Size]byte, r *Result) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cache != nil {
		v.cache.add(k, r)
	}
}

// within checks now against a validity window widened by the skew (RFC
// 5280 §4.1.2.5: both ends inclusive).
func (v *Verifier) within(notBefore, notAfter, now time.Time) error {
	s := v.skew()
	if now.Before(notBefore.Add(-s)) {
		return fmt.Errorf("%w: not valid before %s, now %s (skew %v)", ErrExpired, notBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), s)
	}
	if now.After(notAfter.Add(s)) {
		return fmt.Errorf("%w: expired at %s, now %s (skew %v)", ErrExpired, notAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), s)
	}
	return nil
}

func (v *Verifier) verify(der []byte, now time.Time) (*Result, error) {
	c, err := ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	leaf := c.Leaf
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok || leaf.SignatureAlgorithm != x509.PureEd25519 {
		return nil, fmt.Errorf("%w: %v key signed with %v, want Ed25519", ErrCertificate, leaf.PublicKeyAlgorithm, leaf.SignatureAlgorithm)
	}
	if !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		return nil, fmt.Errorf("%w: issuer %q is not the subject %q (want self-signed)", ErrCertificate, leaf.Issuer, leaf.Subject)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return nil, fmt.Errorf("%w: self-signature: %w", ErrCertificate, err)
	}
	if leaf.IsCA {
		return nil, fmt.Errorf("%w: the certificate is a CA", ErrCertificate)
	}
	maxV := v.MaxValidity
	if maxV <= 0 {
		maxV = DefaultMaxValidity
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > maxV {
		return nil, fmt.Errorf("%w: valid for %v, at most %v accepted", ErrCertificate, d, maxV)
	}
	if err := v.within(leaf.NotBefore, leaf.NotAfter, now); err != nil {
		return nil, err
	}

	cl := c.Claims
	if !pub.Equal(cl.PublicKey) {
		return nil, fmt.Errorf("%w: claims key %x, certificate key %x", ErrBinding, []byte(cl.PublicKey), []byte(pub))
	}
	if cl.IssuedAt.Before(leaf.NotBefore) || cl.IssuedAt.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: claims issued at %s, outside the certificate's validity %s to %s", ErrBinding,
			cl.IssuedAt.Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if v.Nonce != nil && !bytes.Equal(cl.Nonce, v.Nonce) {
		got := "none"
		if cl.Nonce != nil {
			got = fmt.Sprintf("%x", cl.Nonce)
		}
		return nil, fmt.Errorf("%w: claims nonce %s, want %x", ErrBinding, got, v.Nonce)
	}

	ev, ok := v.Evidence[c.Evidence.Kind]
	if !ok || ev == nil {
		return nil, fmt.Errorf("%w: no verifier for %q evidence", ErrQuote, c.Evidence.Kind)
	}
	a, err := ev.VerifyEvidence(c.Evidence, ReportData(c.ClaimsDER), now)
	if err != nil {
		return nil, err
	}
	if err := checkClaims(cl, a); err != nil {
		return nil, err
	}
	return &Result{Claims: cl, Evidence: c.Evidence, Attested: a, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}, nil
}

// checkClaims compares what the claims say was measured with what the
// evidence measured.
func checkClaims(cl Claims, a *Attested) error {
	if cl.ImageHash != nil {
		if a.ImageHash == nil {
			return fmt.Errorf("%w: claims image hash %x, but %s evidence attests no image hash", ErrBinding, cl.ImageHash[:], a.Kind)
		}
		if *a.ImageHash != *cl.ImageHash {
			return fmt.Errorf("%w: claims image hash %x, quote measures %x", ErrBinding, cl.ImageHash[:], a.ImageHash[:])
		}
	}
	// The static config the init measured into RTMR3, as the verified
	// runtime log shows it, is the config the claims name.
	for i, e := range a.RuntimeLog {
		if e.Kind != runtime.KindStaticConfig {
			continue
		}
		if h := sha256.Sum256(e.Payload); h != cl.ConfigHash {
			return fmt.Errorf("%w: claims config hash %x, runtime log event %d measured a static config with SHA-256 %x", ErrBinding, cl.ConfigHash, i, h)
		}
	}
	return nil
}
