package ratls

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/vtpm"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/internal/swtpmtest"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/measure/tpm"
)

// vtpmRecording is guest/attest/vtpm's recorded swtpm evidence (its
// testdata/README.md): report data SHA-512("cocoon vtpm testdata"), PCRs
// 0-9 and 15, a two-event runtime log, and another TPM's AK.
type vtpmRecording struct {
	Evidence   attest.Evidence
	ReportData [attest.ReportDataSize]byte
	OtherAK    []byte // TPMT_PUBLIC
}

var vtpmRecordings = []string{"swtpm-ecc-p256.json", "swtpm-rsa-2048.json"}

func loadVTPMRecording(t testing.TB, name string) *vtpmRecording {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "attest", "vtpm", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		ReportData string          `json:"report_data"`
		Evidence   attest.Evidence `json:"evidence"`
		OtherAK    []byte          `json:"other_ak_public"`
		Comment    string          `json:"comment"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	r := &vtpmRecording{Evidence: f.Evidence, OtherAK: f.OtherAK}
	if n, err := hex.Decode(r.ReportData[:], []byte(f.ReportData)); err != nil || n != len(r.ReportData) {
		t.Fatalf("report data %q: %v", f.ReportData, err)
	}
	return r
}

// akName computes a TPM Name from a TPMT_PUBLIC independently of
// guest/attest/vtpm (TPM 2.0 Part 1, "Names"): nameAlg, which follows the
// 2-byte type, then the SHA-256 of the whole public area.
func akName(t testing.TB, pub []byte) []byte {
	t.Helper()
	if len(pub) < 4 || pub[2] != 0x00 || pub[3] != 0x0b {
		t.Fatalf("TPMT_PUBLIC %x: want name algorithm SHA-256 (000b)", pub[:min(4, len(pub))])
	}
	h := sha256.Sum256(pub)
	return append([]byte{0x00, 0x0b}, h[:]...)
}

func cloneVTPMEvidence(ev *attest.Evidence) *attest.Evidence {
	c := *ev
	c.Quote = bytes.Clone(ev.Quote)
	c.Signature = bytes.Clone(ev.Signature)
	c.AKPublic = bytes.Clone(ev.AKPublic)
	c.RuntimeLog = bytes.Clone(ev.RuntimeLog)
	c.PCRs = maps.Clone(ev.PCRs)
	for i, v := range c.PCRs {
		c.PCRs[i] = bytes.Clone(v)
	}
	return &c
}

// pcrSet takes the listed PCRs of values (all when none are listed).
func pcrSet(t testing.TB, values map[int][]byte, idx ...int) PCRSet {
	t.Helper()
	if len(idx) == 0 {
		idx = slices.Collect(maps.Keys(values))
	}
	s := PCRSet{}
	for _, i := range idx {
		if len(values[i]) != sha256.Size {
			t.Fatalf("PCR %d is %x", i, values[i])
		}
		s[i] = [sha256.Size]byte(values[i])
	}
	return s
}

// vtpmDocExample returns the JSON example in VTPMPolicy's documentation,
// so that it cannot drift from what ParseVTPMPolicy accepts.
func vtpmDocExample(t testing.TB) string {
	t.Helper()
	src, err := os.ReadFile("vtpm.go")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		if line == "//\t{" {
			in = true
		}
		if in {
			b.WriteString(strings.TrimPrefix(line, "//\t") + "\n")
			if line == "//\t}" {
				return b.String()
			}
		}
	}
	t.Fatal("no JSON example in vtpm.go")
	return ""
}

func TestParseVTPMPolicy(t *testing.T) {
	const (
		ak  = "000bb39bf3f482520b18906d2cdea1d25515d7173dbfd1f70235ff80d97a171f7026"
		ak2 = "000bb91d06188a1ce8e96a7c48fe67ef3b81e71f75ca2bfa3802dd6443e5acdb49ea"
		v4  = "5282426542761a1fc999fd32337cf1792eb67ad662db824d6b1fe26868a6986a"
		v9  = "3b3f7d9721902ff121078e8073d99f4bb449b7fc7b9627774b817ba0e2de0eda"
	)
	doc := vtpmDocExample(t)
	mustHex := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	withPCRs := func(pcrs string) string {
		return `{"schema":"cocoon-vtpm-policy/v1","ak_names":["` + ak + `"],"pcrs":[` + pcrs + `]}`
	}
	for _, tc := range []struct {
		name string
		in   string
		want *VTPMPolicy // nil: refused
		why  string      // part of the refusal
	}{
		{"doc example", doc, &VTPMPolicy{AKNames: [][]byte{mustHex(ak)}, PCRSets: []PCRSet{{4: [32]byte(mustHex(v4)), 9: [32]byte(mustHex(v9))}}}, ""},
		{"measure tpm --json keys, upper-case hex", withPCRs(`{"pcr4":"` + strings.ToUpper(v4) + `","pcr15":"` + v9 + `"}`),
			&VTPMPolicy{AKNames: [][]byte{mustHex(ak)}, PCRSets: []PCRSet{{4: [32]byte(mustHex(v4)), 15: [32]byte(mustHex(v9))}}}, ""},
		{"two AKs, two sets, PCR 0 and 23", `{"schema":"cocoon-vtpm-policy/v1","ak_names":["` + ak + `","` + ak2 + `"],"pcrs":[{"0":"` + v4 + `"},{"23":"` + v9 + `"}]}`,
			&VTPMPolicy{AKNames: [][]byte{mustHex(ak), mustHex(ak2)}, PCRSets: []PCRSet{{0: [32]byte(mustHex(v4))}, {23: [32]byte(mustHex(v9))}}}, ""},
		{"allow_any_ak", `{"schema":"cocoon-vtpm-policy/v1","allow_any_ak":true,"pcrs":[{"4":"` + v4 + `"}]}`,
			&VTPMPolicy{AllowAnyAK: true, PCRSets: []PCRSet{{4: [32]byte(mustHex(v4))}}}, ""},

		{"no schema", strings.Replace(doc, `"schema": "cocoon-vtpm-policy/v1",`, "", 1), nil, "schema"},
		{"TDX policy schema", strings.Replace(doc, "cocoon-vtpm-policy/v1", "cocoon-policy/v1", 1), nil, "schema"},
		{"next schema", strings.Replace(doc, "v1", "v2", 1), nil, "schema"},
		{"unknown field", strings.Replace(doc, `"pcrs"`, `"allow_debug": true, "pcrs"`, 1), nil, "allow_debug"},
		{"image_hashes", strings.Replace(doc, `"pcrs"`, `"image_hashes": ["`+v4+`"], "pcrs"`, 1), nil, "TDX registers"},
		{"no AKs, allow_any_ak unset", `{"schema":"cocoon-vtpm-policy/v1","pcrs":[{"4":"` + v4 + `"}]}`, nil, "no ak_names"},
		{"no AKs, allow_any_ak false", `{"schema":"cocoon-vtpm-policy/v1","allow_any_ak":false,"ak_names":[],"pcrs":[{"4":"` + v4 + `"}]}`, nil, "no ak_names"},
		{"AKs and allow_any_ak", `{"schema":"cocoon-vtpm-policy/v1","allow_any_ak":true,"ak_names":["` + ak + `"],"pcrs":[{"4":"` + v4 + `"}]}`, nil, "ignored"},
		{"AK repeated", `{"schema":"cocoon-vtpm-policy/v1","ak_names":["` + ak + `","` + strings.ToUpper(ak) + `"],"pcrs":[{"4":"` + v4 + `"}]}`, nil, "repeats"},
		{"AK name short", strings.Replace(doc, ak, ak[:66], 1), nil, "2 + 32"},
		{"AK name SHA-1", strings.Replace(doc, ak, "0004"+ak[4:44], 1), nil, "name algorithm"},
		{"AK name algorithm unknown", strings.Replace(doc, ak, "0001"+ak[4:], 1), nil, "name algorithm"},
		{"AK name SHA-384 sized as SHA-256", strings.Replace(doc, ak, "000c"+ak[4:], 1), nil, "2 + 48"},
		{"AK name not hex", strings.Replace(doc, ak, "zz"+ak[2:], 1), nil, "ak_names[0]"},
		{"AK name as a number", strings.Replace(doc, `"`+ak+`"`, "11", 1), nil, ""},
		{"no pcrs", `{"schema":"cocoon-vtpm-policy/v1","ak_names":["` + ak + `"]}`, nil, "no pcrs"},
		{"pcrs empty", withPCRs(``), nil, "no pcrs"},
		{"empty set", withPCRs(`{}`), nil, "empty"},
		{"null set", withPCRs(`null`), nil, "object"},
		{"set is a list", withPCRs(`["` + v4 + `"]`), nil, "object"},
		{"PCR 24", withPCRs(`{"24":"` + v4 + `"}`), nil, "0-23"},
		{"PCR -1", withPCRs(`{"-1":"` + v4 + `"}`), nil, "0-23"},
		{"PCR 04", withPCRs(`{"04":"` + v4 + `"}`), nil, "0-23"},
		{"PCR +4", withPCRs(`{"+4":"` + v4 + `"}`), nil, "0-23"},
		{"PCR PCR4", withPCRs(`{"PCR4":"` + v4 + `"}`), nil, "0-23"},
		{"PCR key pcr", withPCRs(`{"pcr":"` + v4 + `"}`), nil, "0-23"},
		{"PCR 4 twice", withPCRs(`{"4":"` + v4 + `","4":"` + v9 + `"}`), nil, "twice"},
		{"PCR 4 and pcr4", withPCRs(`{"4":"` + v4 + `","pcr4":"` + v4 + `"}`), nil, "twice"},
		{"PCR value short", withPCRs(`{"4":"` + v4[:62] + `"}`), nil, "62 hex digits"},
		{"PCR value SHA-384", withPCRs(`{"4":"` + v4 + v4[:32] + `"}`), nil, "96 hex digits"},
		{"PCR value not hex", withPCRs(`{"4":"` + "g" + v4[1:] + `"}`), nil, "pcrs[0][\"4\"]"},
		{"PCR value a number", withPCRs(`{"4":4}`), nil, "hex string"},
		{"two objects", doc + doc, nil, ""},
		{"trailing garbage", doc + "x", nil, ""},
		{"empty", "", nil, ""},
		{"too large", `{"schema":"` + strings.Repeat("x", maxVTPMPolicyFile) + `"}`, nil, "larger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseVTPMPolicy(strings.NewReader(tc.in))
			if tc.want == nil {
				if err == nil || !errors.Is(err, ErrInvalidVTPMPolicy) || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("accepted or wrong error: %v, %+v (want ErrInvalidVTPMPolicy mentioning %q)", err, p, tc.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("parsed %+v, want %+v", p, tc.want)
			}
			// Written back, it parses to itself.
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseVTPMPolicy(bytes.NewReader(b))
			if err != nil || !reflect.DeepEqual(again, p) {
				t.Fatalf("round trip of %s: %+v, %v", b, again, err)
			}
		})
	}
}

// TestMarshalInvalidVTPMPolicy: a policy that would not load is not written.
func TestMarshalInvalidVTPMPolicy(t *testing.T) {
	for _, p := range []*VTPMPolicy{
		{},
		{AllowAnyAK: true},
		{AllowAnyAK: true, PCRSets: []PCRSet{{24: {}}}},
		{AKNames: [][]byte{{0x00, 0x0b}}, PCRSets: []PCRSet{{4: {}}}},
	} {
		if b, err := json.Marshal(p); !errors.Is(err, ErrInvalidVTPMPolicy) {
			t.Errorf("%+v written as %s (%v)", p, b, err)
		}
	}
}

func TestLoadVTPMPolicy(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, []byte(vtpmDocExample(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"schema":"cocoon-vtpm-policy/v1","pcrs":[{"4":"`+strings.Repeat("00", 32)+`"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := LoadVTPMPolicy(good); err != nil || len(p.AKNames) != 1 || len(p.PCRSets) != 1 {
		t.Fatalf("%+v, %v", p, err)
	}
	if _, err := LoadVTPMPolicy(bad); !errors.Is(err, ErrInvalidVTPMPolicy) || !strings.Contains(err.Error(), bad) {
		t.Errorf("policy without AKs: %v, want ErrInvalidVTPMPolicy naming the file", err)
	}
	if _, err := LoadVTPMPolicy(filepath.Join(dir, "absent.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

// TestVTPMVerifierRecorded runs VTPMVerifier on evidence recorded from
// swtpm (no TPM needed): the doc example's policy accepts it, and each
// change of policy or evidence is refused with its typed error.
func TestVTPMVerifierRecorded(t *testing.T) {
	doc, err := ParseVTPMPolicy(strings.NewReader(vtpmDocExample(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range vtpmRecordings {
		t.Run(name, func(t *testing.T) {
			rec := loadVTPMRecording(t, name)
			ak := akName(t, rec.Evidence.AKPublic)
			pinned := &VTPMPolicy{AKNames: [][]byte{ak}, PCRSets: []PCRSet{pcrSet(t, rec.Evidence.PCRs, 4, 9)}}
			other := pcrSet(t, rec.Evidence.PCRs, 4, 9)
			other[9] = sha256.Sum256([]byte("another initrd"))
			with := func(f func(p *VTPMPolicy)) *VTPMPolicy {
				c := *pinned
				c.AKNames = append([][]byte(nil), pinned.AKNames...)
				c.PCRSets = append([]PCRSet(nil), pinned.PCRSets...)
				f(&c)
				return &c
			}
			lines := bytes.SplitAfter(rec.Evidence.RuntimeLog, []byte("\n"))
			// The documentation's example pins the ECC recording's AK.
			var docWant []error
			if name != "swtpm-ecc-p256.json" {
				docWant = []error{ErrPolicy, vtpm.ErrAKNotAllowed}
			}
			for _, tc := range []struct {
				name string
				v    *VTPMVerifier
				ev   func(e *attest.Evidence, rd *[attest.ReportDataSize]byte)
				want []error // nil: accepted
			}{
				{"pinned AK, PCRs 4 and 9", &VTPMVerifier{Policy: pinned}, nil, nil},
				{"pinned AK, every quoted PCR", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) { p.PCRSets = []PCRSet{pcrSet(t, rec.Evidence.PCRs)} })}, nil, nil},
				{"second set matches", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) { p.PCRSets = []PCRSet{other, pinned.PCRSets[0]} })}, nil, nil},
				{"AK among others", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) { p.AKNames = [][]byte{akName(t, rec.OtherAK), ak} })}, nil, nil},
				{"allow_any_ak", &VTPMVerifier{Policy: &VTPMPolicy{AllowAnyAK: true, PCRSets: pinned.PCRSets}}, nil, nil},

				{"doc example", &VTPMVerifier{Policy: doc}, nil, docWant},
				{"another TPM's AK pinned", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) { p.AKNames = [][]byte{akName(t, rec.OtherAK)} })}, nil, []error{ErrPolicy, vtpm.ErrAKNotAllowed}},
				{"no AKs, allow_any_ak unset", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) { p.AKNames = nil })}, nil, []error{ErrPolicy, ErrInvalidVTPMPolicy}},
				{"no PCR sets", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) { p.PCRSets = nil })}, nil, []error{ErrPolicy, ErrInvalidVTPMPolicy}},
				{"PCR 9 of another initrd", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) { p.PCRSets = []PCRSet{other} })}, nil, []error{ErrPolicy, ErrPCRMismatch}},
				{"set names unquoted PCR 16", &VTPMVerifier{Policy: with(func(p *VTPMPolicy) {
					s := pcrSet(t, rec.Evidence.PCRs, 4)
					s[16] = [32]byte{}
					p.PCRSets = []PCRSet{s}
				})}, nil, []error{ErrPolicy, ErrPCRMismatch}},
				{"no policy", &VTPMVerifier{}, nil, []error{ErrQuote}},
				{"policy and function", &VTPMVerifier{Policy: pinned, Verify: func(*attest.Evidence, [64]byte, time.Time) (*Attested, error) { return &Attested{}, nil }}, nil, []error{ErrQuote}},

				{"report data of other claims", &VTPMVerifier{Policy: pinned}, func(_ *attest.Evidence, rd *[attest.ReportDataSize]byte) { rd[0] ^= 1 }, []error{ErrBinding, vtpm.ErrNonce}},
				{"signature flipped", &VTPMVerifier{Policy: pinned}, func(e *attest.Evidence, _ *[attest.ReportDataSize]byte) { e.Signature[len(e.Signature)-1] ^= 1 }, []error{ErrQuote, vtpm.ErrSignature}},
				{"PCR 4 altered", &VTPMVerifier{Policy: pinned}, func(e *attest.Evidence, _ *[attest.ReportDataSize]byte) { e.PCRs[4][0] ^= 1 }, []error{ErrQuote, vtpm.ErrPCRDigest}},
				{"another TPM's AK in the evidence", &VTPMVerifier{Policy: &VTPMPolicy{AllowAnyAK: true, PCRSets: pinned.PCRSets}}, func(e *attest.Evidence, _ *[attest.ReportDataSize]byte) { e.AKPublic = bytes.Clone(rec.OtherAK) }, []error{ErrQuote, vtpm.ErrSignature}},
				{"kind tdx", &VTPMVerifier{Policy: pinned}, func(e *attest.Evidence, _ *[attest.ReportDataSize]byte) { e.Kind = attest.TDX }, []error{ErrQuote, attest.ErrEvidence}},
				{"runtime log without its last event", &VTPMVerifier{Policy: pinned}, func(e *attest.Evidence, _ *[attest.ReportDataSize]byte) {
					e.RuntimeLog = bytes.Join(lines[:len(lines)-2], nil)
				}, []error{ErrBinding}},
				{"runtime log dropped", &VTPMVerifier{Policy: pinned}, func(e *attest.Evidence, _ *[attest.ReportDataSize]byte) { e.RuntimeLog = nil }, []error{ErrBinding}},
				{"runtime log not JSON", &VTPMVerifier{Policy: pinned}, func(e *attest.Evidence, _ *[attest.ReportDataSize]byte) { e.RuntimeLog = []byte("static-config\n") }, []error{ErrMalformed, runtime.ErrInvalid}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ev, rd := cloneVTPMEvidence(&rec.Evidence), rec.ReportData
					if tc.ev != nil {
						tc.ev(ev, &rd)
					}
					a, err := tc.v.VerifyEvidence(ev, rd, t0)
					if tc.want == nil {
						if err != nil {
							t.Fatal(err)
						}
						if a.Kind != attest.VTPM || a.Quote != nil || a.ImageHash != nil || a.Simulated || len(a.RuntimeLog) != 2 ||
							a.RuntimeLog[0].Kind != runtime.KindStaticConfig || a.RuntimeLog[1].Kind != runtime.KindBootComplete {
							t.Errorf("attested %+v", a)
						}
						return
					}
					if a != nil || err == nil {
						t.Fatalf("accepted: %+v", a)
					}
					for _, w := range tc.want {
						if !errors.Is(err, w) {
							t.Errorf("error %q is not %q", err, w)
						}
					}
					// Exactly one of the ratls verdicts.
					n := 0
					for _, k := range []error{ErrQuote, ErrBinding, ErrPolicy, ErrMalformed} {
						if errors.Is(err, k) {
							n++
						}
					}
					if n != 1 {
						t.Errorf("error %q matches %d of ErrQuote, ErrBinding, ErrPolicy, ErrMalformed, want 1", err, n)
					}
				})
			}
		})
	}
}

// TestVTPMVerifierFunction: the Verify function, for other trust models,
// keeps its verdicts and has other errors reported as ErrQuote.
func TestVTPMVerifierFunction(t *testing.T) {
	rec := loadVTPMRecording(t, vtpmRecordings[0])
	plain := errors.New("AK credential not activated")
	for _, tc := range []struct {
		name string
		a    *Attested
		err  error
		want error
	}{
		{"accepts", &Attested{Kind: attest.VTPM}, nil, nil},
		{"plain error", nil, plain, ErrQuote},
		{"typed error", nil, fmt.Errorf("%w: not this boot", ErrPolicy), ErrPolicy},
		{"no result", nil, nil, ErrQuote},
	} {
		v := &VTPMVerifier{Verify: func(*attest.Evidence, [64]byte, time.Time) (*Attested, error) { return tc.a, tc.err }}
		a, err := v.VerifyEvidence(&rec.Evidence, rec.ReportData, t0)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %+v, %v, want %v", tc.name, a, err, tc.want)
		}
	}
}

// vtpmWorker is a worker on the development boot path with a live swtpm:
// its firmware and EFI stub extended the events that measure/tpm predicts
// for a kernel, command line and initrd (PCRs 4 and 9), its init measured
// the static config and boot-complete into PCR 15 and wrote the runtime
// log, and it made an RA-TLS certificate with the vTPM provider.
type vtpmWorker struct {
	p          *vtpm.Provider
	key        ed25519.PrivateKey
	claims     Claims
	cert       tls.Certificate
	runtimeLog string
	predicted  map[int][]byte // `cocoon measure tpm`'s PCRs 4, 9 and 15
	policy     *VTPMPolicy    // the AK and the predicted PCRs, parsed from JSON
}

const vtpmCmdline = "console=ttyS0 cocoon.verity=0123"

func newVTPMWorker(t testing.TB, pcrs []int) *vtpmWorker {
	t.Helper()
	dir := t.TempDir()
	w := &vtpmWorker{key: testKey(0x50), runtimeLog: filepath.Join(dir, "runtime.log")}
	tpmConn := swtpmtest.Start(t, "").T
	var err error
	w.p, err = vtpm.New(tpmConn, vtpm.Options{PCRs: pcrs, RuntimeLogPath: w.runtimeLog, LogPath: filepath.Join(dir, "absent")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.p.Close() })

	events := runtime.Log{{Kind: runtime.KindStaticConfig, Payload: staticConfig}, {Kind: runtime.KindBootComplete}}
	pred := predictVTPM(t, vtpmCmdline, events)
	// Firmware and EFI stub: the predicted boot events, extended by the
	// TPM's own TPM2_PCR_Extend. The runtime events go through the
	// provider, as the init extends them.
	for _, e := range pred.Events {
		if e.Index == runtime.PCR {
			continue
		}
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(e.Index), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: e.Digest}}},
		}.Execute(tpmConn)
		if err != nil {
			t.Fatalf("extending PCR %d: %v", e.Index, err)
		}
	}
	var log bytes.Buffer
	if err := measured.Measure(w.p, events, &log); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.runtimeLog, log.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	w.predicted = pred.PCR

	// The policy as an operator writes it: the AK fingerprint, and the
	// PCRs as `cocoon measure tpm --json` prints them ("pcr4": hex).
	jsonPCRs := map[string]string{}
	for i, v := range pred.PCR {
		jsonPCRs[fmt.Sprintf("pcr%d", i)] = hex.EncodeToString(v)
	}
	file, err := json.Marshal(map[string]any{"schema": VTPMPolicySchema, "ak_names": []string{hex.EncodeToString(w.p.AKName())}, "pcrs": []any{jsonPCRs}})
	if err != nil {
		t.Fatal(err)
	}
	if w.policy, err = ParseVTPMPolicy(bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}

	w.claims = Claims{ConfigHash: sha256.Sum256(staticConfig), WorkerID: "w-vtpm"}
	w.cert = w.certificate(t, w.claims)
	return w
}

func predictVTPM(t testing.TB, cmdline string, events runtime.Log) *tpm.Prediction {
	t.Helper()
	// Stand-ins for the kernel's Authenticode digest and the initrd: what
	// is checked here is that the TPM computes what the prediction does.
	kernel := sha256.Sum256([]byte("vmlinuz as QEMU patched it"))
	pred, err := tpm.Predict(tpm.Inputs{KernelAuthenticode: kernel[:], Cmdline: cmdline, Initrd: []byte("initrd"), Runtime: events})
	if err != nil {
		t.Fatal(err)
	}
	return pred
}

func (w *vtpmWorker) certificate(t testing.TB, cl Claims) tls.Certificate {
	t.Helper()
	c, err := NewCertificate(context.Background(), w.p, cl, w.key, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func vtpmVerifier(p *VTPMPolicy) *Verifier {
	return &Verifier{
		Evidence:  map[attest.Kind]EvidenceVerifier{attest.VTPM: &VTPMVerifier{Policy: p}},
		Now:       fixedClock(t0.Add(time.Minute)),
		CacheSize: -1,
	}
}

// TestVTPMCertificate: a certificate made with the vTPM provider over a
// live swtpm is accepted under a policy pinning that AK and the predicted
// PCRs, and refused, with the typed error, under other policies and when
// its evidence is altered or lifted into another certificate.
func TestVTPMCertificate(t *testing.T) {
	w := newVTPMWorker(t, nil)
	rec := loadVTPMRecording(t, vtpmRecordings[0])
	// The TPM's extends give what measure/tpm predicts.
	live, err := w.p.Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{tpm.PCRKernel, tpm.PCRLinux, runtime.PCR} {
		if !bytes.Equal(live[i], w.predicted[i]) {
			t.Fatalf("PCR %d: swtpm %x, measure/tpm predicts %x", i, live[i], w.predicted[i])
		}
	}

	cp := func(f func(p *VTPMPolicy)) *VTPMPolicy {
		c := *w.policy
		f(&c)
		return &c
	}
	otherCmdline := predictVTPM(t, vtpmCmdline+" debug", runtime.Log{{Kind: runtime.KindStaticConfig, Payload: staticConfig}, {Kind: runtime.KindBootComplete}})
	otherConfig := predictVTPM(t, vtpmCmdline, runtime.Log{{Kind: runtime.KindStaticConfig, Payload: []byte(`{"worker_id":"w-2"}`)}, {Kind: runtime.KindBootComplete}})
	for _, tc := range []struct {
		name   string
		policy *VTPMPolicy
		want   []error
	}{
		{"pinned AK, predicted PCRs 4, 9 and 15", w.policy, nil},
		{"pinned AK, PCRs 4 and 9", cp(func(p *VTPMPolicy) { p.PCRSets = []PCRSet{pcrSet(t, w.predicted, 4, 9)} }), nil},
		{"allow_any_ak", cp(func(p *VTPMPolicy) { p.AKNames, p.AllowAnyAK = nil, true }), nil},
		{"another TPM's AK", cp(func(p *VTPMPolicy) { p.AKNames = [][]byte{akName(t, rec.Evidence.AKPublic)} }), []error{ErrPolicy, vtpm.ErrAKNotAllowed}},
		{"no AKs, allow_any_ak unset", cp(func(p *VTPMPolicy) { p.AKNames = nil }), []error{ErrPolicy, ErrInvalidVTPMPolicy}},
		{"PCR 9 of another command line", cp(func(p *VTPMPolicy) { p.PCRSets = []PCRSet{pcrSet(t, otherCmdline.PCR, 4, 9)} }), []error{ErrPolicy, ErrPCRMismatch}},
		{"PCR 15 of another static config", cp(func(p *VTPMPolicy) { p.PCRSets = []PCRSet{pcrSet(t, otherConfig.PCR)} }), []error{ErrPolicy, ErrPCRMismatch}},
		{"the recording's PCRs", cp(func(p *VTPMPolicy) { p.PCRSets = []PCRSet{pcrSet(t, rec.Evidence.PCRs, 4, 9)} }), []error{ErrPolicy, ErrPCRMismatch}},
		{"no policy", nil, []error{ErrQuote}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := vtpmVerifier(tc.policy).Verify(w.cert.Certificate[0])
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if r.Claims.WorkerID != "w-vtpm" || r.Attested.Kind != attest.VTPM || len(r.Attested.RuntimeLog) != 2 ||
					!bytes.Equal(r.Attested.RuntimeLog[0].Payload, staticConfig) {
					t.Errorf("result %+v, attested %+v", r.Claims, r.Attested)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, e := range tc.want {
				if !errors.Is(err, e) {
					t.Errorf("error %q is not %q", err, e)
				}
			}
		})
	}

	t.Run("attacks", func(t *testing.T) {
		c, err := ParseCertificate(w.cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		thief := testKey(0x66)
		thiefClaims := w.claims
		thiefClaims.PublicKey, thiefClaims.IssuedAt = thief.Public().(ed25519.PublicKey), t0
		thiefClaimsDER, err := thiefClaims.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		evDER := func(mut func(e *attest.Evidence)) []byte {
			e := cloneVTPMEvidence(c.Evidence)
			mut(e)
			b, err := MarshalEvidence(e)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		same := func(*attest.Evidence) {}
		cert := func(key ed25519.PrivateKey, ev, cl []byte) []byte {
			return craft{key: key, exts: []pkixExt{ext(OIDEvidence, true, ev), ext(OIDClaims, true, cl)}}.der(t)
		}
		imageHash := [32]byte{1}
		for _, tc := range []struct {
			name string
			der  []byte
			want []error
		}{
			{"untouched, re-issued by the worker", cert(w.key, evDER(same), c.ClaimsDER), nil},
			{"evidence in the thief's certificate, thief's claims", cert(thief, evDER(same), thiefClaimsDER), []error{ErrBinding, vtpm.ErrNonce}},
			{"evidence and claims in the thief's certificate", cert(thief, evDER(same), c.ClaimsDER), []error{ErrBinding}},
			{"recorded evidence in the worker's certificate", cert(w.key, evDER(func(e *attest.Evidence) { *e = *cloneVTPMEvidence(&rec.Evidence) }), c.ClaimsDER), []error{ErrBinding, vtpm.ErrNonce}},
			{"signature flipped", cert(w.key, evDER(func(e *attest.Evidence) { e.Signature[len(e.Signature)-1] ^= 1 }), c.ClaimsDER), []error{ErrQuote, vtpm.ErrSignature}},
			{"PCR 4 altered", cert(w.key, evDER(func(e *attest.Evidence) { e.PCRs[4][0] ^= 1 }), c.ClaimsDER), []error{ErrQuote, vtpm.ErrPCRDigest}},
			{"another TPM's AK", cert(w.key, evDER(func(e *attest.Evidence) { e.AKPublic = bytes.Clone(rec.OtherAK) }), c.ClaimsDER), []error{ErrQuote}},
			{"runtime log dropped", cert(w.key, evDER(func(e *attest.Evidence) { e.RuntimeLog = nil }), c.ClaimsDER), []error{ErrBinding}},
			{"runtime log of another config", cert(w.key, evDER(func(e *attest.Evidence) {
				e.RuntimeLog, _ = runtime.Log{{Kind: runtime.KindStaticConfig, Payload: []byte(`{"worker_id":"w-2"}`)}, {Kind: runtime.KindBootComplete}}.Marshal()
			}), c.ClaimsDER), []error{ErrBinding}},
			{"claims another config hash", w.certificate(t, Claims{ConfigHash: sha256.Sum256([]byte("other")), WorkerID: "w-vtpm"}).Certificate[0], []error{ErrBinding}},
			{"claims an image hash", w.certificate(t, Claims{ConfigHash: w.claims.ConfigHash, WorkerID: "w-vtpm", ImageHash: &imageHash}).Certificate[0], []error{ErrBinding}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := vtpmVerifier(w.policy).Verify(tc.der)
				if tc.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				if err == nil {
					t.Fatal("accepted")
				}
				for _, e := range tc.want {
					if !errors.Is(err, e) {
						t.Errorf("error %q is not %q", err, e)
					}
				}
			})
		}
	})
}

// TestVTPMUnquotedPCR15: a provider that does not quote PCR 15 has its
// runtime log refused (nothing vouches for it, and the claims' config hash
// would go unchecked), and is accepted without one.
func TestVTPMUnquotedPCR15(t *testing.T) {
	w := newVTPMWorker(t, []int{tpm.PCRKernel, tpm.PCRLinux})
	pol := &VTPMPolicy{AKNames: w.policy.AKNames, PCRSets: []PCRSet{pcrSet(t, w.predicted, 4, 9)}}
	if _, err := vtpmVerifier(pol).Verify(w.cert.Certificate[0]); !errors.Is(err, ErrBinding) || !strings.Contains(err.Error(), "not quoted") {
		t.Fatalf("runtime log with PCR 15 unquoted: %v, want ErrBinding", err)
	}
	// A PCR 15 set cannot match what is not quoted.
	if _, err := vtpmVerifier(w.policy).Verify(w.cert.Certificate[0]); !errors.Is(err, ErrPolicy) || !errors.Is(err, ErrPCRMismatch) {
		t.Fatalf("policy naming PCR 15: %v, want ErrPCRMismatch", err)
	}
	if err := os.Remove(w.runtimeLog); err != nil {
		t.Fatal(err)
	}
	r, err := vtpmVerifier(pol).Verify(w.certificate(t, w.claims).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Attested.RuntimeLog != nil {
		t.Errorf("runtime log %v from evidence without one", r.Attested.RuntimeLog)
	}
}

// TestVTPMHandshake: TLS 1.3 over net.Pipe with vTPM evidence: a client
// that pins the worker's AK and boot talks to it, one that pins another AK
// refuses it, and two workers on one TPM authenticate each other.
func TestVTPMHandshake(t *testing.T) {
	w := newVTPMWorker(t, nil)
	v := vtpmVerifier(w.policy)
	v.CacheSize = 0
	s := handshake(t, ServerConfig(w.cert, nil), ClientConfig(v))
	if s.clientErr != nil || s.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", s.clientErr, s.serverErr)
	}
	if s.client.Version != tls.VersionTLS13 {
		t.Errorf("version %#x, want TLS 1.3", s.client.Version)
	}
	r, err := v.Peer(s.client)
	if err != nil {
		t.Fatal(err)
	}
	if r.Claims.WorkerID != "w-vtpm" || r.Attested.Kind != attest.VTPM || r.Claims.ConfigHash != sha256.Sum256(staticConfig) {
		t.Errorf("peer %+v, attested %+v", r.Claims, r.Attested)
	}

	rec := loadVTPMRecording(t, vtpmRecordings[0])
	other := *w.policy
	other.AKNames = [][]byte{akName(t, rec.Evidence.AKPublic)}
	s = handshake(t, ServerConfig(w.cert, nil), ClientConfig(vtpmVerifier(&other)))
	if !errors.Is(s.clientErr, ErrPolicy) || !errors.Is(s.clientErr, vtpm.ErrAKNotAllowed) {
		t.Errorf("client pinning another AK: %v, want ErrPolicy and vtpm.ErrAKNotAllowed", s.clientErr)
	}
	if s.serverErr == nil {
		t.Error("server finished a handshake the client refused")
	}

	// Mutual: a second key on the same TPM, with its own claims.
	client, err := NewCertificate(context.Background(), w.p, Claims{ConfigHash: w.claims.ConfigHash, WorkerID: "w-client"}, testKey(0x51), t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sv := vtpmVerifier(w.policy)
	sv.CacheSize = 0
	s = handshake(t, ServerConfig(w.cert, sv), ClientConfig(v, client))
	if s.clientErr != nil || s.serverErr != nil {
		t.Fatalf("mutual handshake: client %v, server %v", s.clientErr, s.serverErr)
	}
	if r, err := sv.Peer(s.server); err != nil || r.Claims.WorkerID != "w-client" {
		t.Errorf("server's view of the client: %+v, %v", r, err)
	}
}

// FuzzParseVTPMPolicy: read-write-read. What parses is valid, writes back,
// and parses to the same policy; what does not is ErrInvalidVTPMPolicy.
func FuzzParseVTPMPolicy(f *testing.F) {
	f.Add(vtpmDocExample(f))
	f.Add(`{"schema":"cocoon-vtpm-policy/v1","allow_any_ak":true,"pcrs":[{"pcr4":"` + strings.Repeat("Ab", 32) + `","15":"` + strings.Repeat("00", 32) + `"},{"0":"` + strings.Repeat("ff", 32) + `"}]}`)
	f.Add(`{"schema":"cocoon-vtpm-policy/v1","ak_names":["000d` + strings.Repeat("11", 64) + `"],"pcrs":[{"4":"` + strings.Repeat("00", 32) + `","4":"` + strings.Repeat("00", 32) + `"}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParseVTPMPolicy(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrInvalidVTPMPolicy) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed an invalid policy: %v", err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseVTPMPolicy(bytes.NewReader(b))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("%s parsed as %+v, written as %s, read back as %+v (%v)", in, p, b, again, err)
		}
	})
}
