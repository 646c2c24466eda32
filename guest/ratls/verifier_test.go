package ratls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

func TestNewCertificate(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	leaf := f.cert.Leaf
	if leaf.NotBefore != t0 || leaf.NotAfter != t0.Add(DefaultValidity) {
		t.Errorf("validity %v to %v, want %v + %v", leaf.NotBefore, leaf.NotAfter, t0, DefaultValidity)
	}
	crit := map[string]bool{}
	for _, e := range leaf.Extensions {
		crit[e.Id.String()] = e.Critical
	}
	if !crit[OIDEvidence.String()] || !crit[OIDClaims.String()] {
		t.Errorf("our extensions are not both critical: %v", crit)
	}
	c, err := ParseCertificate(f.der())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Claims.PublicKey, f.key.Public().(ed25519.PublicKey)) {
		t.Error("claims key is not the certificate key")
	}
	if !c.Claims.IssuedAt.Equal(t0) {
		t.Errorf("claims issued at %v, want %v", c.Claims.IssuedAt, t0)
	}
	// The quote inside binds SHA-512 of the claims' DER.
	q, err := sim.Verify(c.Evidence.Quote, f.sim.Root())
	if err != nil {
		t.Fatal(err)
	}
	if rd := ReportData(c.ClaimsDER); !bytes.Equal(q.GetTdQuoteBody().GetReportData(), rd[:]) {
		t.Error("quote report data is not SHA-512(claims)")
	}
	// Reproducible: the same inputs, the same certificate.
	again, err := NewCertificate(context.Background(), f.sim, f.claims, f.key, t0.Add(500*time.Millisecond), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Certificate[0], f.der()) {
		t.Error("same inputs, different certificate")
	}
	// Go's own path validation, which knows nothing of RA-TLS, refuses it
	// even when told to trust it: the critical extensions do their job.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0.Add(time.Minute)})
	var uce x509.UnhandledCriticalExtension
	if !errors.As(err, &uce) {
		t.Errorf("x509 Verify = %v, want UnhandledCriticalExtension", err)
	}
}

func TestNewCertificateErrors(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		claims   Claims
		key      []byte
		now      time.Time
		validity time.Duration
		want     error
	}{
		{"other key in claims", Claims{PublicKey: testKey(9).Public().(ed25519.PublicKey), WorkerID: "w"}, f.key, t0, 0, ErrBinding},
		{"no worker ID", Claims{}, f.key, t0, 0, ErrMalformed},
		{"short key", Claims{WorkerID: "w"}, f.key[:10], t0, 0, nil},
		{"zero time", Claims{WorkerID: "w"}, f.key, time.Time{}, 0, nil},
		{"negative validity", Claims{WorkerID: "w"}, f.key, t0, -time.Hour, nil},
		{"issue time set", Claims{WorkerID: "w", IssuedAt: t0.Add(time.Hour)}, f.key, t0, 0, nil},
	} {
		_, err := NewCertificate(ctx, f.sim, c.claims, c.key, c.now, c.validity)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want an error (%v)", c.name, err, c.want)
		}
	}
	if _, err := NewCertificate(ctx, nil, Claims{WorkerID: "w"}, f.key, t0, 0); err == nil {
		t.Error("nil provider accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := NewCertificate(cctx, f.sim, Claims{WorkerID: "w"}, f.key, t0, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestVerifyGood(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	r, err := f.verifier(f.dev).Verify(f.der())
	if err != nil {
		t.Fatal(err)
	}
	if r.Claims.WorkerID != "w-1" || !r.Attested.Simulated || r.Attested.Kind != attest.Sim ||
		*r.Attested.ImageHash != *f.claims.ImageHash || len(r.Attested.RuntimeLog) != 2 || r.Evidence.Kind != attest.Sim {
		t.Errorf("result = %+v, attested %+v", r, r.Attested)
	}
	// Claims without the optional image hash are accepted too.
	cl := f.claims
	cl.ImageHash = nil
	c, err := NewCertificate(context.Background(), f.sim, cl, f.key, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.verifier(f.dev).Verify(c.Certificate[0]); err != nil {
		t.Errorf("no image hash claimed: %v", err)
	}
}

// TestAttacks: every way to present evidence that does not vouch for this
// certificate, this TD, or this time, and the typed error that stops it.
func TestAttacks(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	claimsDER, evDER := f.parts(t)
	thief := testKey(0x66)
	ours := func(ev, cl []byte) []pkixExt {
		return []pkixExt{ext(OIDEvidence, true, ev), ext(OIDClaims, true, cl)}
	}

	// The thief's own claims, with its key, bound to nothing it can quote.
	thiefClaims := f.claims
	thiefClaims.PublicKey, thiefClaims.IssuedAt = thief.Public().(ed25519.PublicKey), t0
	thiefClaimsDER, err := thiefClaims.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	// A debug TD, otherwise allowlisted.
	dbgBody := sim.DefaultBody()
	dbgBody.TDAttributes |= sim.AttrDebug
	dbg := newFixture(t, fixtureOptions{body: &dbgBody})

	// A worker lying about its image hash or config hash: its own TD quotes
	// whatever claims it asks for.
	lieImage := f.claims
	lieImage.PublicKey, lieImage.IssuedAt = f.key.Public().(ed25519.PublicKey), t0
	other := [32]byte{1}
	lieImage.ImageHash = &other
	lieImageClaims, lieImageEv := f.quoteFor(t, lieImage)
	lieConfig := lieImage
	lieConfig.ImageHash = f.claims.ImageHash
	lieConfig.ConfigHash = sha256.Sum256([]byte("another config"))
	lieConfigClaims, lieConfigEv := f.quoteFor(t, lieConfig)

	// The evidence with a runtime log that is not what RTMR3 holds.
	ev, err := ParseEvidence(evDER)
	if err != nil {
		t.Fatal(err)
	}
	forgedLog, _ := runtime.Log{{Kind: runtime.KindStaticConfig, Payload: []byte("x")}}.Marshal()
	ev.RuntimeLog = forgedLog
	forgedLogEv, _ := MarshalEvidence(ev)
	ev, _ = ParseEvidence(evDER)
	ev.Quote[0x30+0x88] ^= 1 // MRTD
	tamperedEv, _ := MarshalEvidence(ev)
	ev, _ = ParseEvidence(evDER)
	ev.Kind = attest.TDX
	relabeledEv, _ := MarshalEvidence(ev)
	ev.Kind = "sgx"
	unknownKindEv, _ := MarshalEvidence(ev)

	// Another simulator's worker, same image.
	stranger := newFixture(t, fixtureOptions{seed: 2})

	ecKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), rep(0x77, 32))
	if err != nil {
		t.Fatal(err)
	}
	wrongImage := &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{{0xab}}}
	m, _ := f.sim.Measurements()
	wrongRTMR := policy.Registers{MRTD: m.MRTD, RTMR: m.RTMR}
	wrongRTMR.RTMR[2][0] ^= 1
	wrongMeasurements := &policy.Policy{AllowSimulated: true, Measurements: []policy.Registers{wrongRTMR}}

	tdxOnly := &Verifier{
		Evidence: map[attest.Kind]EvidenceVerifier{attest.TDX: &TDXVerifier{Quotes: quote.NewVerifier(quote.VerifierOptions{}), Policy: f.dev}},
		Now:      fixedClock(t0.Add(time.Minute)),
	}
	atTime := func(now time.Time) *Verifier {
		v := f.verifier(f.dev)
		v.Now = fixedClock(now)
		return v
	}
	withNonce := func(n string) *Verifier {
		v := f.verifier(f.dev)
		v.Nonce = []byte(n)
		return v
	}

	for _, c := range []struct {
		name string
		der  []byte
		v    *Verifier
		want []error
		text string
	}{
		{"quote lifted into a certificate with another key",
			craft{key: thief, exts: ours(evDER, claimsDER)}.der(t), nil, []error{ErrBinding}, "claims key"},
		{"quote lifted, claims rewritten for the new key",
			craft{key: thief, exts: ours(evDER, thiefClaimsDER)}.der(t), nil, []error{ErrBinding}, "report data"},
		{"expired certificate", f.der(), atTime(t0.Add(DefaultValidity + DefaultSkew + time.Second)), []error{ErrExpired}, "expired"},
		{"certificate not yet valid", f.der(), atTime(t0.Add(-DefaultSkew - time.Second)), []error{ErrExpired}, "not valid before"},
		{"unknown critical extension",
			craft{key: f.key, exts: append(ours(evDER, claimsDER), ext([]int{1, 2, 3, 4}, true, []byte{5, 0}))}.der(t), nil, []error{ErrUnknownCritical}, "1.2.3.4"},
		{"unknown critical extension in our arc",
			craft{key: f.key, exts: append(ours(evDER, claimsDER), ext(sub(OIDArc, 3), true, []byte{5, 0}))}.der(t), nil, []error{ErrUnknownCritical}, ""},
		{"debug TD, policy without allow_debug", dbg.der(), dbg.verifier(dbg.dev), []error{ErrPolicy, policy.ErrDebug}, "debug"},
		{"simulated quote, production policy", f.der(), f.verifier(f.prod), []error{ErrPolicy, policy.ErrSimulated}, "allow_simulated"},
		{"image hash not allowlisted", f.der(), f.verifier(wrongImage), []error{ErrPolicy, policy.ErrMismatch}, "image_hash"},
		{"RTMR2 not in the allowlisted measurements", f.der(), f.verifier(wrongMeasurements), []error{ErrPolicy, policy.ErrMismatch}, "rtmr[2]"},
		{"claimed image hash not the quote's",
			craft{key: f.key, exts: ours(lieImageEv, lieImageClaims)}.der(t), nil, []error{ErrBinding}, "image hash"},
		{"claimed config hash not the measured config",
			craft{key: f.key, exts: ours(lieConfigEv, lieConfigClaims)}.der(t), nil, []error{ErrBinding}, "config hash"},
		{"runtime log not what RTMR3 holds",
			craft{key: f.key, exts: ours(forgedLogEv, claimsDER)}.der(t), nil, []error{ErrBinding}, "runtime log"},
		{"tampered quote", craft{key: f.key, exts: ours(tamperedEv, claimsDER)}.der(t), nil, []error{ErrQuote, sim.ErrSignature}, ""},
		{"simulated quote labelled tdx", craft{key: f.key, exts: ours(relabeledEv, claimsDER)}.der(t), tdxOnly, []error{ErrQuote, quote.ErrCertificate}, ""},
		{"simulated quote to a TDX-only verifier", f.der(), tdxOnly, []error{ErrQuote}, `"sim"`},
		{"unknown evidence kind", craft{key: f.key, exts: ours(unknownKindEv, claimsDER)}.der(t), nil, []error{ErrQuote}, `"sgx"`},
		{"another simulator's quote", stranger.der(), nil, []error{ErrQuote, sim.ErrCertificate}, ""},
		{"no evidence extension", craft{key: f.key, exts: ours(evDER, claimsDER)[1:]}.der(t), nil, []error{ErrNoEvidence}, ""},
		{"no claims extension", craft{key: f.key, exts: ours(evDER, claimsDER)[:1]}.der(t), nil, []error{ErrNoEvidence}, ""},
		{"plain certificate", craft{key: f.key}.der(t), nil, []error{ErrNoEvidence}, ""},
		{"our extension not critical",
			craft{key: f.key, exts: []pkixExt{ext(OIDEvidence, false, evDER), ext(OIDClaims, true, claimsDER)}}.der(t), nil, []error{ErrCertificate}, "critical"},
		{"claims not canonical", craft{key: f.key, exts: ours(evDER, append(bytes.Clone(claimsDER), 0))}.der(t), nil, []error{ErrMalformed}, ""},
		{"evidence not DER", craft{key: f.key, exts: ours([]byte{0x30, 0x80, 0, 0}, claimsDER)}.der(t), nil, []error{ErrMalformed}, ""},
		{"signed by another key", craft{key: f.key, signer: thief, exts: ours(evDER, claimsDER)}.der(t), nil, []error{ErrCertificate}, "self-signature"},
		{"valid for too long", craft{key: f.key, exts: ours(evDER, claimsDER), notAfter: t0.Add(DefaultMaxValidity + time.Second)}.der(t), nil, []error{ErrCertificate}, "valid for"},
		{"a CA", craft{key: f.key, exts: ours(evDER, claimsDER), isCA: true}.der(t), nil, []error{ErrCertificate}, "CA"},
		{"ECDSA key", craft{key: ecKey, exts: ours(evDER, claimsDER)}.der(t), nil, []error{ErrCertificate}, "Ed25519"},
		{"issued outside the validity",
			craft{key: f.key, exts: ours(evDER, claimsDER), notBefore: t0.Add(time.Second)}.der(t), nil, []error{ErrBinding}, "outside"},
		{"wrong nonce", f.der(), withNonce("challenge"), []error{ErrBinding}, "nonce"},
		{"not DER", []byte("hello"), nil, []error{ErrCertificate}, ""},
		{"too large", make([]byte, MaxCertificateSize+1), nil, []error{ErrCertificate}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := c.v
			if v == nil {
				v = f.verifier(f.dev)
			}
			_, err := v.Verify(c.der)
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Fatalf("Verify = %v, want %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Fatalf("Verify = %v, want it to say %q", err, c.text)
			}
			// Exactly one of our sentinels.
			n := 0
			for _, s := range []error{ErrCertificate, ErrUnknownCritical, ErrNoEvidence, ErrMalformed, ErrExpired, ErrBinding, ErrQuote, ErrPolicy} {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%v matches %d of our sentinels, want 1", err, n)
			}
			t.Logf("%v", err)
		})
	}
	// Control: the same verifiers accept the genuine article.
	for _, v := range []*Verifier{f.verifier(f.dev), atTime(t0.Add(DefaultValidity + DefaultSkew)), atTime(t0.Add(-DefaultSkew))} {
		if _, err := v.Verify(f.der()); err != nil {
			t.Errorf("control: %v", err)
		}
	}
	// A non-critical extension we do not know is ignored (RFC 5280 §4.2).
	if _, err := f.verifier(f.dev).Verify(craft{key: f.key, exts: append(ours(evDER, claimsDER), ext([]int{1, 2, 3, 4}, false, []byte{5, 0}))}.der(t)); err != nil {
		t.Errorf("non-critical unknown extension: %v", err)
	}
}

func TestNonce(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	cl := f.claims
	cl.Nonce = []byte("challenge-42")
	c, err := NewCertificate(context.Background(), f.sim, cl, f.key, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(f.dev)
	v.Nonce = []byte("challenge-42")
	if _, err := v.Verify(c.Certificate[0]); err != nil {
		t.Fatal(err)
	}
	v = f.verifier(f.dev)
	v.Nonce = []byte("challenge-43")
	if _, err := v.Verify(c.Certificate[0]); !errors.Is(err, ErrBinding) {
		t.Fatalf("other nonce: %v", err)
	}
}

func TestVTPMVerifier(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ev, err := f.sim.Quote(context.Background(), [64]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&VTPMVerifier{}).VerifyEvidence(ev, [64]byte{}, t0); !errors.Is(err, ErrQuote) {
		t.Errorf("nil func: %v", err)
	}
	plain := errors.New("TPM2_Quote signature does not verify")
	if _, err := (&VTPMVerifier{Verify: func(*attest.Evidence, [64]byte, time.Time) (*Attested, error) { return nil, plain }}).VerifyEvidence(ev, [64]byte{}, t0); !errors.Is(err, ErrQuote) || !errors.Is(err, plain) {
		t.Errorf("plain error: %v", err)
	}
	typed := ErrPolicy
	if _, err := (&VTPMVerifier{Verify: func(*attest.Evidence, [64]byte, time.Time) (*Attested, error) { return nil, typed }}).VerifyEvidence(ev, [64]byte{}, t0); err != typed {
		t.Errorf("typed error rewrapped: %v", err)
	}
	// A vTPM verifier that attests no image hash cannot back a claimed one.
	v := &Verifier{
		Evidence: map[attest.Kind]EvidenceVerifier{attest.Sim: &VTPMVerifier{Verify: func(e *attest.Evidence, rd [64]byte, _ time.Time) (*Attested, error) {
			return &Attested{Kind: attest.VTPM}, nil
		}}},
		Now: fixedClock(t0),
	}
	if _, err := v.Verify(f.der()); !errors.Is(err, ErrBinding) {
		t.Errorf("image hash without attestation: %v", err)
	}
}

// TestOpenSSL: OpenSSL parses the certificate, shows our extensions
// critical, and its verifier refuses the certificate as "unhandled critical
// extension" even when told to trust it (skipped without openssl).
func TestOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	f := newFixture(t, fixtureOptions{})
	p := filepath.Join(t.TempDir(), "cert.der")
	if err := os.WriteFile(p, f.der(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "x509", "-inform", "DER", "-in", p, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	for _, want := range []string{"ED25519", OIDEvidence.String() + ": critical", OIDClaims.String() + ": critical"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("openssl x509 -text lacks %q:\n%s", want, out)
		}
	}
	pem := filepath.Join(t.TempDir(), "cert.pem")
	if out, err := exec.Command(bin, "x509", "-inform", "DER", "-in", p, "-out", pem).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = exec.Command(bin, "verify", "-attime", fmt.Sprint(t0.Add(time.Minute).Unix()), "-CAfile", pem, pem).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("unhandled critical extension")) {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
}
