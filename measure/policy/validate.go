package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// Typed errors; test with errors.Is. A *Mismatch (errors.As) gives the
// field, the expected and the found value for ErrMismatch, ErrDebug and
// ErrReportData.
var (
	ErrPolicy     = errors.New("invalid policy")
	ErrEvidence   = errors.New("evidence is not a parsed TDX quote v4")
	ErrMismatch   = errors.New("quote does not match the policy")
	ErrDebug      = errors.New("debug TD refused")
	ErrSimulated  = errors.New("simulated quote refused")
	ErrReportData = errors.New("report data mismatch")
)

// Mismatch says which field differs, what the policy wants and what the
// quote has. Its error matches ErrMismatch, or ErrDebug / ErrReportData for
// those checks.
type Mismatch struct {
	Field  string // as in the policy file: "rtmr[2]", "xfam", "td_attributes.pks"
	Want   string
	Got    string
	Detail string // optional context
	kind   error
}

func (m *Mismatch) Error() string {
	var b strings.Builder
	if m.kind != nil {
		b.WriteString(m.kind.Error() + ": ")
	}
	fmt.Fprintf(&b, "%s = %s, want %s", m.Field, m.Got, m.Want)
	if m.Detail != "" {
		b.WriteString(" (" + m.Detail + ")")
	}
	return b.String()
}

func (m *Mismatch) Unwrap() error {
	if m.kind != nil {
		return m.kind
	}
	return ErrMismatch
}

// Evidence is a quote that measure/quote.Verify accepted, or, with
// Simulated set, one from the TDX simulator that nothing verified.
type Evidence struct {
	Quote     *pb.QuoteV4
	Simulated bool
}

// Validate checks e against the policy, and, when reportData is not nil,
// that the quote's REPORTDATA is reportData zero-padded to 64 bytes. It
// returns the first failure, in this order: simulated, debug, TD
// attributes, XFAM, image (image_hashes or measurements), MRCONFIGID,
// MROWNER, MROWNERCONFIG, TEE_TCB_SVN, report data.
func (p *Policy) Validate(e Evidence, reportData []byte) error {
	if p == nil || (len(p.ImageHashes) == 0 && len(p.Measurements) == 0) {
		return fmt.Errorf("policy: %w: it allows no image", ErrPolicy)
	}
	b, m, err := body(e.Quote)
	if err != nil {
		return err
	}
	if e.Simulated && !p.AllowSimulated {
		return fmt.Errorf("policy: %w: the evidence comes from the TDX simulator and the policy does not set allow_simulated", ErrSimulated)
	}
	for _, check := range []func() *Mismatch{
		func() *Mismatch { return p.checkAttributes(m.TDAttributes) },
		func() *Mismatch { return exact("xfam", sliceOrNil8(p.XFAM), m.XFAM[:]) },
		func() *Mismatch { return p.checkImage(m) },
		func() *Mismatch { return exact("mr_config_id", sliceOrNil48(p.MRConfigID), b.GetMrConfigId()) },
		func() *Mismatch { return exact("mr_owner", sliceOrNil48(p.MROwner), b.GetMrOwner()) },
		func() *Mismatch { return exact("mr_owner_config", sliceOrNil48(p.MROwnerConfig), b.GetMrOwnerConfig()) },
		func() *Mismatch { return p.checkTCB(b.GetTeeTcbSvn()) },
	} {
		if mm := check(); mm != nil {
			return fmt.Errorf("policy: %w", mm)
		}
	}
	if reportData != nil {
		if len(reportData) > 64 {
			return fmt.Errorf("policy: %w: expected report data is %d bytes, at most 64", ErrReportData, len(reportData))
		}
		want := make([]byte, 64)
		copy(want, reportData)
		if mm := exact("report_data", want, b.GetReportData()); mm != nil {
			mm.kind = ErrReportData
			return fmt.Errorf("policy: %w", mm)
		}
	}
	return nil
}

// body checks the lengths of every field Validate reads.
func body(q *pb.QuoteV4) (*pb.TDQuoteBody, imagehash.Measurements, error) {
	m, err := imagehash.FromQuote(q)
	if err != nil {
		return nil, m, fmt.Errorf("policy: %w: %w", ErrEvidence, err)
	}
	b := q.GetTdQuoteBody()
	for _, f := range []struct {
		name string
		got  []byte
		want int
	}{
		{"MRCONFIGID", b.GetMrConfigId(), 48},
		{"MROWNER", b.GetMrOwner(), 48},
		{"MROWNERCONFIG", b.GetMrOwnerConfig(), 48},
		{"TEE_TCB_SVN", b.GetTeeTcbSvn(), 16},
		{"REPORTDATA", b.GetReportData(), 64},
	} {
		if len(f.got) != f.want {
			return nil, m, fmt.Errorf("policy: %w: %s is %d bytes, want %d", ErrEvidence, f.name, len(f.got), f.want)
		}
	}
	return b, m, nil
}

func (p *Policy) checkAttributes(raw [8]byte) *Mismatch {
	a := binary.LittleEndian.Uint64(raw[:])
	if tud := a & tudMask; tud != 0 && !p.AllowDebug {
		return &Mismatch{
			Field:  "td_attributes.tud",
			Got:    fmt.Sprintf("0x%02x (%s)", tud, tudString(tud)),
			Want:   "0x00",
			Detail: "TDATTRIBUTES bits 7:0, TD under debug; set allow_debug to accept debug TDs",
			kind:   ErrDebug,
		}
	}
	if r := a & secMask &^ knownSEC(); r != 0 {
		return &Mismatch{
			Field:  "td_attributes.reserved_sec",
			Got:    fmt.Sprintf("0x%08x", r),
			Want:   "0",
			Detail: "SEC-group bits this policy version does not know; they may affect the TD's security",
		}
	}
	names := make([]string, 0, len(p.TDAttributes))
	for n := range p.TDAttributes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		bit, ok := attributeBit(n)
		if !ok {
			return &Mismatch{Field: "td_attributes." + n, Got: "?", Want: "a known flag", kind: ErrPolicy}
		}
		if got, want := a&(1<<bit) != 0, p.TDAttributes[n]; got != want {
			return &Mismatch{
				Field:  "td_attributes." + n,
				Got:    fmt.Sprint(got),
				Want:   fmt.Sprint(want),
				Detail: fmt.Sprintf("TDATTRIBUTES bit %d; quote has %016x", bit, raw),
			}
		}
	}
	return nil
}

func (p *Policy) checkImage(m imagehash.Measurements) *Mismatch {
	h := m.ImageHash()
	for _, w := range p.ImageHashes {
		if w == h {
			return nil
		}
	}
	// The closest measurement set explains a mismatch best.
	best, bestDiff := -1, 6
	for i, r := range p.Measurements {
		d := 0
		if r.MRTD != m.MRTD {
			d++
		}
		for j := range r.RTMR {
			if r.RTMR[j] != m.RTMR[j] {
				d++
			}
		}
		if d == 0 {
			return nil
		}
		if d < bestDiff {
			best, bestDiff = i, d
		}
	}
	hashNote := ""
	if n := len(p.ImageHashes); n > 0 {
		hashNote = fmt.Sprintf("image hash %x is not among the %d allowlisted", h, n)
	}
	if best < 0 {
		return &Mismatch{Field: "image_hash", Got: hex.EncodeToString(h[:]), Want: hashList(p.ImageHashes)}
	}
	r := p.Measurements[best]
	mm := &Mismatch{Detail: fmt.Sprintf("closest of %d measurement sets: %d of 5 registers differ", len(p.Measurements), bestDiff)}
	if hashNote != "" {
		mm.Detail += "; " + hashNote
	}
	if r.MRTD != m.MRTD {
		mm.Field, mm.Got, mm.Want = "mrtd", hex.EncodeToString(m.MRTD[:]), hex.EncodeToString(r.MRTD[:])
		return mm
	}
	for j := range r.RTMR {
		if r.RTMR[j] != m.RTMR[j] {
			mm.Field, mm.Got, mm.Want = fmt.Sprintf("rtmr[%d]", j), hex.EncodeToString(m.RTMR[j][:]), hex.EncodeToString(r.RTMR[j][:])
			return mm
		}
	}
	panic("unreachable")
}

func hashList(hs [][32]byte) string {
	if len(hs) == 1 {
		return hex.EncodeToString(hs[0][:])
	}
	if len(hs) > 3 {
		return fmt.Sprintf("one of %d allowlisted image hashes", len(hs))
	}
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = hex.EncodeToString(h[:])
	}
	return "one of [" + strings.Join(s, ", ") + "]"
}

func (p *Policy) checkTCB(got []byte) *Mismatch {
	if p.MinTEETCBSVN == nil {
		return nil
	}
	for i, w := range p.MinTEETCBSVN {
		if got[i] < w {
			return &Mismatch{
				Field:  fmt.Sprintf("tee_tcb_svn[%d]", i),
				Got:    fmt.Sprint(got[i]),
				Want:   fmt.Sprintf(">= %d", w),
				Detail: fmt.Sprintf("tee_tcb_svn %x, min_tee_tcb_svn %x", got, p.MinTEETCBSVN[:]),
			}
		}
	}
	return nil
}

// exact compares when want is not nil.
func exact(field string, want, got []byte) *Mismatch {
	if want == nil || bytes.Equal(want, got) {
		return nil
	}
	return &Mismatch{Field: field, Got: hex.EncodeToString(got), Want: hex.EncodeToString(want)}
}

func sliceOrNil8(a *[8]byte) []byte {
	if a == nil {
		return nil
	}
	return a[:]
}

func sliceOrNil48(a *[48]byte) []byte {
	if a == nil {
		return nil
	}
	return a[:]
}
