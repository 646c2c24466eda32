package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

func reg(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func tdxWorker(kind attest.Kind, mrtd, rtmr1, rtmr2 []byte) *Checked {
	q := &pb.QuoteV4{TdQuoteBody: &pb.TDQuoteBody{MrTd: mrtd, Rtmrs: [][]byte{reg(0, 48), rtmr1, rtmr2, reg(0, 48)}}}
	return &Checked{Result: &ratls.Result{Attested: &ratls.Attested{Kind: kind, Quote: q, Simulated: kind == attest.Sim}}}
}

func vtpmWorker(pcr4, pcr9 []byte) *Checked {
	return &Checked{Result: &ratls.Result{Attested: &ratls.Attested{Kind: attest.VTPM}, Evidence: &attest.Evidence{PCRs: map[int][]byte{4: pcr4, 9: pcr9, 15: reg(7, 32)}}}}
}

func TestCompareRebuild(t *testing.T) {
	full := &Prediction{MRTD: reg(1, 48), RTMR1: reg(2, 48), RTMR2: reg(3, 48), PCR: map[int][]byte{4: reg(4, 32), 9: reg(9, 32)}}
	refused := tdxWorker(attest.TDX, reg(1, 48), reg(2, 48), reg(3, 48))
	refused.Err = ErrRefused
	for _, tc := range []struct {
		name           string
		p              *Prediction
		w              *Checked
		match, skipped bool
		detail         string
	}{
		{"tdx match", full, tdxWorker(attest.TDX, reg(1, 48), reg(2, 48), reg(3, 48)), true, false, "mrtd, rtmr1, rtmr2"},
		{"tdx kernel differs", full, tdxWorker(attest.TDX, reg(1, 48), reg(0xee, 48), reg(3, 48)), false, false, "rtmr1 = eeeeeeeeeeeeeeee…, rebuilt 0202020202020202…"},
		{"sim says so", full, tdxWorker(attest.Sim, reg(5, 48), reg(2, 48), reg(3, 48)), false, false, "SIMULATED"},
		{"vtpm match", full, vtpmWorker(reg(4, 32), reg(9, 32)), true, false, "pcr4, pcr9"},
		{"vtpm cmdline differs", full, vtpmWorker(reg(4, 32), reg(8, 32)), false, false, "pcr9 = 0808080808080808…"},
		{"vtpm pcr missing", full, vtpmWorker(reg(4, 32), nil), false, false, "pcr9 = none"},
		{"refused skipped", full, refused, false, true, "not verified"},
		{"no tdx prediction", &Prediction{TDXErr: errors.New("no firmware")}, tdxWorker(attest.TDX, nil, nil, nil), false, true, "no firmware"},
		{"no tpm prediction", &Prediction{TPMErr: errors.New("bad kernel")}, vtpmWorker(nil, nil), false, true, "bad kernel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := CompareRebuild(tc.p, tc.w)
			if r.Match != tc.match || r.Skipped != tc.skipped || !strings.Contains(r.Detail, tc.detail) {
				t.Errorf("%+v, want match %v skipped %v, detail with %q", r, tc.match, tc.skipped, tc.detail)
			}
		})
	}
}
