package quote

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/abi"
)

// FuzzParse: Parse never panics, fails only with ErrMalformed, and what it
// accepts survives a write-read-write round trip through go-tdx-guest's
// encoder. Verify on the same input fails only with our typed errors.
func FuzzParse(f *testing.F) {
	sample := sampleQuote(f)
	f.Add(sample)
	f.Add(sample[:sampleSigned])
	f.Add(sample[:0x3FC])
	f.Add(sample[:offChain+100])
	v3 := bytes.Clone(sample)
	v3[0] = 3
	f.Add(v3)
	f.Add([]byte{4, 0, 2, 0, 0x81, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error without ErrMalformed: %v", err)
			}
			return
		}
		b1, err := abi.QuoteToAbiBytes(q)
		if err != nil {
			t.Fatalf("encoding a parsed quote: %v", err)
		}
		q2, err := Parse(b1)
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		b2, err := abi.QuoteToAbiBytes(q2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("round trip not stable (err %v)", err)
		}
		if _, err := Verify(raw, Options{Now: nowOffline}); err != nil {
			known := false
			for _, k := range []error{ErrMalformed, ErrSignature, ErrCertificate, ErrCollateral, ErrExpired} {
				known = known || errors.Is(err, k)
			}
			if !known {
				t.Fatalf("Verify: untyped error %v", err)
			}
		}
	})
}

func TestSampleRoundTrip(t *testing.T) {
	sample := sampleQuote(t)
	q, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	b, err := abi.QuoteToAbiBytes(q)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, sample) {
		t.Error("go-tdx-guest does not re-encode the sample byte for byte")
	}
}

// FuzzVerifier: a warm Verifier gives Verify's verdict on any input,
// offline and with the sample collateral, except where Verify's classify
// files an error by its text under another kind than the step that failed
// (see misfiled).
func FuzzVerifier(f *testing.F) {
	sample := sampleQuote(f)
	f.Add(sample)
	f.Add(sample[:sampleSigned])
	f.Add(withChainPrefix(sample, "\n"))
	v3 := bytes.Clone(sample)
	v3[0] = 3
	f.Add(v3)
	vs := newVerifiers(f, true)
	coll := sampleCollateral(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		qa, ea := Verify(raw, Options{Now: nowOffline})
		qb, eb := vs.offline.Verify(raw, nowOffline)
		if !misfiled(ea, eb) {
			sameVerdict(t, "offline", qa, ea, qb, eb)
		}
		qa, ea = Verify(raw, Options{Now: nowCollateral, Collateral: coll})
		qb, eb = vs.coll.Verify(raw, nowCollateral)
		if !misfiled(ea, eb) {
			sameVerdict(t, "collateral", qa, ea, qb, eb)
		}
	})
}

// misfiled: Verify said ErrCollateral for a PCK certificate that does not
// parse (go-tdx-guest's message then quotes x509's, which may mention a
// CRL), where the Verifier says ErrCertificate.
func misfiled(verify, verifier error) bool {
	if verify == nil || verifier == nil || !errors.Is(verify, ErrCollateral) || !errors.Is(verifier, ErrCertificate) {
		return false
	}
	msg := verify.Error()
	return strings.Contains(msg, "could not interpret") || strings.Contains(msg, "could not get PCK certificate extensions")
}
