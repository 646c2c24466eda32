package ratls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// t0 is the tests' clock.
var t0 = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

var staticConfig = []byte(`{"worker_id":"w-1","model":"tiny"}`)

// fixture is a simulated worker: a simulator that booted (static config and
// boot-complete in RTMR3), a key, its claims and certificate, and the
// policies that accept (dev) or refuse (prod) its simulated quotes.
type fixture struct {
	sim    *sim.Simulator
	key    ed25519.PrivateKey
	claims Claims
	cert   tls.Certificate
	dev    *policy.Policy // allow_simulated, this image
	prod   *policy.Policy // this image, no allow_simulated
}

type fixtureOptions struct {
	seed   byte // simulator seed byte; 0 means 1
	body   *sim.Body
	keyTag byte
}

func testKey(tag byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{tag}, ed25519.SeedSize))
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	if o.seed == 0 {
		o.seed = 1
	}
	s, err := sim.New(sim.Options{Seed: bytes.Repeat([]byte{o.seed}, sim.SeedSize), Body: o.body})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range (runtime.Log{{Kind: runtime.KindStaticConfig, Payload: staticConfig}, {Kind: runtime.KindBootComplete}}) {
		if err := s.Extend(e); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	h := m.ImageHash()
	f := &fixture{
		sim:    s,
		key:    testKey(0x40 + o.keyTag),
		claims: Claims{ConfigHash: sha256.Sum256(staticConfig), WorkerID: "w-1", ImageHash: &h},
		dev:    &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{h}},
		prod:   &policy.Policy{ImageHashes: [][32]byte{h}},
	}
	f.cert, err = NewCertificate(context.Background(), s, f.claims, f.key, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) der() []byte { return f.cert.Certificate[0] }

// verifier accepts f's simulator under p.
func (f *fixture) verifier(p *policy.Policy) *Verifier {
	return &Verifier{
		Evidence: map[attest.Kind]EvidenceVerifier{attest.Sim: &SimVerifier{Root: f.sim.Root(), Policy: p}},
		Now:      fixedClock(t0.Add(time.Minute)),
	}
}

// parts returns f's claims and evidence DER.
func (f *fixture) parts(t testing.TB) (claimsDER, evDER []byte) {
	t.Helper()
	c, err := ParseCertificate(f.der())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := MarshalEvidence(c.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	return c.ClaimsDER, ev
}

// craft issues a certificate the way an attacker could: any key, any
// extensions, any validity, self-signed unless signer is set.
type craft struct {
	key       crypto.Signer
	signer    crypto.Signer
	exts      []pkix.Extension
	notBefore time.Time
	notAfter  time.Time
	isCA      bool
}

func (c craft) der(t testing.TB) []byte {
	t.Helper()
	if c.notBefore.IsZero() {
		c.notBefore = t0
	}
	if c.notAfter.IsZero() {
		c.notAfter = c.notBefore.Add(time.Hour)
	}
	signer := c.signer
	if signer == nil {
		signer = c.key
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "crafted"},
		NotBefore: c.notBefore, NotAfter: c.notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: c.isCA,
		ExtraExtensions: c.exts,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, c.key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

type pkixExt = pkix.Extension

func ext(id []int, critical bool, v []byte) pkix.Extension {
	return pkix.Extension{Id: id, Critical: critical, Value: v}
}

// quoteFor asks f's simulator for evidence binding claims, as a worker
// that controls its claims (but not its TD) could.
func (f *fixture) quoteFor(t testing.TB, cl Claims) (claimsDER, evDER []byte) {
	t.Helper()
	claimsDER, err := cl.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.sim.Quote(context.Background(), ReportData(claimsDER))
	if err != nil {
		t.Fatal(err)
	}
	evDER, err = MarshalEvidence(e)
	if err != nil {
		t.Fatal(err)
	}
	return claimsDER, evDER
}
