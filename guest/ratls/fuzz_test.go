package ratls

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func FuzzParseCertificate(f *testing.F) {
	fx := newFixture(f, fixtureOptions{})
	claimsDER, evDER := fx.parts(f)
	f.Add(fx.der())
	f.Add(newFixture(f, fixtureOptions{seed: 2}).der())
	f.Add(craft{key: fx.key, exts: []pkixExt{ext(OIDEvidence, true, evDER)}}.der(f))
	f.Add(craft{key: testKey(0x66), exts: []pkixExt{ext(OIDEvidence, true, evDER), ext(OIDClaims, true, claimsDER)}}.der(f))
	f.Add(craft{key: fx.key, exts: []pkixExt{ext(OIDEvidence, true, evDER), ext(OIDClaims, true, claimsDER), ext([]int{1, 2, 3}, true, []byte{5, 0})}}.der(f))
	f.Add([]byte{0x30, 0x00})
	v := fx.verifier(fx.dev)
	v.CacheSize = -1
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := ParseCertificate(der)
		if err != nil {
			if !errors.Is(err, ErrCertificate) && !errors.Is(err, ErrUnknownCritical) && !errors.Is(err, ErrNoEvidence) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error: %v", err)
			}
		} else {
			// What was decoded re-encodes to the certificate's bytes.
			again, err := c.Claims.Marshal()
			if err != nil || !bytes.Equal(again, c.ClaimsDER) {
				t.Fatalf("claims do not re-encode: %v", err)
			}
			if _, err := MarshalEvidence(c.Evidence); err != nil {
				t.Fatalf("evidence does not re-encode: %v", err)
			}
		}
		r, err := v.Verify(der)
		if err != nil {
			n := 0
			for _, s := range []error{ErrCertificate, ErrUnknownCritical, ErrNoEvidence, ErrMalformed, ErrExpired, ErrBinding, ErrQuote, ErrPolicy} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error matching %d sentinels: %v", n, err)
			}
			return
		}
		// Anything accepted binds the claims' key to the certificate's.
		c, err = ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Leaf.PublicKey.(ed25519.PublicKey).Equal(r.Claims.PublicKey) {
			t.Fatal("accepted a certificate whose key is not the claimed one")
		}
	})
}
