package tdx

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha512"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// REPORTDATA in a TDX quote v4: after the 48-byte header, at offset 520 of
// the TD quote body (TEE_TCB_SVN 16, MRSEAM 48, MRSIGNERSEAM 48,
// SEAMATTRIBUTES 8, TDATTRIBUTES 8, XFAM 8, MRTD 48, MRCONFIGID 48,
// MROWNER 48, MROWNERCONFIG 48, RTMR0-3 4x48), 64 bytes (Intel TDX DCAP
// Quote Generation Library spec, quote format v4).
const reportDataOffset = 48 + 520

// sampleQuote is go-tdx-guest's real production quote (testing/testdata,
// also measure/quote/testdata/tdx_prod_quote_SPR_E4.dat).
func sampleQuote() []byte { return bytes.Clone(testdata.RawQuote) }

func sampleReportData(t *testing.T) (rd [attest.ReportDataSize]byte) {
	t.Helper()
	copy(rd[:], sampleQuote()[reportDataOffset:])
	if q, err := quote.Parse(sampleQuote()); err != nil || !bytes.Equal(q.GetTdQuoteBody().GetReportData(), rd[:]) {
		t.Fatalf("REPORTDATA offset: %v", err)
	}
	return rd
}

// fakeTSM is configfs-tsm as the kernel shows it with the tdx_guest
// provider, on go-configfs-tsm's faketsm (which checks the generation
// protocol): outblob is what outblob returns for the inblob written, and
// provider is the provider attribute. It returns the subsystem too, to
// check entries are removed.
func fakeTSM(provider string, outblob func(inblob []byte) ([]byte, error)) (*faketsm.Client, *faketsm.ReportSubsystem) {
	sub := &faketsm.ReportSubsystem{
		MakeEntry: func() *faketsm.ReportEntry {
			return &faketsm.ReportEntry{InAttrs: map[string]*faketsm.ReportAttributeState{"inblob": {}, "privlevel": {}}}
		},
		CheckInAttr: func(_ *faketsm.ReportEntry, attr string, contents []byte) error {
			// TSM_REPORT_INBLOB_MAX (include/linux/tsm.h) is 64.
			if attr == "inblob" && len(contents) > 64 {
				return syscall.EINVAL
			}
			return nil
		},
		ReadAttr: func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
			switch attr {
			case "outblob":
				return outblob(e.InAttrs["inblob"].Value)
			case "provider":
				return []byte(provider + "\n"), nil
			}
			return nil, fs.ErrNotExist
		},
		Random: rand.NewChaCha8([32]byte{1}),
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}, sub
}

// withReportData is a quote generation that writes inblob into the sample
// quote's REPORTDATA. Its quotes parse but are not genuine: the QE's
// signature covers REPORTDATA.
func withReportData(inblob []byte) ([]byte, error) {
	q := sampleQuote()
	copy(q[reportDataOffset:reportDataOffset+64], inblob)
	return q, nil
}

// mkdirErr fails MkdirTemp with err, as configfs does without a provider.
type mkdirErr struct {
	configfsi.Client
	err error
}

func (m mkdirErr) MkdirTemp(dir, _ string) (string, error) {
	return "", &fs.PathError{Op: "mkdir", Path: dir, Err: m.err}
}

func TestQuote(t *testing.T) {
	rd := sha512.Sum512([]byte("tdx provider"))
	tsm, sub := fakeTSM(ProviderName, withReportData)
	root := t.TempDir()
	ccel := []byte("CCEL bytes")
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(measured.CCELPath)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, measured.CCELPath), ccel, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "runtime.log")
	if err := os.WriteFile(logPath, []byte("runtime log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Provider{TSM: tsm, Registers: &measured.TDX{Root: root}, RuntimeLogPath: logPath}
	ev, err := p.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != attest.TDX || !bytes.Equal(ev.EventLog, ccel) || string(ev.RuntimeLog) != "runtime log\n" {
		t.Errorf("evidence kind %q, event log %q, runtime log %q", ev.Kind, ev.EventLog, ev.RuntimeLog)
	}
	q, err := quote.Parse(ev.Quote)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.GetTdQuoteBody().GetReportData(); !bytes.Equal(got, rd[:]) {
		t.Errorf("REPORTDATA %x, want %x", got, rd)
	}
	if len(sub.Entries) != 0 {
		t.Errorf("%d report entries left in configfs", len(sub.Entries))
	}
	// The fake's quote parses but is not genuine: its QE signature covers
	// the sample's REPORTDATA.
	if _, err := quote.Verify(ev.Quote, quote.Options{Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, quote.ErrSignature) {
		t.Errorf("patched sample quote: %v, want quote.ErrSignature", err)
	}
	if r := RTMRs(q); len(r) != 4 || !bytes.Equal(r[3], q.GetTdQuoteBody().GetRtmrs()[3]) {
		t.Errorf("RTMRs: %d registers", len(r))
	}
}

// TestQuoteGenuine: when the quote generation returns the sample quote
// unchanged (for its own REPORTDATA), Quote hands it on byte for byte and
// it verifies to Intel's root with measure/quote.
func TestQuoteGenuine(t *testing.T) {
	rd := sampleReportData(t)
	tsm, _ := fakeTSM(ProviderName, func([]byte) ([]byte, error) { return sampleQuote(), nil })
	p := &Provider{TSM: tsm, Registers: &measured.TDX{Root: t.TempDir()}, RuntimeLogPath: filepath.Join(t.TempDir(), "absent")}
	ev, err := p.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Quote, sampleQuote()) || ev.EventLog != nil || ev.RuntimeLog != nil {
		t.Fatalf("quote changed (%d bytes), event log %d bytes, runtime log %d bytes", len(ev.Quote), len(ev.EventLog), len(ev.RuntimeLog))
	}
	if _, err := quote.Verify(ev.Quote, quote.Options{Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
}

func TestQuoteFailures(t *testing.T) {
	rd := sha512.Sum512([]byte("failures"))
	fixed := func(b []byte, err error) func([]byte) ([]byte, error) {
		return func([]byte) ([]byte, error) { return b, err }
	}
	good, _ := fakeTSM(ProviderName, withReportData)
	sev, _ := fakeTSM("sev_guest", withReportData)
	noQGS, _ := fakeTSM(ProviderName, fixed(nil, syscall.EIO))
	sample, _ := fakeTSM(ProviderName, fixed(sampleQuote(), nil))
	short, _ := fakeTSM(ProviderName, fixed(sampleQuote()[:600], nil))
	text, _ := fakeTSM(ProviderName, fixed([]byte("privlevel: 0\ninblob: 00"), nil))
	v7 := &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": faketsm.ReportV7(0)}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		tsm  configfsi.Client
		ctx  context.Context
		want []error
	}{
		{"no configfs-tsm", mkdirErr{good, syscall.ENOENT}, nil, []error{attest.ErrUnavailable}},
		{"no provider registered", mkdirErr{good, syscall.ENXIO}, nil, []error{attest.ErrUnavailable}},
		{"mkdir refused", mkdirErr{good, syscall.EACCES}, nil, []error{ErrReport}},
		{"no client", nil, nil, []error{attest.ErrUnavailable}},
		{"SEV-SNP guest", sev, nil, []error{attest.ErrUnavailable}},
		{"no quote generation service", noQGS, nil, []error{ErrReport}},
		{"quote for other report data", sample, nil, []error{attest.ErrEvidence}},
		{"truncated quote", short, nil, []error{attest.ErrEvidence, quote.ErrMalformed}},
		{"not a quote", text, nil, []error{attest.ErrEvidence, quote.ErrMalformed}},
		{"faketsm's stock fake (provider \"fake\")", v7, nil, []error{attest.ErrUnavailable}},
		{"cancelled", good, cancelled, []error{context.Canceled}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			p := &Provider{TSM: tc.tsm, Registers: &measured.TDX{Root: t.TempDir()}}
			ev, err := p.Quote(ctx, rd)
			if ev != nil || err == nil {
				t.Fatal("evidence returned")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q is not %q", err, w)
				}
			}
		})
	}
}

// TestRegisters: the register side is measured.TDX's, with its "not
// supported" also attest.ErrUnavailable; on a fake sysfs it reads and
// extends.
func TestRegisters(t *testing.T) {
	absent := &Provider{Registers: &measured.TDX{Root: t.TempDir()}}
	_, errRead := absent.Read()
	_, errLog := absent.EventLog()
	errExt := absent.Extend(runtime.Event{Kind: runtime.KindBootComplete})
	for name, err := range map[string]error{"Read": errRead, "EventLog": errLog, "Extend": errExt} {
		if !errors.Is(err, attest.ErrUnavailable) || !errors.Is(err, measured.ErrNotSupported) {
			t.Errorf("%s without sysfs: %v", name, err)
		}
	}
	if k := absent.Kind(); k != eventlog.CCEL {
		t.Errorf("kind %v", k)
	}

	f := measured.NewFake(eventlog.CCEL)
	p := &Provider{Registers: f}
	e := runtime.Event{Kind: runtime.KindBootComplete}
	if err := p.Extend(e); err != nil {
		t.Fatal(err)
	}
	regs, err := p.Read()
	if err != nil {
		t.Fatal(err)
	}
	if want := (runtime.Log{e}).Replay(crypto.SHA384); !bytes.Equal(regs[runtime.RTMR], want) {
		t.Errorf("RTMR3 = %x, want %x", regs[runtime.RTMR], want)
	}
}

// TestOpen: on a machine without configfs-tsm, Open says unavailable; on a
// TD (COCOON_REAL_TDX set) it quotes for real.
func TestOpen(t *testing.T) {
	p, err := Open()
	if os.Getenv("COCOON_REAL_TDX") == "" {
		if _, serr := os.Stat(ReportDir); serr == nil {
			t.Skipf("%s exists; set COCOON_REAL_TDX to quote", ReportDir)
		}
		if !errors.Is(err, attest.ErrUnavailable) {
			t.Fatalf("Open without %s: %v", ReportDir, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	rd := sha512.Sum512([]byte("real TDX"))
	ev, err := p.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quote.Verify(ev.Quote, quote.Options{Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// FuzzCheckQuote: CheckQuote never panics, fails only with
// attest.ErrEvidence, and accepts only quotes carrying the report data.
func FuzzCheckQuote(f *testing.F) {
	s := sampleQuote()
	f.Add(s, s[reportDataOffset:reportDataOffset+64])
	f.Add(s[:reportDataOffset+64], s[reportDataOffset:reportDataOffset+64])
	f.Add(s, make([]byte, 64))
	f.Fuzz(func(t *testing.T, raw, rdb []byte) {
		var rd [attest.ReportDataSize]byte
		copy(rd[:], rdb)
		q, err := CheckQuote(raw, rd)
		if err != nil {
			if !errors.Is(err, attest.ErrEvidence) {
				t.Fatalf("error without ErrEvidence: %v", err)
			}
			return
		}
		if !bytes.Equal(q.GetTdQuoteBody().GetReportData(), rd[:]) || !bytes.Equal(raw[reportDataOffset:reportDataOffset+64], rd[:]) {
			t.Fatal("accepted a quote without the report data")
		}
	})
}
