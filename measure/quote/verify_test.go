package quote

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// Times for the sample (testdata/README.md): its PCK certificate is valid
// 2022-09-20 to 2029-09-20 13:20:31 UTC; its collateral from 2023-06-18
// (TCB info issued) to 2023-07-08 (QE identity and PCK CRL next update).
var (
	nowOffline    = time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)
	nowCollateral = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
	afterPCK      = time.Date(2029, time.September, 21, 0, 0, 0, 0, time.UTC)
	beforePCK     = time.Date(2022, time.September, 1, 0, 0, 0, 0, time.UTC)
)

// Offsets in the sample quote (Quote Format v4; see doc.go).
const (
	offBody      = 0x30
	offMRTD      = offBody + 0x88
	offRTMR2     = offBody + 0x1A8
	offRepData   = offBody + 0x208
	offSigSize   = 0x278
	offSignature = 0x27C
	offAttestKey = 0x2BC
	offQEReport  = 0x302
	offQESig     = 0x482
	offQEAuth    = 0x4C4
	offChain     = 0x4EA
	sampleSigned = 0x1347 // end of the signed data; 39 unsigned bytes follow
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleQuote(t testing.TB) []byte { return readTestdata(t, "tdx_prod_quote_SPR_E4.dat") }

func sampleCollateral(t testing.TB) *Collateral {
	chain := readTestdata(t, "tcb_signing_chain.pem")
	return &Collateral{
		TCBInfo:               readTestdata(t, "sample_tcbInfo_response"),
		TCBInfoIssuerChain:    chain,
		QEIdentity:            readTestdata(t, "sample_qeIdentity_response"),
		QEIdentityIssuerChain: chain,
		PCKCRL:                readTestdata(t, "pckcrl"),
		PCKCRLIssuerChain:     readTestdata(t, "pckcrl_issuer_chain.pem"),
		RootCACRL:             readTestdata(t, "rootcrl.der"),
	}
}

// The sample's values, read independently with
// `xxd -s $((0x30+OFFSET)) -l LEN -p testdata/tdx_prod_quote_SPR_E4.dat`.
const (
	sampleAttributes = "0000004000000000" // bit 30: PKS
	sampleXFAM       = "e71a060000000000"
	sampleMRTD       = "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"
	sampleRTMR0      = "2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a"
	sampleRTMR1      = "2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61"
	sampleRTMR2      = "8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e"
	sampleRTMR3      = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
	// Computed with:
	//	q=testdata/tdx_prod_quote_SPR_E4.dat
	//	{ printf 'cocoon-image-hash/v1\0'
	//	  dd if=$q bs=1 skip=$((0x30+0x78)) count=64 status=none    # TDATTRIBUTES, XFAM, MRTD
	//	  dd if=$q bs=1 skip=$((0x30+0x148)) count=192 status=none  # RTMR0..3
	//	} | sha256sum
	sampleImageHash = "69aaad308a05d8033b2f6b776a83f85376860325d1bd2280d820b942b2734a51"
)

func TestRootMatchesSampleChain(t *testing.T) {
	raw := sampleQuote(t)
	var last *pem.Block
	for rest := raw[offChain:sampleSigned]; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		last = b
	}
	if last == nil || !bytes.Equal(last.Bytes, intelRoot().Raw) {
		t.Fatal("the root certificate in the sample's PCK chain is not our embedded Intel SGX Root CA")
	}
}

func TestVerifySample(t *testing.T) {
	q, err := Verify(sampleQuote(t), Options{Now: nowOffline})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	b := q.GetTdQuoteBody()
	t.Logf("td_attributes %x", b.GetTdAttributes())
	t.Logf("xfam          %x", b.GetXfam())
	t.Logf("mrtd          %x", b.GetMrTd())
	for i, r := range b.GetRtmrs() {
		t.Logf("rtmr%d         %x", i, r)
	}
	t.Logf("tee_tcb_svn   %x", b.GetTeeTcbSvn())
	t.Logf("report_data   %x", b.GetReportData())
	for name, c := range map[string]struct {
		got  []byte
		want string
	}{
		"td_attributes": {b.GetTdAttributes(), sampleAttributes},
		"xfam":          {b.GetXfam(), sampleXFAM},
		"mrtd":          {b.GetMrTd(), sampleMRTD},
		"rtmr0":         {b.GetRtmrs()[0], sampleRTMR0},
		"rtmr1":         {b.GetRtmrs()[1], sampleRTMR1},
		"rtmr2":         {b.GetRtmrs()[2], sampleRTMR2},
		"rtmr3":         {b.GetRtmrs()[3], sampleRTMR3},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s = %x, want %s", name, c.got, c.want)
		}
	}
	m, err := imagehash.FromQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	h := m.ImageHash()
	t.Logf("image hash    %x", h)
	if hex.EncodeToString(h[:]) != sampleImageHash {
		t.Errorf("image hash = %x, want %s", h, sampleImageHash)
	}
	if q.ExtraBytes != nil {
		t.Errorf("unsigned trailing bytes kept: %q", q.ExtraBytes)
	}
}

// The sample collateral is Intel-signed, fresh at nowCollateral, and lists
// only TCB levels above the sample platform's (its PCK certificate has
// CPUSVN 03 03 02 02 02 01 00 02..., both levels need 05 05 02 02 03 01 00
// 03...): go-tdx-guest's own tests expect the same rejection. Every signature
// (quote, QE report, PCK chain, TCB info, QE identity, both CRLs) has been
// checked by the time the TCB level is compared, so this also shows the
// collateral path works offline.
func TestVerifySampleWithCollateral(t *testing.T) {
	raw := sampleQuote(t)
	_, err := Verify(raw, Options{Now: nowCollateral, Collateral: sampleCollateral(t)})
	if !errors.Is(err, ErrTCBStatus) || !errors.Is(err, ErrCollateral) {
		t.Fatalf("Verify with collateral: %v, want ErrTCBStatus", err)
	}
	t.Logf("with collateral: %v", err)

	// Without CRLs: no revocation check, same verdict.
	c := sampleCollateral(t)
	c.PCKCRL, c.PCKCRLIssuerChain, c.RootCACRL = nil, nil, nil
	if _, err := Verify(raw, Options{Now: nowCollateral, Collateral: c}); !errors.Is(err, ErrTCBStatus) {
		t.Errorf("Verify with collateral without CRLs: %v, want ErrTCBStatus", err)
	}

	// Issuer chains as PCS sends them (URL-encoded) and CRLs as PEM.
	c = sampleCollateral(t)
	c.TCBInfoIssuerChain = []byte(url.QueryEscape(string(c.TCBInfoIssuerChain)))
	c.PCKCRL = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.PCKCRL})
	if _, err := Verify(raw, Options{Now: nowCollateral, Collateral: c}); !errors.Is(err, ErrTCBStatus) {
		t.Errorf("Verify with URL-encoded chain and PEM CRL: %v, want ErrTCBStatus", err)
	}
}

// fakePCS serves the sample collateral at the PCS URLs, as PCS would.
type fakePCS struct {
	t    testing.TB
	urls []string
}

func (f *fakePCS) Get(u string) (map[string][]string, []byte, error) {
	f.urls = append(f.urls, u)
	c := sampleCollateral(f.t)
	enc := func(b []byte) []string { return []string{url.QueryEscape(string(b))} }
	switch u {
	case "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000":
		return map[string][]string{"Tcb-Info-Issuer-Chain": enc(c.TCBInfoIssuerChain)}, c.TCBInfo, nil
	case "https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity":
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": enc(c.QEIdentityIssuerChain)}, c.QEIdentity, nil
	case "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der":
		return map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": enc(c.PCKCRLIssuerChain)}, c.PCKCRL, nil
	case "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der":
		return nil, c.RootCACRL, nil
	}
	return nil, nil, errors.New("fakePCS: unknown URL " + u)
}

func TestGetter(t *testing.T) {
	raw := sampleQuote(t)
	g := &fakePCS{t: t}
	if _, err := Verify(raw, Options{Now: nowCollateral, Getter: g}); !errors.Is(err, ErrTCBStatus) {
		t.Errorf("Verify with a getter: %v, want ErrTCBStatus", err)
	}
	if len(g.urls) != 4 {
		t.Errorf("getter fetched %q, want TCB info, QE identity and both CRLs", g.urls)
	}
	// Given collateral wins; the getter is not asked.
	g = &fakePCS{t: t}
	if _, err := Verify(raw, Options{Now: nowCollateral, Getter: g, Collateral: sampleCollateral(t)}); !errors.Is(err, ErrTCBStatus) {
		t.Errorf("Verify with collateral and a getter: %v, want ErrTCBStatus", err)
	}
	if len(g.urls) != 0 {
		t.Errorf("getter used although collateral was given: %q", g.urls)
	}
	// Offline without collateral: the getter is not asked either.
	if _, err := Verify(raw, Options{Now: nowOffline}); err != nil {
		t.Errorf("offline Verify: %v", err)
	}
}

func TestNoClock(t *testing.T) {
	if _, err := Verify(sampleQuote(t), Options{}); err == nil || !strings.Contains(err.Error(), "Now") {
		t.Fatalf("Verify with zero Now: %v, want an error naming Options.Now", err)
	}
}

// The QE pin cannot be reached through a real quote (changing the QE report
// breaks its PCK signature first), so test it on a parsed copy.
func TestCheckQE(t *testing.T) {
	parse := func() *pb.QuoteV4 {
		q, err := Parse(sampleQuote(t))
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	if err := checkQE(parse()); err != nil {
		t.Fatalf("sample: %v", err)
	}
	for name, mod := range map[string]func(r *pb.EnclaveReport){
		"mrsigner":  func(r *pb.EnclaveReport) { r.MrSigner = bytes.Repeat([]byte{1}, 32) },
		"isvprodid": func(r *pb.EnclaveReport) { r.IsvProdId = 1 },
		"debug":     func(r *pb.EnclaveReport) { r.Attributes[0] |= 2 },
	} {
		q := parse()
		mod(q.SignedData.CertificationData.QeReportCertificationData.QeReport)
		checkKinds(t, "QE "+name, checkQE(q), ErrSignature)
	}
}
