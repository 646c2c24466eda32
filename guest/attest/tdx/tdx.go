// Package tdx is the attestation provider of an Intel TDX guest.
//
// Quotes come from the kernel's configfs-tsm report interface (Linux >=
// 6.7, Documentation/ABI/testing/configfs-tsm, later renamed
// configfs-tsm-report): make a directory under
// /sys/kernel/config/tsm/report, write the 64 bytes of report data to its
// inblob, read outblob. The tdx_guest driver turns that
// into TDG.MR.REPORT (the TDREPORT with REPORTDATA = inblob) and a GetQuote
// TDVMCALL, which the host's quote generation service (QGS) answers with a
// DCAP quote v4 signed by the TD quoting enclave. go-configfs-tsm's report
// package drives the directory and checks its generation counter, so a
// concurrent writer to the same entry cannot hand us another caller's quote.
// The configfs client is injected: linuxtsm's on a TD, faketsm's in tests.
//
// The quote is checked before it is returned: measure/quote.Parse must
// accept it and its REPORTDATA must be the requested bytes. Whether it is
// genuine (Intel's signatures and collateral) is measure/quote.Verify's
// question and whether it is the expected TD measure/policy's; both belong
// to the verifier.
//
// Registers (RTMR read, CCEL, RTMR3 extend) are init/measured.TDX's, which
// uses the sysfs measurement registers of Linux >= 6.16
// (/sys/class/misc/tdx_guest/measurements/rtmr*:sha384). Known gaps:
//
//   - The image's pinned Debian kernel (6.12) has no such files: there Read
//     and Extend fail with attest.ErrUnavailable, and runtime events cannot be
//     extended into RTMR3 at all. The RTMR values are still in every quote
//     (RTMRs reads them from one), so a verifier can replay the CCEL against
//     the quote; the init cannot check them before it has a quote.
//   - go-configfs-tsm's rtmr package targets a configfs RTMR interface
//     (tsm/rtmrs) that was proposed but not merged into Linux; measured.TDX
//     does not use it, and neither does this package.
//   - A TDREPORT through /dev/tdx_guest (TDX_CMD_GET_REPORT0, Linux >= 6.2)
//     would give the RTMRs on 6.12 without a quote or a QGS; not done here.
//
// Without a QGS on the host (QEMU's tdx-guest quote-generation-socket),
// reading outblob fails and Quote returns ErrReport.
package tdx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

const (
	// ReportDir is the configfs-tsm report subsystem.
	ReportDir = configfsi.TsmPrefix + "/report"
	// ProviderName is what a report's provider attribute says on a TD: the
	// tdx_guest driver registers its tsm ops under KBUILD_MODNAME
	// (drivers/virt/coco/tdx-guest). An SEV-SNP guest says "sev_guest".
	ProviderName = "tdx_guest"
)

// ErrReport: the configfs-tsm report failed (no quote from the host's
// quote generation service, a concurrent writer, an I/O error).
var ErrReport = errors.New("tdx: configfs-tsm report failed")

// Provider is the TDX attest.Provider.
type Provider struct {
	// TSM reaches configfs-tsm: linuxtsm's client (Open), or a fake.
	TSM configfsi.Client
	// Registers is the register side; &measured.TDX{} when nil.
	Registers measured.Registers
	// RuntimeLogPath is the init's runtime log; measured.RuntimeLogPath
	// when empty.
	RuntimeLogPath string
}

// GuestDevice is the tdx_guest driver's device (Linux
// drivers/virt/coco/tdx-guest).
const GuestDevice = "/dev/tdx_guest"

// Open returns the Provider of this TD. Errors are attest.ErrUnavailable
// when configfs-tsm's report directory is absent (not a TD, the tsm_report
// module not loaded, or configfs not mounted).
func Open() (*Provider, error) {
	// configfs-tsm's report directory exists in any guest with configfs
	// and the tsm module; only a TD has the tdx_guest device (the module's
	// init fails with ENODEV elsewhere), so without it there is no quote.
	if _, err := os.Stat(GuestDevice); err != nil {
		return nil, fmt.Errorf("tdx: %w: %s: %w (not a TD, or tdx_guest not loaded)", attest.ErrUnavailable, GuestDevice, err)
	}
	c, err := linuxtsm.MakeClient()
	if err != nil {
		return nil, fmt.Errorf("tdx: %w: %s: %w", attest.ErrUnavailable, ReportDir, err)
	}
	return &Provider{TSM: c, Registers: &measured.TDX{}}, nil
}

var _ attest.Provider = (*Provider)(nil)

// Quote implements attest.Provider: a configfs-tsm report with inblob =
// reportData, checked with CheckQuote, with the CCEL (when the firmware
// published one) and the runtime log.
func (p *Provider) Quote(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	raw, err := p.report(reportData)
	if err != nil {
		return nil, err
	}
	if _, err := CheckQuote(raw, reportData); err != nil {
		return nil, err
	}
	ev := &attest.Evidence{Kind: attest.TDX, Quote: raw}
	if ev.EventLog, err = p.EventLog(); errors.Is(err, measured.ErrNotSupported) {
		ev.EventLog = nil // the RTMRs are in the quote; a verifier can still compare them with a prediction
	} else if err != nil {
		return nil, fmt.Errorf("tdx: reading the CCEL: %w", err)
	}
	if ev.RuntimeLog, err = readRuntimeLog(p.RuntimeLogPath); err != nil {
		return nil, err
	}
	return ev, nil
}

// report runs one configfs-tsm report and returns outblob.
func (p *Provider) report(reportData [attest.ReportDataSize]byte) ([]byte, error) {
	if p.TSM == nil {
		return nil, fmt.Errorf("tdx: %w: no configfs-tsm client", attest.ErrUnavailable)
	}
	// The entry is made here rather than by report.Create, which formats
	// the mkdir error with %v and loses the errno that says why.
	entry, err := p.TSM.MkdirTemp(ReportDir, "cocoon-")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("tdx: %w: %s absent (no configfs-tsm): %w", attest.ErrUnavailable, ReportDir, err)
	case errors.Is(err, syscall.ENXIO):
		// tsm_report_make_item: no provider has registered (tdx_guest not
		// loaded, or not a TD).
		return nil, fmt.Errorf("tdx: %w: configfs-tsm has no provider (is tdx_guest loaded?): %w", attest.ErrUnavailable, err)
	case err != nil:
		return nil, fmt.Errorf("%w: creating a report entry: %w", ErrReport, err)
	}
	r, err := report.UnsafeWrap(p.TSM, entry)
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %w", ErrReport, entry, err)
	}
	r.InBlob = reportData[:]
	resp, err := r.Get()
	if derr := r.Destroy(); derr != nil {
		err = errors.Join(err, fmt.Errorf("removing %s: %w", entry, derr))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReport, err)
	}
	if got := strings.TrimSpace(resp.Provider); got != ProviderName {
		return nil, fmt.Errorf("tdx: %w: configfs-tsm provider is %q, want %q", attest.ErrUnavailable, got, ProviderName)
	}
	return resp.OutBlob, nil
}

// CheckQuote parses raw as a TDX quote v4 (measure/quote.Parse: layout and
// sizes, no signature check) and checks that its REPORTDATA is reportData.
// Errors are attest.ErrEvidence (and quote.ErrMalformed for a bad layout).
func CheckQuote(raw []byte, reportData [attest.ReportDataSize]byte) (*pb.QuoteV4, error) {
	q, err := quote.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("tdx: %w: %w", attest.ErrEvidence, err)
	}
	if got := q.GetTdQuoteBody().GetReportData(); !bytes.Equal(got, reportData[:]) {
		return nil, fmt.Errorf("tdx: %w: quote REPORTDATA = %x, requested %x", attest.ErrEvidence, got, reportData)
	}
	return q, nil
}

// RTMRs returns RTMR0-3 from a parsed quote's TD quote body, indexed as
// measured.Registers.Read indexes them.
func RTMRs(q *pb.QuoteV4) map[int][]byte {
	out := map[int][]byte{}
	for i, v := range q.GetTdQuoteBody().GetRtmrs() {
		out[i] = bytes.Clone(v)
	}
	return out
}

func readRuntimeLog(p string) ([]byte, error) {
	if p == "" {
		p = measured.RuntimeLogPath
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing extended into RTMR3 yet
	}
	if err != nil {
		return nil, fmt.Errorf("tdx: reading the runtime log: %w", err)
	}
	return b, nil
}

func (p *Provider) regs() measured.Registers {
	if p.Registers == nil {
		return &measured.TDX{}
	}
	return p.Registers
}

// unavailable adds attest.ErrUnavailable to measured's ErrNotSupported.
func unavailable(err error) error {
	if errors.Is(err, measured.ErrNotSupported) {
		return fmt.Errorf("%w: %w", attest.ErrUnavailable, err)
	}
	return err
}

// Kind implements measured.Registers.
func (p *Provider) Kind() eventlog.Kind { return eventlog.CCEL }

// Read implements measured.Registers: RTMR0-3 (Linux >= 6.16).
func (p *Provider) Read() (map[int][]byte, error) {
	v, err := p.regs().Read()
	return v, unavailable(err)
}

// EventLog implements measured.Registers: the CCEL.
func (p *Provider) EventLog() ([]byte, error) {
	v, err := p.regs().EventLog()
	return v, unavailable(err)
}

// Extend implements measured.Registers: RTMR3 (Linux >= 6.16).
func (p *Provider) Extend(e runtime.Event) error { return unavailable(p.regs().Extend(e)) }
