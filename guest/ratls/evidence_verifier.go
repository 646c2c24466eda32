package ratls

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// EvidenceVerifier verifies one kind of evidence. VerifyEvidence checks, at
// now, that e is genuine (else ErrQuote), that it binds reportData (else
// ErrBinding), and that it satisfies the verifier's policy (else ErrPolicy),
// and returns what it attests.
type EvidenceVerifier interface {
	VerifyEvidence(e *attest.Evidence, reportData [attest.ReportDataSize]byte, now time.Time) (*Attested, error)
}

// CheckImage is the image rule of registries and clients alike, applied
// after verification: TDX and simulated evidence must measure an image
// hash on allow (a policy's measurement sets alone do not admit an image);
// vTPM evidence measures none, and its policy's PCR sets pin the boot. The
// error wraps ErrPolicy.
func CheckImage(a *Attested, allow [][32]byte) error {
	if a.ImageHash == nil {
		if a.Kind == attest.VTPM {
			return nil
		}
		return fmt.Errorf("%w: %s evidence attests no image hash", ErrPolicy, a.Kind)
	}
	if !slices.Contains(allow, *a.ImageHash) {
		return fmt.Errorf("%w: image hash %x is not among the %d allowlisted", ErrPolicy, a.ImageHash[:], len(allow))
	}
	return nil
}

// Attested is what verified evidence vouches for.
type Attested struct {
	Kind attest.Kind
	// Quote is the verified TD quote (TDX, Sim); nil for other kinds.
	Quote *pb.QuoteV4
	// Simulated is true for simulator evidence: no hardware vouched.
	Simulated bool
	// ImageHash is the measured image hash (measure/imagehash), nil where
	// the kind measures no such thing; a certificate that claims an image
	// hash needs one.
	ImageHash *[32]byte
	// RuntimeLog is the evidence's runtime log, once it has replayed to
	// the quoted runtime register (RTMR3); nil when the evidence had none.
	RuntimeLog runtime.Log
}

// TDXVerifier verifies Intel TDX quotes with measure/quote (genuine: Intel's
// chain, signatures, collateral as configured) and validates them with
// measure/policy.
type TDXVerifier struct {
	Quotes *quote.Verifier
	Policy *policy.Policy
}

// VerifyEvidence implements EvidenceVerifier.
func (v *TDXVerifier) VerifyEvidence(e *attest.Evidence, reportData [attest.ReportDataSize]byte, now time.Time) (*Attested, error) {
	if v.Quotes == nil {
		return nil, fmt.Errorf("%w: TDXVerifier has no quote verifier", ErrQuote)
	}
	q, err := v.Quotes.Verify(e.Quote, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuote, err)
	}
	return attestQuote(attest.TDX, q, e, reportData, v.Policy, false)
}

// SimVerifier verifies quotes of the TDX simulator (guest/attest/sim)
// against a pinned simulator root, and validates them with measure/policy
// as simulated evidence: only a policy with allow_simulated accepts them.
type SimVerifier struct {
	Root   *x509.Certificate
	Policy *policy.Policy
}

// VerifyEvidence implements EvidenceVerifier.
func (v *SimVerifier) VerifyEvidence(e *attest.Evidence, reportData [attest.ReportDataSize]byte, _ time.Time) (*Attested, error) {
	q, err := sim.Verify(e.Quote, v.Root)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuote, err)
	}
	return attestQuote(attest.Sim, q, e, reportData, v.Policy, true)
}

// VTPMVerifier (vtpm.go) verifies vTPM evidence against a VTPMPolicy.

// attestQuote is what TDX and simulated quotes share once genuine: report
// data binding, policy, and the runtime log against RTMR3.
func attestQuote(kind attest.Kind, q *pb.QuoteV4, e *attest.Evidence, reportData [attest.ReportDataSize]byte, p *policy.Policy, simulated bool) (*Attested, error) {
	if got := q.GetTdQuoteBody().GetReportData(); !bytes.Equal(got, reportData[:]) {
		return nil, fmt.Errorf("%w: quote report data %x, want SHA-512(claims) %x", ErrBinding, got, reportData)
	}
	if p == nil {
		return nil, fmt.Errorf("%w: no policy configured for %s evidence", ErrPolicy, kind)
	}
	if err := p.Validate(policy.Evidence{Quote: q, Simulated: simulated}, reportData[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	m, err := imagehash.FromQuote(q)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuote, err)
	}
	h := m.ImageHash()
	a := &Attested{Kind: kind, Quote: q, Simulated: simulated, ImageHash: &h}
	if len(e.RuntimeLog) > 0 {
		log, err := runtime.Parse(bytes.NewReader(e.RuntimeLog))
		if err != nil {
			return nil, fmt.Errorf("%w: runtime log: %w", ErrMalformed, err)
		}
		if err := log.Validate(); err != nil {
			return nil, fmt.Errorf("%w: runtime log: %w", ErrMalformed, err)
		}
		// measure/runtime: RTMR3 starts at zero and each event extends it.
		if got := log.Replay(crypto.SHA384); !bytes.Equal(got, m.RTMR[runtime.RTMR][:]) {
			return nil, fmt.Errorf("%w: runtime log of %d events replays to %x, quote RTMR3 is %x", ErrBinding, len(log), got, m.RTMR[runtime.RTMR])
		}
		a.RuntimeLog = log
	}
	return a, nil
}
