package quote

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// sameVerdict fails unless Verify's (qa, ea) and the Verifier's (qb, eb) are
// the same verdict: both accepted with the same quote, or both rejected with
// the same kinds of ours.
func sameVerdict(t *testing.T, name string, qa *pb.QuoteV4, ea error, qb *pb.QuoteV4, eb error) {
	t.Helper()
	if (ea == nil) != (eb == nil) {
		t.Errorf("%s: Verify: %v; Verifier: %v", name, ea, eb)
		return
	}
	if ea == nil {
		ba, err := abi.QuoteToAbiBytes(qa)
		if err != nil {
			t.Fatal(err)
		}
		bb, err := abi.QuoteToAbiBytes(qb)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba, bb) || qb.ExtraBytes != nil {
			t.Errorf("%s: Verifier accepted a different quote than Verify", name)
		}
		return
	}
	for kname, k := range kinds {
		if a, b := errors.Is(ea, k), errors.Is(eb, k); a != b {
			t.Errorf("%s: errors.Is(err, %s): Verify %v, Verifier %v\n\tVerify:   %v\n\tVerifier: %v", name, kname, a, b, ea, eb)
		}
	}
}

// verifiers is one set of Verifiers, warmed up with the sample or not.
type verifiers struct {
	offline, coll, getter *Verifier
}

func newVerifiers(t testing.TB, warm bool) verifiers {
	v := verifiers{
		offline: NewVerifier(VerifierOptions{}),
		coll:    NewVerifier(VerifierOptions{Collateral: sampleCollateral(t)}),
		getter:  NewVerifier(VerifierOptions{Getter: &fakePCS{t: t}}),
	}
	if warm {
		raw := sampleQuote(t)
		if _, err := v.offline.Verify(raw, nowOffline); err != nil {
			t.Fatalf("warming up offline: %v", err)
		}
		for _, w := range []*Verifier{v.coll, v.getter} {
			if _, err := w.Verify(raw, nowCollateral); !errors.Is(err, ErrTCBStatus) {
				t.Fatalf("warming up with collateral: %v, want ErrTCBStatus", err)
			}
		}
	}
	return v
}

// compare verifies raw at now with Verify and with the Verifiers in vs,
// offline or with the sample collateral (given, and served by fakePCS).
func compare(t *testing.T, name string, vs verifiers, raw []byte, now time.Time, coll bool) {
	t.Helper()
	if !coll {
		qa, ea := Verify(raw, Options{Now: now})
		qb, eb := vs.offline.Verify(raw, now)
		sameVerdict(t, name+" (offline)", qa, ea, qb, eb)
		return
	}
	qa, ea := Verify(raw, Options{Now: now, Collateral: sampleCollateral(t)})
	qb, eb := vs.coll.Verify(raw, now)
	sameVerdict(t, name+" (collateral)", qa, ea, qb, eb)
	qa, ea = Verify(raw, Options{Now: now, Getter: &fakePCS{t: t}})
	qb, eb = vs.getter.Verify(raw, now)
	sameVerdict(t, name+" (getter)", qa, ea, qb, eb)
}

// TestVerifierEquivalence runs Verify and Verifiers, cold and warm, over the
// sample and every case of the failure tables.
func TestVerifierEquivalence(t *testing.T) {
	sample := sampleQuote(t)
	warm := newVerifiers(t, true)
	for round := 0; round < 2; round++ { // the second round: everything warm
		for _, c := range failureCases(t) {
			raw := c.mod(bytes.Clone(sample))
			compare(t, "cold: "+c.name, newVerifiers(t, false), raw, c.now, c.coll)
			compare(t, "warm: "+c.name, warm, raw, c.now, c.coll)
		}
		for name, raw := range trailerCases(sample) {
			compare(t, "warm: "+name, warm, raw, nowOffline, false)
			compare(t, "warm: "+name, warm, raw, nowCollateral, true)
		}
		for _, now := range []time.Time{beforePCK, nowCollateral, nowOffline, afterPCK,
			time.Date(2023, time.July, 8, 7, 24, 59, 0, time.UTC), // QE identity nextUpdate: still valid
			time.Date(2023, time.July, 8, 7, 25, 0, 0, time.UTC),  // a second later
			time.Date(2029, time.September, 20, 13, 20, 31, 0, time.UTC),
			time.Date(2029, time.September, 20, 13, 20, 32, 0, time.UTC),
		} {
			name := "sample at " + now.Format(time.RFC3339)
			for _, coll := range []bool{false, true} {
				compare(t, "cold: "+name, newVerifiers(t, false), sample, now, coll)
				compare(t, "warm: "+name, warm, sample, now, coll)
			}
		}
	}

	// The collateral failure table; each collateral gets its own Verifier,
	// asked twice (the second call finds the PCK chain cached), and the
	// same collateral served by a getter.
	for _, c := range collateralFailureCases() {
		coll := sampleCollateral(t)
		c.mod(coll)
		qa, ea := Verify(sample, Options{Now: nowCollateral, Collateral: coll})
		v := NewVerifier(VerifierOptions{Collateral: coll})
		for i := 0; i < 2; i++ {
			qb, eb := v.Verify(sample, nowCollateral)
			sameVerdict(t, fmt.Sprintf("%s (call %d)", c.name, i+1), qa, ea, qb, eb)
		}
		if g, err := coll.getter(); err == nil {
			qa, ea := Verify(sample, Options{Now: nowCollateral, Getter: g})
			v := NewVerifier(VerifierOptions{Getter: g})
			for i := 0; i < 2; i++ {
				qb, eb := v.Verify(sample, nowCollateral)
				sameVerdict(t, fmt.Sprintf("%s (getter, call %d)", c.name, i+1), qa, ea, qb, eb)
			}
		}
	}

	// The forms of collateral TestVerifySampleWithCollateral accepts.
	noCRL := sampleCollateral(t)
	noCRL.PCKCRL, noCRL.PCKCRLIssuerChain, noCRL.RootCACRL = nil, nil, nil
	encoded := sampleCollateral(t)
	encoded.TCBInfoIssuerChain = []byte(url.QueryEscape(string(encoded.TCBInfoIssuerChain)))
	for name, coll := range map[string]*Collateral{"no CRLs": noCRL, "URL-encoded chain": encoded} {
		for _, now := range []time.Time{nowCollateral, nowOffline, afterPCK} {
			qa, ea := Verify(sample, Options{Now: now, Collateral: coll})
			qb, eb := NewVerifier(VerifierOptions{Collateral: coll}).Verify(sample, now)
			sameVerdict(t, name+" at "+now.Format(time.RFC3339), qa, ea, qb, eb)
		}
	}
}

// withChainPrefix puts newlines before the PCK chain's first PEM block (PEM
// decoders skip them) and fixes the three sizes that cover it: another byte
// string for the same, still valid, chain.
func withChainPrefix(sample []byte, newlines string) []byte {
	prefix := newlines
	out := append(bytes.Clone(sample[:offChain]), prefix...)
	out = append(out, sample[offChain:]...)
	for _, off := range []int{offSigSize, offSignature + 0x82, offChain - 4} {
		binary.LittleEndian.PutUint32(out[off:], binary.LittleEndian.Uint32(out[off:])+uint32(len(prefix)))
	}
	return out
}

// The cache holds verified chains and nothing time-dependent: a warm
// Verifier still rejects another chain, a chain outside its validity at
// now, and a bad signature under a cached chain.
func TestVerifierCache(t *testing.T) {
	sample := sampleQuote(t)
	tampered := failureCase{}
	for _, c := range failureCases(t) {
		if c.name == "PCK leaf certificate byte" {
			tampered = c
		}
	}
	v := NewVerifier(VerifierOptions{})
	step := func(name string, raw []byte, now time.Time, want ...error) {
		t.Helper()
		_, err := v.Verify(raw, now)
		if len(want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			return
		}
		checkKinds(t, name, err, want...)
	}
	step("sample", sample, nowOffline)
	step("another (tampered) PCK chain", tampered.mod(bytes.Clone(sample)), nowOffline, ErrCertificate)
	step("cached chain after the PCK leaf expired", sample, afterPCK, ErrExpired, ErrCertificate)
	step("cached chain before the PCK leaf is valid", sample, beforePCK, ErrExpired, ErrCertificate)
	step("QE report signature under the cached chain", func() []byte { b := bytes.Clone(sample); b[offQESig+7] ^= 1; return b }(), nowOffline, ErrSignature)
	step("quote signature under the cached chain", func() []byte { b := bytes.Clone(sample); b[offSignature+9] ^= 1; return b }(), nowOffline, ErrSignature)
	step("sample again", sample, nowOffline)
	if n := v.chains.len(); n != 1 {
		t.Errorf("%d chains cached, want 1 (only the sample's verified)", n)
	}
	step("same chain, other bytes", withChainPrefix(sample, "\n"), nowOffline)
	if n := v.chains.len(); n != 2 {
		t.Errorf("%d chains cached, want 2", n)
	}

	// With collateral: expiry of the collateral is also checked per call.
	c := NewVerifier(VerifierOptions{Collateral: sampleCollateral(t)})
	for _, s := range []struct {
		now  time.Time
		want []error
	}{
		{nowCollateral, []error{ErrTCBStatus}},
		{nowOffline, []error{ErrExpired, ErrCollateral}},
		{afterPCK, []error{ErrExpired, ErrCertificate}},
		{nowCollateral, []error{ErrTCBStatus}},
	} {
		_, err := c.Verify(sample, s.now)
		checkKinds(t, "collateral at "+s.now.Format(time.RFC3339), err, s.want...)
	}
}

// Revocation is looked up at every call, in the CRL set, for the cached chain.
func TestVerifierRevocation(t *testing.T) {
	sample := sampleQuote(t)
	v := NewVerifier(VerifierOptions{Collateral: sampleCollateral(t)})
	if _, err := v.Verify(sample, nowCollateral); !errors.Is(err, ErrTCBStatus) {
		t.Fatalf("sample: %v", err)
	}
	var pck *pckChain
	for _, c := range v.chains.m {
		pck = c
	}
	crls := v.given.crls
	revokedAt := time.Date(2023, time.June, 30, 0, 0, 0, 0, time.UTC)
	for name, m := range map[string]map[string]time.Time{"PCK leaf": crls.pckRevoked, "intermediate": crls.rootRevoked} {
		serial := pck.leafSerial
		if name == "intermediate" {
			serial = pck.interSerial
		}
		m[serial] = revokedAt
		_, err := v.Verify(sample, nowCollateral)
		checkKinds(t, name+" revoked", err, ErrCertificate)
		delete(m, serial)
		if _, err := v.Verify(sample, nowCollateral); !errors.Is(err, ErrTCBStatus) {
			t.Errorf("%s no longer revoked: %v, want ErrTCBStatus", name, err)
		}
	}
}

// The chain cache is bounded, whatever chains come in.
func TestVerifierBounded(t *testing.T) {
	sample := sampleQuote(t)
	v := NewVerifier(VerifierOptions{MaxChains: 4})
	for i := 0; i < 20; i++ {
		if _, err := v.Verify(withChainPrefix(sample, strings.Repeat("\n", i+1)), nowOffline); err != nil {
			t.Fatalf("variant %d: %v", i, err)
		}
		if n := v.chains.len(); n > 4 {
			t.Fatalf("%d chains cached after %d, want at most 4", n, i+1)
		}
	}
	if n := v.chains.len(); n != 4 {
		t.Errorf("%d chains cached, want 4", n)
	}
}

// With a Getter, collateral is fetched once per platform, again when older
// than CollateralMaxAge, and again after it failed to verify; nothing is
// fetched for a chain that does not verify.
func TestVerifierGetter(t *testing.T) {
	sample := sampleQuote(t)
	g := &fakePCS{t: t}
	v := NewVerifier(VerifierOptions{Getter: g, CollateralMaxAge: time.Hour})
	for i := 0; i < 5; i++ {
		if _, err := v.Verify(sample, nowCollateral.Add(time.Duration(i)*time.Minute)); !errors.Is(err, ErrTCBStatus) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if len(g.urls) != 4 {
		t.Errorf("fetched %d times for 5 quotes, want 4 (one set)", len(g.urls))
	}
	if _, err := v.Verify(sample, nowCollateral.Add(2*time.Hour)); !errors.Is(err, ErrTCBStatus) {
		t.Fatal(err)
	}
	if len(g.urls) != 8 {
		t.Errorf("fetched %d times after CollateralMaxAge, want 8", len(g.urls))
	}
	var bad failureCase
	for _, c := range failureCases(t) {
		if c.name == "intermediate CA cert byte" {
			bad = c
		}
	}
	g.urls = nil
	v = NewVerifier(VerifierOptions{Getter: g})
	_, err := v.Verify(bad.mod(bytes.Clone(sample)), nowCollateral)
	checkKinds(t, "getter, tampered chain", err, ErrCertificate)
	if len(g.urls) != 0 {
		t.Errorf("fetched %q for a chain that does not verify", g.urls)
	}

	// A TCB info that does not verify is fetched again at the next quote.
	coll := sampleCollateral(t)
	coll.TCBInfo = bytes.Replace(coll.TCBInfo, []byte(`"tcbEvaluationDataNumber":15`), []byte(`"tcbEvaluationDataNumber":16`), 1)
	og, err := coll.getter()
	if err != nil {
		t.Fatal(err)
	}
	cg := &countingGetter{g: og}
	v = NewVerifier(VerifierOptions{Getter: cg})
	for i := 0; i < 3; i++ {
		_, err := v.Verify(sample, nowCollateral)
		checkKinds(t, "getter, TCB info changed", err, ErrCollateral)
	}
	if cg.n != 12 {
		t.Errorf("fetched %d times for 3 quotes with bad TCB info, want 12", cg.n)
	}
}

type countingGetter struct {
	mu sync.Mutex
	g  *offlineGetter
	n  int
}

func (c *countingGetter) Get(u string) (map[string][]string, []byte, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.g.Get(u)
}

// Where the Verifier is deliberately stricter than Verify (see Verifier).
func TestVerifierStricter(t *testing.T) {
	sample := sampleQuote(t)

	// 2023-06-10: the QE identity and PCK CRL are out (06-08), the TCB
	// info not yet (06-18). Verify does not look at issueDate.
	early := time.Date(2023, time.June, 10, 0, 0, 0, 0, time.UTC)
	_, err := Verify(sample, Options{Now: early, Collateral: sampleCollateral(t)})
	checkKinds(t, "Verify, TCB info from the future", err, ErrTCBStatus)
	_, err = NewVerifier(VerifierOptions{Collateral: sampleCollateral(t)}).Verify(sample, early)
	checkKinds(t, "Verifier, TCB info from the future", err, ErrExpired, ErrCollateral)

	// An unsigned "TCBINFO" member after the signed "tcbInfo", with every
	// SVN 0 so that the sample's platform is UpToDate in it; likewise an
	// "ENCLAVEIDENTITY" for the QE. Verify reads the shadows.
	coll := sampleCollateral(t)
	coll.TCBInfo, _ = shadow(t, coll.TCBInfo, "tcbInfo", "TCBINFO", lowTCB)
	coll.QEIdentity, _ = shadow(t, coll.QEIdentity, "enclaveIdentity", "ENCLAVEIDENTITY", lowQE)
	_, err = Verify(sample, Options{Now: nowCollateral, Collateral: coll})
	checkKinds(t, "Verify, shadowed collateral (refused: unsigned members)", err, ErrCollateral)
	if err == nil || !strings.Contains(err.Error(), "unsigned data is refused") {
		t.Errorf("Verify with shadowed collateral: %v, want the unsigned member named", err)
	}
	_, err = Verify(sample, Options{Now: nowCollateral, Collateral: coll, lenientCollateral: true})
	t.Logf("go-tdx-guest alone, shadowed collateral: %v", err)
	_, err = NewVerifier(VerifierOptions{Collateral: coll}).Verify(sample, nowCollateral)
	checkKinds(t, "Verifier, shadowed collateral", err, ErrTCBStatus)
}

// shadow appends to a PCS response a member named name holding the signed
// member's value as edited (decoded with json.Number, re-encoded), and
// returns the new body and the edited value.
func shadow(t testing.TB, body []byte, signed, name string, edit func(m map[string]any)) ([]byte, []byte) {
	t.Helper()
	v, err := member(body, signed)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	forged, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(body, '}')
	return append(append(bytes.Clone(body[:i]), fmt.Sprintf(",%q:%s", name, forged)...), body[i:]...), forged
}

func levels(m map[string]any) []map[string]any {
	var out []map[string]any
	for _, l := range m["tcbLevels"].([]any) {
		out = append(out, l.(map[string]any))
	}
	return out
}

func tcbOf(l map[string]any) map[string]any { return l["tcb"].(map[string]any) }

func comps(l map[string]any, kind string) []map[string]any {
	var out []map[string]any
	for _, c := range tcbOf(l)[kind].([]any) {
		out = append(out, c.(map[string]any))
	}
	return out
}

// lowTCB sets every SVN of every TCB level to 0: the sample's platform
// matches the first level, UpToDate.
func lowTCB(m map[string]any) {
	for _, l := range levels(m) {
		for _, kind := range []string{"sgxtcbcomponents", "tdxtcbcomponents"} {
			for _, c := range comps(l, kind) {
				c["svn"] = 0
			}
		}
		tcbOf(l)["pcesvn"] = 0
	}
}

// lowQE sets every QE TCB level's isvsvn to 0: the sample's QE is UpToDate.
func lowQE(m map[string]any) {
	for _, l := range levels(m) {
		tcbOf(l)["isvsvn"] = 0
	}
}

// TestVerifierTCBEvaluation compares the Verifier's TCB level and QE
// identity evaluation with go-tdx-guest's on TCB info and QE identity that
// Intel did not sign, which the sample cannot reach otherwise: Verify reads
// them from an unsigned shadow member (see TestVerifierStricter), the
// Verifier gets them put in place of the verified ones.
func TestVerifierTCBEvaluation(t *testing.T) {
	sample := sampleQuote(t)
	type edit = func(m map[string]any)
	tcs := []struct {
		name    string
		tcb, qe edit
	}{
		{"both UpToDate", nil, nil},
		{"TCB level OutOfDate", func(m map[string]any) { levels(m)[0]["tcbStatus"] = "OutOfDate" }, nil},
		{"TCB level SWHardeningNeeded", func(m map[string]any) { levels(m)[0]["tcbStatus"] = "SWHardeningNeeded" }, nil},
		{"first level PCESVN too high", func(m map[string]any) { tcbOf(levels(m)[0])["pcesvn"] = 12 }, nil},
		{"first level CPUSVN too high", func(m map[string]any) { comps(levels(m)[0], "sgxtcbcomponents")[3]["svn"] = 3 }, nil},
		{"first level TEE_TCB_SVN[2] 4 (sample's)", func(m map[string]any) { comps(levels(m)[0], "tdxtcbcomponents")[2]["svn"] = 4 }, nil},
		{"first level TEE_TCB_SVN[2] 5", func(m map[string]any) { comps(levels(m)[0], "tdxtcbcomponents")[2]["svn"] = 5 }, nil},
		{"first level TEE_TCB_SVN[0] 4", func(m map[string]any) { comps(levels(m)[0], "tdxtcbcomponents")[0]["svn"] = 4 }, nil},
		{"15 SGX components", func(m map[string]any) {
			for _, l := range levels(m) {
				c := tcbOf(l)["sgxtcbcomponents"].([]any)
				tcbOf(l)["sgxtcbcomponents"] = c[:15]
			}
		}, nil},
		{"no TCB levels match", func(m map[string]any) {
			for _, l := range levels(m) {
				tcbOf(l)["pcesvn"] = 99
			}
		}, nil},
		{"FMSPC", func(m map[string]any) { m["fmspc"] = "50806f000001" }, nil},
		{"FMSPC upper case", func(m map[string]any) { m["fmspc"] = "50806F000000" }, nil},
		{"PCE-ID", func(m map[string]any) { m["pceId"] = "0001" }, nil},
		{"TDX module mrsigner", func(m map[string]any) {
			m["tdxModule"].(map[string]any)["mrsigner"] = strings.Repeat("01", 48)
		}, nil},
		{"TDX module attributes", func(m map[string]any) { m["tdxModule"].(map[string]any)["attributes"] = "0100000000000000" }, nil},
		{"TDX module attributes mask size", func(m map[string]any) { m["tdxModule"].(map[string]any)["attributesMask"] = "FFFFFFFF" }, nil},
		{"TDX module attributes under a zero mask", func(m map[string]any) {
			m["tdxModule"].(map[string]any)["attributesMask"] = "0000000000000000"
		}, nil},
		{"QE level OutOfDate", nil, func(m map[string]any) { levels(m)[0]["tcbStatus"] = "OutOfDate" }},
		{"QE ISVSVN below every level", nil, func(m map[string]any) { tcbOf(levels(m)[0])["isvsvn"] = 99 }},
		{"QE second level matches", nil, func(m map[string]any) {
			m["tcbLevels"] = append(m["tcbLevels"].([]any), map[string]any{"tcb": map[string]any{"isvsvn": 0}, "tcbStatus": "Revoked"})
			tcbOf(levels(m)[0])["isvsvn"] = 99
		}},
		{"QE ISVPRODID", nil, func(m map[string]any) { m["isvprodid"] = 3 }},
		{"QE MRSIGNER", nil, func(m map[string]any) { m["mrsigner"] = strings.Repeat("AB", 32) }},
		{"QE MISCSELECT", nil, func(m map[string]any) { m["miscselect"] = "00000001" }},
		{"QE MISCSELECT mask size", nil, func(m map[string]any) { m["miscselectMask"] = "FFFF" }},
		{"QE MISCSELECT size", nil, func(m map[string]any) { m["miscselect"] = "000000" }},
		{"QE attributes", nil, func(m map[string]any) { m["attributes"] = "13000000000000000000000000000000" }},
		{"QE attributes mask size", nil, func(m map[string]any) { m["attributesMask"] = "FBFFFFFFFFFFFFFF" }},
	}
	for _, c := range tcs {
		coll := sampleCollateral(t)
		var tcbJSON, qeJSON []byte
		coll.TCBInfo, tcbJSON = shadow(t, coll.TCBInfo, "tcbInfo", "TCBINFO", func(m map[string]any) {
			lowTCB(m)
			if c.tcb != nil {
				c.tcb(m)
			}
		})
		coll.QEIdentity, qeJSON = shadow(t, coll.QEIdentity, "enclaveIdentity", "ENCLAVEIDENTITY", func(m map[string]any) {
			lowQE(m)
			if c.qe != nil {
				c.qe(m)
			}
		})
		qa, ea := Verify(sample, Options{Now: nowCollateral, Collateral: coll, lenientCollateral: true})

		v := NewVerifier(VerifierOptions{Collateral: sampleCollateral(t)})
		var tcb pcs.TcbInfo
		var qe pcs.EnclaveIdentity
		if err := json.Unmarshal(tcbJSON, &tcb); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(qeJSON, &qe); err != nil {
			t.Fatal(err)
		}
		v.given.tcb, v.given.qe = &tcb, &qe
		qb, eb := v.Verify(sample, nowCollateral)
		sameVerdict(t, c.name, qa, ea, qb, eb)
		t.Logf("%-40s Verify: %v", c.name+":", ea)
	}
}

// The TDX module identity branch (TEE_TCB_SVN[1] > 0), which no quote of
// ours reaches.
func TestTDXModuleTCBStatus(t *testing.T) {
	zero := make([]pcs.TcbComponent, 16)
	ti := &pcs.TcbInfo{
		TcbLevels: []pcs.TcbLevel{{Tcb: pcs.Tcb{SgxTcbcomponents: zero, TdxTcbcomponents: []pcs.TcbComponent{{Svn: 9}, {Svn: 0}, {Svn: 1}, 15: {}}}, TcbStatus: pcs.TcbComponentStatusUpToDate}},
		TdxModuleIdentities: []pcs.TdxModuleIdentity{{ID: "TDX_01", TcbLevels: []pcs.TcbLevel{
			{Tcb: pcs.Tcb{Isvsvn: 3}, TcbStatus: pcs.TcbComponentStatusUpToDate},
			{Tcb: pcs.Tcb{Isvsvn: 0}, TcbStatus: pcs.TcbComponentStatusOutOfDate},
		}}},
	}
	ext := &pcs.PckExtensions{TCB: pcs.PckCertTCB{CPUSvnComponents: make([]byte, 16)}}
	svn := func(b ...byte) []byte { return append(b, make([]byte, 16-len(b))...) }
	for _, c := range []struct {
		name string
		svn  []byte
		want error
	}{
		// Components 0 and 1 are the module's, judged by its identity.
		{"module 1 SVN 3", svn(3, 1, 1), nil},
		{"module 1 SVN 5", svn(5, 1, 1), nil},
		{"module 1 SVN 2", svn(2, 1, 1), ErrTCBStatus},
		{"module 2: no identity", svn(3, 2, 1), ErrTCBStatus},
		{"TEE_TCB_SVN[2] below the level", svn(3, 1, 0), ErrTCBStatus},
		// Module version 0: all 16 components against the level.
		{"module 0 below the level", svn(3, 0, 1), ErrTCBStatus},
		{"module 0 at the level", svn(9, 0, 1), nil},
		{"module 0, TEE_TCB_SVN[2] below the level", svn(9, 0, 0), ErrTCBStatus},
	} {
		err := tdxTCBStatus(ti, c.svn, ext)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestVerifierNoTime(t *testing.T) {
	if _, err := NewVerifier(VerifierOptions{}).Verify(sampleQuote(t), time.Time{}); err == nil {
		t.Fatal("Verify with a zero time: accepted")
	}
}

// The bytes checkSignatures hashes are those go-tdx-guest's encoder gives.
func TestSignedBytes(t *testing.T) {
	raw := sampleQuote(t)
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := abi.HeaderToAbiBytes(q.GetHeader())
	b, _ := abi.TdQuoteBodyToAbiBytes(q.GetTdQuoteBody())
	if !bytes.Equal(raw[:quoteSignedEnd], append(h, b...)) {
		t.Error("header || TD quote body differs from go-tdx-guest's encoding")
	}
	r, _ := abi.EnclaveReportToAbiBytes(q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetQeReport())
	if !bytes.Equal(raw[qeReportStart:qeReportStart+qeReportSize], r) {
		t.Error("QE report differs from go-tdx-guest's encoding")
	}
}

// Many goroutines on one Verifier, with a cache of 2 for 3 chains so that
// entries are evicted while others read them. Run with -race.
func TestVerifierConcurrent(t *testing.T) {
	sample := sampleQuote(t)
	type input struct {
		name string
		raw  []byte
		now  time.Time
		want error // nil, or the one kind to expect
	}
	var in []input
	for _, c := range failureCases(t) {
		if !c.coll {
			in = append(in, input{c.name, c.mod(bytes.Clone(sample)), c.now, c.want[0]})
		}
	}
	in = append(in,
		input{"variant 1", withChainPrefix(sample, "\n\n"), nowOffline, nil},
		input{"variant 2", withChainPrefix(sample, "\n\n\n"), nowOffline, nil},
		input{"sample", sample, nowOffline, nil},
	)
	off := NewVerifier(VerifierOptions{MaxChains: 2})
	coll := NewVerifier(VerifierOptions{Collateral: sampleCollateral(t), MaxChains: 2})
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3*len(in); i++ {
				c := in[(i+w*7)%len(in)]
				_, err := off.Verify(c.raw, c.now)
				if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
					errc <- fmt.Errorf("%s: %v, want %v", c.name, err, c.want)
					return
				}
				if _, err := coll.Verify(sample, nowCollateral); !errors.Is(err, ErrTCBStatus) {
					errc <- fmt.Errorf("collateral: %v, want ErrTCBStatus", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}
