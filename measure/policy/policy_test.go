package policy

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// The sample production quote lives with measure/quote (see its
// testdata/README.md); its PCK certificate is valid until 2029-09-20.
var sampleNow = time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)

func sampleQuote(t testing.TB) *pb.QuoteV4 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "quote", "testdata", "tdx_prod_quote_SPR_E4.dat"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := quote.Verify(raw, quote.Options{Now: sampleNow})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// docExample returns the JSON example in doc.go, so the documentation
// cannot drift from what Parse accepts.
func docExample(t testing.TB) string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		switch {
		case line == "//\t{":
			in = true
		case !strings.HasPrefix(line, "//\t"):
			in = false
		}
		if in {
			b.WriteString(strings.TrimPrefix(line, "//\t") + "\n")
			if line == "//\t}" {
				return b.String()
			}
		}
	}
	t.Fatal("no JSON example in doc.go")
	return ""
}

func mustParse(t testing.TB, s string) *Policy {
	t.Helper()
	p, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, s)
	}
	return p
}

// cloneBody copies a quote's body so a test can change it.
func cloneBody(q *pb.QuoteV4) *pb.QuoteV4 {
	b := q.GetTdQuoteBody()
	c := &pb.TDQuoteBody{
		TeeTcbSvn:      bytes.Clone(b.TeeTcbSvn),
		MrSeam:         bytes.Clone(b.MrSeam),
		MrSignerSeam:   bytes.Clone(b.MrSignerSeam),
		SeamAttributes: bytes.Clone(b.SeamAttributes),
		TdAttributes:   bytes.Clone(b.TdAttributes),
		Xfam:           bytes.Clone(b.Xfam),
		MrTd:           bytes.Clone(b.MrTd),
		MrConfigId:     bytes.Clone(b.MrConfigId),
		MrOwner:        bytes.Clone(b.MrOwner),
		MrOwnerConfig:  bytes.Clone(b.MrOwnerConfig),
		ReportData:     bytes.Clone(b.ReportData),
	}
	for _, r := range b.Rtmrs {
		c.Rtmrs = append(c.Rtmrs, bytes.Clone(r))
	}
	return &pb.QuoteV4{Header: q.Header, TdQuoteBody: c, SignedData: q.SignedData}
}

// policyFor builds a policy from the quote's own values.
func policyFor(t testing.TB, q *pb.QuoteV4, byHash bool) *Policy {
	m, err := imagehash.FromQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{XFAM: &m.XFAM}
	if byHash {
		p.ImageHashes = [][32]byte{m.ImageHash()}
	} else {
		p.Measurements = []Registers{{MRTD: m.MRTD, RTMR: m.RTMR}}
	}
	return p
}

func TestDocExample(t *testing.T) {
	p := mustParse(t, docExample(t))
	q := sampleQuote(t)
	if err := p.Validate(Evidence{Quote: q}, q.GetTdQuoteBody().GetReportData()); err != nil {
		t.Fatalf("the doc.go example rejects the sample quote: %v", err)
	}
}

func TestValidateSample(t *testing.T) {
	q := sampleQuote(t)
	for name, p := range map[string]*Policy{
		"own measurements": policyFor(t, q, false),
		"own image hash":   policyFor(t, q, true),
	} {
		if err := p.Validate(Evidence{Quote: q}, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Either list may match.
	p := policyFor(t, q, false)
	p.ImageHashes = [][32]byte{{1}}
	if err := p.Validate(Evidence{Quote: q}, nil); err != nil {
		t.Errorf("other hash, own measurements: %v", err)
	}
	p = policyFor(t, q, true)
	p.Measurements = []Registers{{}}
	if err := p.Validate(Evidence{Quote: q}, nil); err != nil {
		t.Errorf("own hash, other measurements: %v", err)
	}
}

func TestValidateFailures(t *testing.T) {
	q := sampleQuote(t)
	rd := q.GetTdQuoteBody().GetReportData()
	type tc struct {
		name       string
		policy     func(p *Policy)
		quote      func(b *pb.TDQuoteBody)
		simulated  bool
		reportData []byte
		byHash     bool
		want       error
		field      string
	}
	tcs := []tc{
		{name: "changed rtmr2 in the policy", policy: func(p *Policy) { p.Measurements[0].RTMR[2][0] ^= 0xff }, want: ErrMismatch, field: "rtmr[2]"},
		{name: "changed mrtd in the policy", policy: func(p *Policy) { p.Measurements[0].MRTD[47] ^= 1 }, want: ErrMismatch, field: "mrtd"},
		{name: "changed rtmr1 in the quote", quote: func(b *pb.TDQuoteBody) { b.Rtmrs[1][5] ^= 1 }, byHash: true, want: ErrMismatch, field: "image_hash"},
		{name: "debug bit set", quote: func(b *pb.TDQuoteBody) { b.TdAttributes[0] |= 0x01 }, want: ErrDebug, field: "td_attributes.tud"},
		{name: "debug bit set, image hash policy", quote: func(b *pb.TDQuoteBody) { b.TdAttributes[0] |= 0x01 }, byHash: true, want: ErrDebug, field: "td_attributes.tud"},
		{name: "profiling bit (TUD bit 4)", quote: func(b *pb.TDQuoteBody) { b.TdAttributes[0] |= 0x10 }, want: ErrDebug, field: "td_attributes.tud"},
		{name: "reserved SEC bit 8", quote: func(b *pb.TDQuoteBody) { b.TdAttributes[1] |= 0x01 }, want: ErrMismatch, field: "td_attributes.reserved_sec"},
		{name: "wrong report data", reportData: bytes.Repeat([]byte{0xab}, 64), want: ErrReportData, field: "report_data"},
		{name: "report data prefix only", reportData: rd[:32], want: ErrReportData, field: "report_data"},
		{name: "report data too long", reportData: make([]byte, 65), want: ErrReportData},
		{name: "wrong xfam", policy: func(p *Policy) { p.XFAM = &[8]byte{0xe7, 0x02, 0x06} }, want: ErrMismatch, field: "xfam"},
		{name: "simulated under production policy", simulated: true, want: ErrSimulated},
		{name: "only another image hash", policy: func(p *Policy) { p.ImageHashes = [][32]byte{{0xde, 0xad}} }, byHash: true, want: ErrMismatch, field: "image_hash"},
		{name: "pks required off", policy: func(p *Policy) { p.TDAttributes = map[string]bool{"pks": false} }, want: ErrMismatch, field: "td_attributes.pks"},
		{name: "sept_ve_disable required", policy: func(p *Policy) { p.TDAttributes = map[string]bool{"sept_ve_disable": true} }, want: ErrMismatch, field: "td_attributes.sept_ve_disable"},
		{name: "mr_owner", policy: func(p *Policy) { p.MROwner = &[48]byte{1} }, want: ErrMismatch, field: "mr_owner"},
		{name: "mr_config_id", policy: func(p *Policy) { p.MRConfigID = &[48]byte{1} }, want: ErrMismatch, field: "mr_config_id"},
		{name: "mr_owner_config", policy: func(p *Policy) { p.MROwnerConfig = &[48]byte{1} }, want: ErrMismatch, field: "mr_owner_config"},
		{name: "min_tee_tcb_svn above", policy: func(p *Policy) { p.MinTEETCBSVN = &[16]byte{3, 0, 5} }, want: ErrMismatch, field: "tee_tcb_svn[2]"},
		{name: "no image in policy", policy: func(p *Policy) { p.Measurements = nil }, want: ErrPolicy},
		{name: "short MRTD in evidence", quote: func(b *pb.TDQuoteBody) { b.MrTd = b.MrTd[:40] }, want: ErrEvidence},
		{name: "short report data in evidence", quote: func(b *pb.TDQuoteBody) { b.ReportData = b.ReportData[:32] }, want: ErrEvidence},
	}
	for _, c := range tcs {
		p := policyFor(t, q, c.byHash)
		if c.policy != nil {
			c.policy(p)
		}
		ev := Evidence{Quote: q, Simulated: c.simulated}
		if c.quote != nil {
			ev.Quote = cloneBody(q)
			c.quote(ev.Quote.TdQuoteBody)
		}
		err := p.Validate(ev, c.reportData)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		for _, other := range []error{ErrPolicy, ErrEvidence, ErrMismatch, ErrDebug, ErrSimulated, ErrReportData} {
			if other != c.want && errors.Is(err, other) {
				t.Errorf("%s: %v also matches %v", c.name, err, other)
			}
		}
		var mm *Mismatch
		if c.field != "" && (!errors.As(err, &mm) || mm.Field != c.field) {
			t.Errorf("%s: %v, want a *Mismatch for field %s", c.name, err, c.field)
		}
		t.Logf("%-34s %v", c.name+":", err)
	}
	if err := (*Policy)(nil).Validate(Evidence{Quote: q}, nil); !errors.Is(err, ErrPolicy) {
		t.Errorf("nil policy: %v", err)
	}
	if err := policyFor(t, q, true).Validate(Evidence{}, nil); !errors.Is(err, ErrEvidence) {
		t.Errorf("nil quote: %v", err)
	}
}

func TestAllowances(t *testing.T) {
	q := sampleQuote(t)
	p := policyFor(t, q, false)
	p.AllowSimulated = true
	if err := p.Validate(Evidence{Quote: q, Simulated: true}, nil); err != nil {
		t.Errorf("allow_simulated: %v", err)
	}
	dbg := cloneBody(q)
	dbg.TdQuoteBody.TdAttributes[0] |= 1
	p.AllowDebug = true
	if err := p.Validate(Evidence{Quote: dbg}, nil); err != nil {
		t.Errorf("allow_debug: %v", err)
	}
	if err := p.Validate(Evidence{Quote: q}, q.GetTdQuoteBody().GetReportData()); err != nil {
		t.Errorf("own report data: %v", err)
	}
	// Report data shorter than 64 bytes is zero-padded.
	short := cloneBody(q)
	copy(short.TdQuoteBody.ReportData[32:], make([]byte, 32))
	if err := p.Validate(Evidence{Quote: short}, short.TdQuoteBody.ReportData[:32]); err != nil {
		t.Errorf("32-byte report data: %v", err)
	}
}

func TestMismatchMessage(t *testing.T) {
	q := sampleQuote(t)
	p := policyFor(t, q, false)
	p.Measurements[0].RTMR[2] = [48]byte{0xcd, 0x34}
	err := p.Validate(Evidence{Quote: q}, nil)
	want := "policy: rtmr[2] = 8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e, want cd34" +
		strings.Repeat("0", 92) + " (closest of 1 measurement sets: 1 of 5 registers differ)"
	if err == nil || err.Error() != want {
		t.Errorf("message:\n got %v\nwant %s", err, want)
	}
}

func TestParseRoundTrip(t *testing.T) {
	p := mustParse(t, docExample(t))
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	p2 := mustParse(t, string(out))
	if !reflect.DeepEqual(p, p2) {
		t.Errorf("round trip changed the policy:\n%+v\n%+v", p, p2)
	}
	if p.XFAM == nil || hex.EncodeToString(p.XFAM[:]) != "e71a060000000000" || !p.TDAttributes["pks"] || len(p.Measurements) != 1 {
		t.Errorf("parsed example: %+v", p)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(path, []byte(docExample(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"schema":"cocoon-policy/v1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a bad file: %v, want ErrPolicy naming the path", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

const (
	h64 = "69aaad308a05d8033b2f6b776a83f85376860325d1bd2280d820b942b2734a51"
	r96 = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
)

func TestParseBad(t *testing.T) {
	regs := `{"mrtd":"` + r96 + `","rtmr0":"` + r96 + `","rtmr1":"` + r96 + `","rtmr2":"` + r96 + `","rtmr3":"` + r96 + `"}`
	for _, c := range []struct{ name, in, msg string }{
		{"unknown field", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"allow_everything":true}`, `unknown field "allow_everything"`},
		{"unknown nested field", `{"schema":"cocoon-policy/v1","measurements":[{"mrtd":"` + r96 + `","rtmr4":"00"}]}`, `unknown field "rtmr4"`},
		{"image hash 63 digits", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64[1:] + `"]}`, "image_hashes[0]: 63 hex digits, want 64"},
		{"image hash not hex", `{"schema":"cocoon-policy/v1","image_hashes":["` + strings.Repeat("zz", 32) + `"]}`, "image_hashes[0]: encoding/hex: invalid byte"},
		{"image hash 0x prefix", `{"schema":"cocoon-policy/v1","image_hashes":["0x` + h64[2:] + `"]}`, "image_hashes[0]: encoding/hex"},
		{"mrtd 95 digits", `{"schema":"cocoon-policy/v1","measurements":[{"mrtd":"` + r96[1:] + `","rtmr0":"` + r96 + `","rtmr1":"` + r96 + `","rtmr2":"` + r96 + `","rtmr3":"` + r96 + `"}]}`, "measurements[0].mrtd: 95 hex digits, want 96"},
		{"rtmr3 missing", `{"schema":"cocoon-policy/v1","measurements":[{"mrtd":"` + r96 + `","rtmr0":"` + r96 + `","rtmr1":"` + r96 + `","rtmr2":"` + r96 + `"}]}`, "measurements[0].rtmr3: 0 hex digits, want 96"},
		{"xfam 15 digits", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"xfam":"e71a0600000000f"}`, "xfam: 15 hex digits, want 16"},
		{"xfam empty", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"xfam":""}`, "xfam: 0 hex digits, want 16"},
		{"mr_owner short", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"mr_owner":"00"}`, "mr_owner: 2 hex digits, want 96"},
		{"min_tee_tcb_svn long", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"min_tee_tcb_svn":"` + r96 + `"}`, "min_tee_tcb_svn: 96 hex digits, want 32"},
		{"neither list", `{"schema":"cocoon-policy/v1","xfam":"e71a060000000000"}`, "neither image_hashes nor measurements"},
		{"both lists empty", `{"schema":"cocoon-policy/v1","image_hashes":[],"measurements":[]}`, "neither image_hashes nor measurements"},
		{"schema mismatch", `{"schema":"cocoon-policy/v2","image_hashes":["` + h64 + `"]}`, `schema "cocoon-policy/v2", want "cocoon-policy/v1"`},
		{"schema missing", `{"image_hashes":["` + h64 + `"]}`, `schema "", want "cocoon-policy/v1"`},
		{"unknown attribute", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"td_attributes":{"fast":true}}`, `unknown flag "fast"`},
		{"debug attribute", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"td_attributes":{"debug":false}}`, `no "debug" flag`},
		{"attribute not bool", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"td_attributes":{"pks":1}}`, "cannot unmarshal number"},
		{"allow_debug not bool", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"allow_debug":"yes"}`, "cannot unmarshal string"},
		{"trailing data", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"]} {}`, "data after the JSON value"},
		{"two measurement sets, second bad", `{"schema":"cocoon-policy/v1","measurements":[` + regs + `,{"mrtd":"x"}]}`, "measurements[1].mrtd"},
		{"array", `[]`, "cannot unmarshal array"},
		{"empty", ``, "empty input"},
		{"whitespace", " \n", "empty input"},
		{"truncated", `{"schema":"cocoon-policy/v1",`, "unexpected EOF"},
		{"too large", `{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"]}` + strings.Repeat(" ", maxFile), "larger than"},
	} {
		_, err := Parse(strings.NewReader(c.in))
		if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want ErrPolicy containing %q", c.name, err, c.msg)
			continue
		}
		t.Logf("%-32s %v", c.name+":", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(docExample(f))
	f.Add(`{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"]}`)
	f.Add(`{"schema":"cocoon-policy/v1","allow_debug":true,"allow_simulated":true,"image_hashes":["` + h64 + `","` + h64 + `"],"td_attributes":{"pks":null,"perfmon":true}}`)
	f.Add(`{"schema":"cocoon-policy/v1","measurements":[{"mrtd":"` + r96 + `","rtmr0":"` + r96 + `","rtmr1":"` + r96 + `","rtmr2":"` + r96 + `","rtmr3":"` + r96 + `"}],"xfam":"E71A060000000000"}`)
	f.Add(`{"schema":"cocoon-policy/v1","image_hashes":["` + h64 + `"],"xfam":""}`)
	f.Add(`{"schema":"cocoon-policy/v1","SCHEMA":"x","Image_Hashes":["` + h64 + `"]}`)
	f.Add(`[]`)
	q := sampleQuote(f)
	f.Fuzz(func(t *testing.T, in string) {
		p, err := Parse(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("error without ErrPolicy: %v", err)
			}
			return
		}
		// Read, write, read: the same policy.
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("reparse of %s: %v", out, err)
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("round trip:\n%+v\n%+v", p, p2)
		}
		// Any accepted policy validates without panicking, with a typed error.
		if err := p.Validate(Evidence{Quote: q}, nil); err != nil &&
			!errors.Is(err, ErrMismatch) && !errors.Is(err, ErrDebug) && !errors.Is(err, ErrSimulated) {
			t.Fatalf("Validate: untyped error %v", err)
		}
	})
}
