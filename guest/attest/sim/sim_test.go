package sim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
)

// A time inside the sample Intel quote's PCK validity (measure/quote's
// testdata README), for the verifiers that need one.
var testNow = time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)

func testSeed(b byte) []byte { return bytes.Repeat([]byte{b}, SeedSize) }

func newSim(t testing.TB, o Options) *Simulator {
	t.Helper()
	if o.Seed == nil {
		o.Seed = testSeed(1)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rd(s string) [64]byte {
	return sha512.Sum512([]byte(s))
}

func mustQuote(t testing.TB, s *Simulator, reportData [64]byte) []byte {
	t.Helper()
	e, err := s.Quote(context.Background(), reportData)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != attest.Sim {
		t.Fatalf("evidence kind %q, want %q", e.Kind, attest.Sim)
	}
	return e.Quote
}

func intelSample(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "measure", "quote", "testdata", "tdx_prod_quote_SPR_E4.dat"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestQuoteFields configures every body field and reads it back through
// measure/quote.Parse and go-tdx-guest's parser, at the offsets of the
// Quote Format v4 tables.
func TestQuoteFields(t *testing.T) {
	body := Body{TDAttributes: AttrDebug | AttrSEPTVEDisable | AttrPKS, XFAM: 0x02e7}
	for i, f := range [][]byte{body.TEETCBSVN[:], body.MRSEAM[:], body.MRSIGNERSEAM[:], body.SEAMAttributes[:],
		body.MRTD[:], body.MRConfigID[:], body.MROwner[:], body.MROwnerConfig[:]} {
		for j := range f {
			f[j] = byte(0x10*i + j)
		}
	}
	var rtmr [3][48]byte
	for i := range rtmr {
		rtmr[i] = sha512.Sum384([]byte{byte(i)})
	}
	s := newSim(t, Options{Body: &body, RTMR: rtmr})
	data := rd("fields")
	raw := mustQuote(t, s, data)

	q, err := quote.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	b := q.GetTdQuoteBody()
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"TEE_TCB_SVN", b.TeeTcbSvn, body.TEETCBSVN[:]},
		{"MRSEAM", b.MrSeam, body.MRSEAM[:]},
		{"MRSIGNERSEAM", b.MrSignerSeam, body.MRSIGNERSEAM[:]},
		{"SEAMATTRIBUTES", b.SeamAttributes, body.SEAMAttributes[:]},
		{"TDATTRIBUTES", b.TdAttributes, []byte{0x01, 0, 0, 0x50, 0, 0, 0, 0}},
		{"XFAM", b.Xfam, []byte{0xe7, 0x02, 0, 0, 0, 0, 0, 0}},
		{"MRTD", b.MrTd, body.MRTD[:]},
		{"MRCONFIGID", b.MrConfigId, body.MRConfigID[:]},
		{"MROWNER", b.MrOwner, body.MROwner[:]},
		{"MROWNERCONFIG", b.MrOwnerConfig, body.MROwnerConfig[:]},
		{"RTMR0", b.Rtmrs[0], rtmr[0][:]},
		{"RTMR1", b.Rtmrs[1], rtmr[1][:]},
		{"RTMR2", b.Rtmrs[2], rtmr[2][:]},
		{"RTMR3", b.Rtmrs[3], make([]byte, 48)},
		{"REPORTDATA", b.ReportData, data[:]},
		// The same fields at their raw offsets (body starts at 0x30).
		{"raw TDATTRIBUTES @0x78", raw[0x30+0x78 : 0x30+0x80], b.TdAttributes},
		{"raw MRTD @0x88", raw[0x30+0x88 : 0x30+0xB8], body.MRTD[:]},
		{"raw RTMR0 @0x148", raw[0x30+0x148 : 0x30+0x178], rtmr[0][:]},
		{"raw REPORTDATA @0x208", raw[0x30+0x208 : 0x30+0x248], data[:]},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s = %x, want %x", c.name, c.got, c.want)
		}
	}
	h := q.GetHeader()
	if h.Version != 4 || h.AttestationKeyType != 2 || h.TeeType != 0x81 || !bytes.Equal(h.QeVendorId, QEVendorID[:]) {
		t.Errorf("header = %+v", h)
	}
	if got := q.GetSignedData().GetCertificationData().GetCertificateDataType(); got != 6 {
		t.Errorf("certification data type %d, want 6", got)
	}
	if got := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetCertificateDataType(); got != 5 {
		t.Errorf("PCK chain certification data type %d, want 5", got)
	}
	// The image hash of the quote is that of the simulator's measurements.
	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	fromQuote, err := imagehash.FromQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	if fromQuote != m {
		t.Errorf("imagehash.FromQuote = %+v, Measurements = %+v", fromQuote, m)
	}
}

// TestABIRoundTrip: go-tdx-guest's parser and its independent encoder give
// back our bytes exactly, so our layout is the one it implements from the
// same spec.
func TestABIRoundTrip(t *testing.T) {
	raw := mustQuote(t, newSim(t, Options{}), rd("abi"))
	p, err := abi.QuoteToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.CheckQuoteV4(p.(*pb.QuoteV4)); err != nil {
		t.Fatal(err)
	}
	back, err := abi.QuoteToAbiBytes(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, raw) {
		t.Fatalf("abi round trip differs: %d bytes, want %d", len(back), len(raw))
	}
}

// TestGoTDXGuestVerifies: go-tdx-guest's verifier, told to trust the
// simulator's root, accepts the quote: the chain profile, the attestation
// key signature, the QE report signature and the QE report data are right
// by a verifier we did not write. Told to trust Intel (its default), it
// refuses the same quote.
func TestGoTDXGuestVerifies(t *testing.T) {
	s := newSim(t, Options{})
	raw := mustQuote(t, s, rd("go-tdx-guest"))
	pool := x509.NewCertPool()
	pool.AddCert(s.Root())
	if err := verify.RawTdxQuote(raw, &verify.Options{TrustedRoots: pool, Now: testNow}); err != nil {
		t.Fatalf("go-tdx-guest with the simulator root: %v", err)
	}
	err := verify.RawTdxQuote(raw, &verify.Options{Now: testNow})
	if err == nil {
		t.Fatal("go-tdx-guest with Intel's root accepted a simulated quote")
	}
	t.Logf("go-tdx-guest with Intel's root: %v", err)
	// A tampered quote fails go-tdx-guest too.
	bad := bytes.Clone(raw)
	bad[0x30+0x88] ^= 1 // MRTD
	if err := verify.RawTdxQuote(bad, &verify.Options{TrustedRoots: pool, Now: testNow}); err == nil {
		t.Fatal("go-tdx-guest accepted a quote with a flipped MRTD byte")
	}
}

// TestIntelVerifyRejects: measure/quote, which pins Intel's root, refuses
// every simulated quote, with the function and with the caching Verifier.
func TestIntelVerifyRejects(t *testing.T) {
	raw := mustQuote(t, newSim(t, Options{}), rd("intel"))
	_, err := quote.Verify(raw, quote.Options{Now: testNow})
	if !errors.Is(err, quote.ErrCertificate) {
		t.Fatalf("quote.Verify = %v, want quote.ErrCertificate", err)
	}
	t.Logf("quote.Verify: %v", err)
	_, err = quote.NewVerifier(quote.VerifierOptions{}).Verify(raw, testNow)
	if !errors.Is(err, quote.ErrCertificate) {
		t.Fatalf("quote.Verifier = %v, want quote.ErrCertificate", err)
	}
}

// oids lists every OBJECT IDENTIFIER in a DER value, depth first.
func oids(t *testing.T, der []byte) []string {
	t.Helper()
	var out []string
	var walk func([]byte)
	walk = func(b []byte) {
		for len(b) > 0 {
			var v asn1.RawValue
			rest, err := asn1.Unmarshal(b, &v)
			if err != nil {
				t.Fatalf("DER: %v", err)
			}
			switch {
			case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOID:
				var o asn1.ObjectIdentifier
				if _, err := asn1.Unmarshal(v.FullBytes, &o); err != nil {
					t.Fatal(err)
				}
				out = append(out, o.String())
			case v.IsCompound:
				walk(v.Bytes)
			default:
				out = append(out, fmt.Sprintf("tag %d", v.Tag))
			}
			b = rest
		}
	}
	walk(der)
	return out
}

func chainCerts(t *testing.T, raw []byte) []*x509.Certificate {
	t.Helper()
	q, err := quote.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	rest := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// TestPCKProfile compares the simulated PCK leaf with the real one in
// go-tdx-guest's sample production quote: the same extensions in the same
// order, the SGX extensions with the same OIDs and value types, and
// go-tdx-guest's PCK extension parser reading our values.
func TestPCKProfile(t *testing.T) {
	ours := chainCerts(t, mustQuote(t, newSim(t, Options{}), rd("pck")))
	intel := chainCerts(t, intelSample(t))
	if len(ours) != 3 || len(intel) != 3 {
		t.Fatalf("%d and %d certificates, want 3", len(ours), len(intel))
	}
	extIDs := func(c *x509.Certificate) (ids []string, sgx []byte) {
		for _, e := range c.Extensions {
			ids = append(ids, e.Id.String())
			if e.Id.Equal(oidSGX) {
				sgx = e.Value
			}
		}
		return ids, sgx
	}
	ourIDs, ourSGX := extIDs(ours[0])
	intelIDs, intelSGX := extIDs(intel[0])
	// The same six extensions (the profile does not fix their order, and
	// Go writes its own order).
	sort.Strings(ourIDs)
	sort.Strings(intelIDs)
	if !equalStrings(ourIDs, intelIDs) {
		t.Errorf("leaf extensions %v, Intel's %v", ourIDs, intelIDs)
	}
	if a, b := oids(t, ourSGX), oids(t, intelSGX); !equalStrings(a, b) {
		t.Errorf("SGX extension structure\n ours  %v\n Intel %v", a, b)
	}
	for i, c := range ours {
		if c.Subject.CommonName != intel[i].Subject.CommonName || c.Issuer.CommonName != intel[i].Issuer.CommonName {
			t.Errorf("certificate %d: %q issued by %q, Intel's %q issued by %q", i, c.Subject.CommonName, c.Issuer.CommonName, intel[i].Subject.CommonName, intel[i].Issuer.CommonName)
		}
		if len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != Organization {
			t.Errorf("certificate %d: organization %q, want %q", i, c.Subject.Organization, Organization)
		}
		if c.KeyUsage != intel[i].KeyUsage || c.IsCA != intel[i].IsCA || c.SignatureAlgorithm != intel[i].SignatureAlgorithm {
			t.Errorf("certificate %d: key usage %v CA %v alg %v, Intel's %v %v %v", i, c.KeyUsage, c.IsCA, c.SignatureAlgorithm, intel[i].KeyUsage, intel[i].IsCA, intel[i].SignatureAlgorithm)
		}
	}
	ext, err := pcs.PckCertificateExtensions(ours[0])
	if err != nil {
		t.Fatalf("go-tdx-guest's PCK extension parser: %v", err)
	}
	if ext.FMSPC != hex.EncodeToString(simFMSPC[:]) || ext.PCEID != "0000" || ext.TCB.PCESvn != simPCESVN ||
		!bytes.Equal(ext.TCB.CPUSvn, simCPUSVN[:]) || !bytes.Equal(ext.TCB.CPUSvnComponents, simCPUSVN[:]) || len(ext.PPID) != 32 {
		t.Errorf("PCK extensions = %+v", ext)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReproducible: the same seed gives the same root and the same quote
// bytes; another seed, other keys.
func TestReproducible(t *testing.T) {
	a, b, c := newSim(t, Options{}), newSim(t, Options{}), newSim(t, Options{Seed: testSeed(2)})
	if !bytes.Equal(a.Root().Raw, b.Root().Raw) {
		t.Error("same seed, different roots")
	}
	if bytes.Equal(a.Root().Raw, c.Root().Raw) {
		t.Error("different seeds, same root")
	}
	qa, qb := mustQuote(t, a, rd("x")), mustQuote(t, b, rd("x"))
	if !bytes.Equal(qa, qb) {
		t.Error("same seed and inputs, different quotes")
	}
	// A random seed from Rand: the reader is consumed, keys differ.
	r := bytes.NewReader(testSeed(9))
	d, err := New(Options{Rand: r})
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 || !bytes.Equal(d.Root().Raw, newSim(t, Options{Seed: testSeed(9)}).Root().Raw) {
		t.Error("Options.Rand was not used as the seed")
	}
	if _, err := New(Options{Rand: bytes.NewReader(make([]byte, 5))}); err == nil {
		t.Error("short Rand accepted")
	}
	if _, err := New(Options{Seed: make([]byte, 31)}); err == nil {
		t.Error("31-byte seed accepted")
	}
}

// TestExtend: RTMR3 follows Extend as the init's runtime events define
// (measure/runtime), and the evidence's runtime log replays to it.
func TestExtend(t *testing.T) {
	s := newSim(t, Options{EventLog: []byte("ccel")})
	events := runtime.Log{
		{Kind: runtime.KindStaticConfig, Payload: []byte(`{"worker":"w1"}`)},
		{Kind: runtime.KindBootComplete},
	}
	for _, e := range events {
		if err := s.Extend(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Extend(runtime.Event{Kind: runtime.KindStaticConfig}); !errors.Is(err, runtime.ErrInvalid) {
		t.Errorf("extend after boot-complete = %v, want runtime.ErrInvalid", err)
	}
	e, err := s.Quote(context.Background(), rd("extend"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := quote.Parse(e.Quote)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := q.GetTdQuoteBody().GetRtmrs()[3], events.Replay(crypto.SHA384); !bytes.Equal(got, want) {
		t.Errorf("RTMR3 = %x, want %x", got, want)
	}
	log, err := runtime.Parse(bytes.NewReader(e.RuntimeLog))
	if err != nil {
		t.Fatal(err)
	}
	if got := log.Replay(crypto.SHA384); !bytes.Equal(got, q.GetTdQuoteBody().GetRtmrs()[3]) {
		t.Errorf("runtime log replays to %x, quote RTMR3 %x", got, q.GetTdQuoteBody().GetRtmrs()[3])
	}
	if string(e.EventLog) != "ccel" {
		t.Errorf("event log %q", e.EventLog)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Quote(ctx, rd("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Quote with a cancelled context = %v", err)
	}
}

// TestPolicy: simulated quotes meet measure/policy as Evidence.Simulated.
func TestPolicy(t *testing.T) {
	s := newSim(t, Options{})
	data := rd("policy")
	q, err := Verify(mustQuote(t, s, data), s.Root())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := s.Measurements()
	prod := &policy.Policy{ImageHashes: [][32]byte{m.ImageHash()}}
	dev := &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{m.ImageHash()}}
	if err := prod.Validate(policy.Evidence{Quote: q, Simulated: true}, data[:]); !errors.Is(err, policy.ErrSimulated) {
		t.Errorf("production policy: %v, want policy.ErrSimulated", err)
	}
	if err := dev.Validate(policy.Evidence{Quote: q, Simulated: true}, data[:]); err != nil {
		t.Errorf("allow_simulated policy: %v", err)
	}
	body := DefaultBody()
	body.TDAttributes |= AttrDebug
	dbg := newSim(t, Options{Body: &body})
	dq, err := Verify(mustQuote(t, dbg, data), dbg.Root())
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Validate(policy.Evidence{Quote: dq, Simulated: true}, data[:]); !errors.Is(err, policy.ErrDebug) {
		t.Errorf("debug TD: %v, want policy.ErrDebug", err)
	}
}

func TestLayoutOffsets(t *testing.T) {
	// The offsets measure/quote and go-tdx-guest use (0x278, 0x27C, QE
	// report at 0x302 in a quote whose signed data starts at 0x27C).
	if signedSizeOff != 0x278 || signedDataOff != 0x27C || qeReportOff != 0x302 {
		t.Fatalf("offsets %#x %#x %#x", signedSizeOff, signedDataOff, qeReportOff)
	}
	raw := mustQuote(t, newSim(t, Options{}), rd("offsets"))
	if n := binary.LittleEndian.Uint32(raw[signedSizeOff:]); int(n) != len(raw)-signedDataOff {
		t.Fatalf("signed data size %d, %d bytes follow", n, len(raw)-signedDataOff)
	}
}

// TestOpenSSLVerifiesChain: OpenSSL's path validation accepts the PCK
// chain with the simulator's root as the only trust anchor (skipped where
// openssl is not installed).
func TestOpenSSLVerifiesChain(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	certs := chainCerts(t, mustQuote(t, newSim(t, Options{}), rd("openssl")))
	dir := t.TempDir()
	write := func(name string, c *x509.Certificate) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf, ca, root := write("leaf.pem", certs[0]), write("ca.pem", certs[1]), write("root.pem", certs[2])
	out, err := exec.Command(bin, "verify", "-x509_strict", "-attime", fmt.Sprint(testNow.Unix()), "-CAfile", root, "-untrusted", ca, leaf).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// And refuses it against another simulator's root.
	other := write("other.pem", newSim(t, Options{Seed: testSeed(3)}).Root())
	if out, err := exec.Command(bin, "verify", "-CAfile", other, "-untrusted", ca, leaf).CombinedOutput(); err == nil {
		t.Fatalf("openssl verify accepted the chain with another root:\n%s", out)
	}
}
