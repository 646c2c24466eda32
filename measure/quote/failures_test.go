package quote

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

var kinds = map[string]error{
	"ErrMalformed":   ErrMalformed,
	"ErrSignature":   ErrSignature,
	"ErrCertificate": ErrCertificate,
	"ErrCollateral":  ErrCollateral,
	"ErrTCBStatus":   ErrTCBStatus,
	"ErrExpired":     ErrExpired,
}

// checkKinds fails unless err is exactly the given kinds among ours.
func checkKinds(t *testing.T, name string, err error, want ...error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted, want %v", name, want)
		return
	}
	for kname, k := range kinds {
		wanted := false
		for _, w := range want {
			// ErrTCBStatus is also ErrCollateral.
			if k == w || (w == ErrTCBStatus && k == ErrCollateral) {
				wanted = true
			}
		}
		if got := errors.Is(err, k); got != wanted {
			t.Errorf("%s: errors.Is(err, %s) = %v, want %v; err: %v", name, kname, got, wanted, err)
		}
	}
	t.Logf("%-28s %v", name+":", err)
}

// flipB64 changes the base64 character at i into another valid one, so the
// PEM still decodes but the DER differs.
func flipB64(raw []byte, i int) {
	if raw[i] == 'A' {
		raw[i] = 'B'
	} else {
		raw[i] = 'A'
	}
}

// failureCase changes the sample quote (mod gets a copy) and says what
// verifying it at now, with the sample collateral or without, must give.
type failureCase struct {
	name string
	mod  func(b []byte) []byte
	now  time.Time
	coll bool
	want []error
}

// failureCases is the table of TestFailures, also run through a Verifier
// by TestVerifierEquivalence.
func failureCases(t testing.TB) []failureCase {
	sample := sampleQuote(t)
	certOff := func(n int) int { // start of the n-th PEM block in the chain
		o := offChain
		for ; n > 0; n-- {
			o += bytes.Index(sample[o+1:], []byte("-----BEGIN")) + 1
		}
		return o
	}
	type tc = failureCase
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x01; return b }
	}
	set := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	cut := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { return b[:n] }
	}
	// 300 characters in: inside the to-be-signed part (the subject).
	cert := func(n int) func([]byte) []byte {
		return func(b []byte) []byte { flipB64(b, certOff(n)+len("-----BEGIN CERTIFICATE-----\n")+300); return b }
	}
	// 40 characters before the END line: inside the ECDSA signature value.
	certSig := func(n int) func([]byte) []byte {
		return func(b []byte) []byte {
			end := certOff(n) + bytes.Index(b[certOff(n):], []byte("-----END"))
			flipB64(b, end-40)
			return b
		}
	}
	same := func(b []byte) []byte { return b }
	tcs := []tc{
		// The TD quote body and header are signed by the attestation key.
		{"body: MRTD byte", flip(offMRTD + 5), nowOffline, false, []error{ErrSignature}},
		{"body: RTMR2 byte", flip(offRTMR2 + 47), nowOffline, false, []error{ErrSignature}},
		{"body: report data byte", flip(offRepData), nowOffline, false, []error{ErrSignature}},
		{"header: QE vendor ID byte", flip(0x0C), nowOffline, false, []error{ErrSignature}},
		{"quote signature byte", flip(offSignature + 10), nowOffline, false, []error{ErrSignature}},
		{"attestation key byte", flip(offAttestKey + 3), nowOffline, false, []error{ErrSignature}},
		// The QE report binds the attestation key; the PCK key signs it.
		{"QE report byte", flip(offQEReport + 0x100), nowOffline, false, []error{ErrSignature}},
		{"QE report signature byte", flip(offQESig + 7), nowOffline, false, []error{ErrSignature}},
		{"QE auth data byte", flip(offQEAuth + 1), nowOffline, false, []error{ErrSignature}},
		// The PCK chain must verify to Intel's root.
		{"PCK leaf certificate byte", cert(0), nowOffline, false, []error{ErrCertificate}},
		{"PCK leaf signature byte", certSig(0), nowOffline, false, []error{ErrCertificate}},
		{"intermediate CA cert byte", cert(1), nowOffline, false, []error{ErrCertificate}},
		{"root CA certificate byte", cert(2), nowOffline, false, []error{ErrCertificate}},
		{"chain PEM header byte", set(offChain+5, 'X'), nowOffline, false, []error{ErrCertificate}},
		// Structure.
		{"truncated to 0", cut(0), nowOffline, false, []error{ErrMalformed}},
		{"truncated to 1", cut(1), nowOffline, false, []error{ErrMalformed}},
		{"truncated in header", cut(47), nowOffline, false, []error{ErrMalformed}},
		{"truncated after header", cut(0x30), nowOffline, false, []error{ErrMalformed}},
		{"truncated in body", cut(0x100), nowOffline, false, []error{ErrMalformed}},
		{"truncated in size field", cut(offSigSize + 2), nowOffline, false, []error{ErrMalformed}},
		{"truncated in signature", cut(offSignature + 20), nowOffline, false, []error{ErrMalformed}},
		{"truncated in QE report", cut(offQEReport + 50), nowOffline, false, []error{ErrMalformed}},
		{"truncated in cert chain", cut(0x1000), nowOffline, false, []error{ErrMalformed}},
		{"truncated by one byte", cut(sampleSigned - 1), nowOffline, false, []error{ErrMalformed}},
		{"version 3", set(0, 3), nowOffline, false, []error{ErrMalformed}},
		{"version 5", set(0, 5), nowOffline, false, []error{ErrMalformed}},
		{"TEE type SGX (0)", set(4, 0), nowOffline, false, []error{ErrMalformed}},
		{"attestation key type 3", set(2, 3), nowOffline, false, []error{ErrMalformed}},
		{"signed data size field", set(offSigSize, 0x10), nowOffline, false, []error{ErrMalformed}},
		// These two made go-tdx-guest v0.3.1's parser panic (see layout.go).
		{"signed data size 16", func(b []byte) []byte { copy(b[offSigSize:], []byte{0x10, 0, 0, 0}); return b }, nowOffline, false, []error{ErrMalformed}},
		{"QE auth data size 0xffff", func(b []byte) []byte { b[offQEAuth-2], b[offQEAuth-1] = 0xff, 0xff; return b }, nowOffline, false, []error{ErrMalformed}},
		// The clock.
		{"now after PCK cert expiry", same, afterPCK, false, []error{ErrExpired, ErrCertificate}},
		{"now before PCK cert start", same, beforePCK, false, []error{ErrExpired, ErrCertificate}},
		{"collateral, now 2029-09-21", same, afterPCK, true, []error{ErrExpired, ErrCertificate}},
		{"collateral expired (2026)", same, nowOffline, true, []error{ErrExpired, ErrCollateral}},
		// With collateral the body's signature still comes first.
		{"collateral, body byte", flip(offMRTD), nowCollateral, true, []error{ErrSignature}},
		{"collateral, sample as is", same, nowCollateral, true, []error{ErrTCBStatus}},
	}
	return tcs
}

func TestFailures(t *testing.T) {
	sample := sampleQuote(t)
	for _, c := range failureCases(t) {
		raw := c.mod(bytes.Clone(sample))
		o := Options{Now: c.now}
		if c.coll {
			o.Collateral = sampleCollateral(t)
		}
		_, err := Verify(raw, o)
		checkKinds(t, c.name, err, c.want...)
	}
}

// trailerCases change only the bytes after the signed data.
func trailerCases(sample []byte) map[string][]byte {
	return map[string][]byte{
		"trailer cut":     bytes.Clone(sample[:sampleSigned+10]),
		"trailer removed": bytes.Clone(sample[:sampleSigned]),
		"trailer changed": append(bytes.Clone(sample[:sampleSigned]), "anything"...),
	}
}

// Bytes after the signed data are not covered by any signature: changing or
// cutting them does not matter, and Verify drops them.
func TestUnsignedTrailer(t *testing.T) {
	for name, raw := range trailerCases(sampleQuote(t)) {
		q, err := Verify(raw, Options{Now: nowOffline})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if q.ExtraBytes != nil {
			t.Errorf("%s: ExtraBytes kept", name)
		}
	}
}

// collateralCase changes the sample collateral (mod gets a fresh copy) and
// says what verifying the sample with it at nowCollateral must give.
type collateralCase struct {
	name string
	mod  func(c *Collateral)
	want []error
}

// collateralFailureCases is the table of TestCollateralFailures, also run
// through a Verifier by TestVerifierEquivalence.
func collateralFailureCases() []collateralCase {
	return []collateralCase{
		{"TCB info body changed", func(c *Collateral) {
			c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"tcbEvaluationDataNumber":15`), []byte(`"tcbEvaluationDataNumber":16`), 1)
		}, []error{ErrCollateral}},
		{"QE identity body changed", func(c *Collateral) {
			c.QEIdentity = bytes.Replace(c.QEIdentity, []byte(`"isvprodid":2`), []byte(`"isvprodid":3`), 1)
		}, []error{ErrCollateral}},
		{"TCB info signed by PCK CRL chain", func(c *Collateral) { c.TCBInfoIssuerChain = c.PCKCRLIssuerChain }, []error{ErrCollateral}},
		{"TCB info not JSON", func(c *Collateral) { c.TCBInfo = []byte("<html>") }, []error{ErrCollateral}},
		{"PCK CRL corrupt", func(c *Collateral) { c.PCKCRL[len(c.PCKCRL)-5] ^= 1 }, []error{ErrCollateral}},
		{"root CA CRL corrupt", func(c *Collateral) { c.RootCACRL[len(c.RootCACRL)-5] ^= 1 }, []error{ErrCollateral}},
		{"no TCB info", func(c *Collateral) { c.TCBInfo = nil }, []error{ErrCollateral}},
		{"no QE identity chain", func(c *Collateral) { c.QEIdentityIssuerChain = nil }, []error{ErrCollateral}},
		{"PCK CRL without root CRL", func(c *Collateral) { c.RootCACRL = nil }, []error{ErrCollateral}},
		{"issuer chain not PEM", func(c *Collateral) { c.TCBInfoIssuerChain = []byte("garbage") }, []error{ErrCollateral}},
	}
}

func TestCollateralFailures(t *testing.T) {
	raw := sampleQuote(t)
	for _, c := range collateralFailureCases() {
		coll := sampleCollateral(t)
		c.mod(coll)
		_, err := Verify(raw, Options{Now: nowCollateral, Collateral: coll})
		checkKinds(t, c.name, err, c.want...)
	}
}

// Messages go-tdx-guest v0.3.1 can return that the sample cannot trigger
// (copied from its verify.go), and one it never returns.
func TestClassifyMessages(t *testing.T) {
	now := nowOffline
	for _, c := range []struct {
		msg  string
		want []error
	}{
		{"PCK Leaf certificate in PCK certificate chain was revoked at 2024-01-01 00:00:00 +0000 UTC", []error{ErrCertificate}},
		{"tcbInfo response verification failed: signing certificate was revoked at 2024-01-01", []error{ErrCollateral}},
		{"TDX TCB info reported by Intel PCS failed TCB status check: TCB Status is not \"UpToDate\", found \"OutOfDate\"", []error{ErrTCBStatus}},
		{"QE Identity reported by Intel PCS failed TCB status check: TCB Status is not \"UpToDate\", found \"Revoked\"", []error{ErrTCBStatus}},
		{"PCK CRL has expired", []error{ErrExpired, ErrCollateral}},
		{"unable to receive tcbInfo: could not receive tcbInfo response: timeout", []error{ErrCollateral}},
		{"error verifying PCK Certificate: x509: certificate signed by unknown authority (true)", []error{ErrCertificate}},
		{"something new", []error{ErrSignature}},
	} {
		checkKinds(t, c.msg, classify(errors.New(c.msg), now), c.want...)
	}
}
