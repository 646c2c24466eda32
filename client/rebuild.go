package client

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// Prediction is what a local rebuild of the image predicts the hardware
// measures (`cocoon measure tdx` and `cocoon measure tpm` of the rebuilt
// image): the user's own answer to "is this the published source?",
// independent of any allowlist.
type Prediction struct {
	// MRTD, RTMR1 (kernel, initrd as loaded by TDVF) and RTMR2 (command
	// line) of a TDX direct boot. RTMR0 depends on the VM's ACPI tables
	// and RTMR3 on the runtime events, not on the image: not compared.
	MRTD, RTMR1, RTMR2 []byte
	// PCR holds the vTPM path's image-dependent PCRs, 4 (kernel) and 9
	// (command line and initrd) (TCG PC Client PFP; measure/tpm).
	PCR map[int][]byte
	// TDXErr and TPMErr say why a prediction is missing.
	TDXErr, TPMErr error
}

// RebuildResult compares one worker's verified evidence with a Prediction.
type RebuildResult struct {
	Match    bool     `json:"match"`
	Skipped  bool     `json:"skipped,omitempty"` // nothing to compare
	Compared []string `json:"compared,omitempty"`
	Detail   string   `json:"detail"`
}

// CompareRebuild compares the registers of w's verified evidence with p:
// MRTD, RTMR1 and RTMR2 for TDX (and simulated) quotes, PCRs 4 and 9 for
// vTPM quotes. A worker that was not verified is skipped: its evidence
// is not known to be genuine, so its registers mean nothing.
func CompareRebuild(p *Prediction, w *Checked) RebuildResult {
	if !w.Verified() {
		return RebuildResult{Skipped: true, Detail: "not verified: nothing genuine to compare"}
	}
	res := w.Result
	type reg struct {
		name      string
		got, want []byte
	}
	var regs []reg
	note := ""
	switch res.Attested.Kind {
	case attest.TDX, attest.Sim:
		if p.MRTD == nil {
			return RebuildResult{Skipped: true, Detail: fmt.Sprintf("no TDX prediction: %v", p.TDXErr)}
		}
		b := res.Attested.Quote.GetTdQuoteBody()
		rtmr := b.GetRtmrs()
		at := func(i int) []byte {
			if i < len(rtmr) {
				return rtmr[i]
			}
			return nil
		}
		regs = []reg{{"mrtd", b.GetMrTd(), p.MRTD}, {"rtmr1", at(1), p.RTMR1}, {"rtmr2", at(2), p.RTMR2}}
		if res.Attested.Simulated {
			note = " (SIMULATED quote: the simulator's registers are configured, not measured)"
		}
	case attest.VTPM:
		if p.PCR == nil {
			return RebuildResult{Skipped: true, Detail: fmt.Sprintf("no vTPM prediction: %v", p.TPMErr)}
		}
		for _, i := range []int{4, 9} {
			regs = append(regs, reg{fmt.Sprintf("pcr%d", i), res.Evidence.PCRs[i], p.PCR[i]})
		}
	default:
		return RebuildResult{Skipped: true, Detail: fmt.Sprintf("%s evidence: no prediction for it", res.Attested.Kind)}
	}
	out := RebuildResult{Match: true}
	var bad []string
	for _, r := range regs {
		out.Compared = append(out.Compared, r.name)
		if r.want == nil || !bytes.Equal(r.got, r.want) {
			out.Match = false
			bad = append(bad, fmt.Sprintf("%s = %s, rebuilt %s", r.name, abbrev(r.got), abbrev(r.want)))
		}
	}
	if out.Match {
		out.Detail = "the rebuilt image predicts " + strings.Join(out.Compared, ", ") + note
	} else {
		out.Detail = strings.Join(bad, "; ") + note
	}
	return out
}

// abbrev is the first 8 bytes of a register in hex, for messages.
func abbrev(b []byte) string {
	switch {
	case b == nil:
		return "none"
	case len(b) > 8:
		return fmt.Sprintf("%x…", b[:8])
	}
	return fmt.Sprintf("%x", b)
}
