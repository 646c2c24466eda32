package vtpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/internal/swtpmtest"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// swtpm is a running software TPM (internal/swtpmtest).
type swtpm = swtpmtest.TPM

func startSwtpm(t testing.TB, dir string) *swtpm { return swtpmtest.Start(t, dir) }

// newProvider creates a Provider on s and closes it at cleanup.
func newProvider(t testing.TB, s *swtpm, o Options) *Provider {
	t.Helper()
	p, err := New(s.T, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// measureBoot gives a fresh swtpm PCR values that are not all zero: each
// of PCRs 0-9 extended with SHA-256("boot event i") as firmware would, and
// runtime events extended into PCR 15 through the provider and written to
// a runtime log, which it returns.
func measureBoot(t testing.TB, s *swtpm, p *Provider, logPath string) []byte {
	t.Helper()
	for i := range 10 {
		d := sha256.Sum256(fmt.Appendf(nil, "boot event %d", i))
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(i), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
		}.Execute(s.T)
		if err != nil {
			t.Fatalf("extending PCR %d: %v", i, err)
		}
	}
	events := runtime.Log{
		{Kind: runtime.KindStaticConfig, Payload: []byte(`{"schema":"cocoon-static/v1"}`)},
		{Kind: runtime.KindBootComplete},
	}
	var log bytes.Buffer
	if err := measured.Measure(p, events, &log); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, log.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return log.Bytes()
}

func testReportData(label string) [attest.ReportDataSize]byte {
	return sha512.Sum512([]byte(label))
}

// TestSwtpmRoundTrip: evidence from a real TPM 2.0 verifies, carries the
// live PCR values and the runtime log, names the AK the provider reports,
// and every tampering in tamperCases is caught, including an AK from
// another TPM.
func TestSwtpmRoundTrip(t *testing.T) {
	for _, alg := range []KeyAlg{ECCP256, RSA2048} {
		t.Run(algName(alg), func(t *testing.T) {
			s, other := startSwtpm(t, ""), startSwtpm(t, "")
			logPath := filepath.Join(t.TempDir(), "runtime.log")
			p := newProvider(t, s, Options{Key: alg, RuntimeLogPath: logPath, LogPath: filepath.Join(t.TempDir(), "absent")})
			runtimeLog := measureBoot(t, s, p, logPath)
			rd := testReportData("round trip")
			ev, err := p.Quote(context.Background(), rd)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Verify(ev, rd)
			if err != nil {
				t.Fatal(err)
			}
			live, err := p.Read()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v.Selection, DefaultPCRs) {
				t.Errorf("selection %v, want %v", v.Selection, DefaultPCRs)
			}
			for _, i := range DefaultPCRs {
				if !bytes.Equal(v.PCRs[i], live[i]) {
					t.Errorf("PCR %d: verified %x, live %x", i, v.PCRs[i], live[i])
				}
			}
			if !bytes.Equal(ev.RuntimeLog, runtimeLog) {
				t.Errorf("runtime log in the evidence differs from the one written")
			}
			parsed, err := runtime.Parse(bytes.NewReader(ev.RuntimeLog))
			if err != nil || !bytes.Equal(parsed.Replay(crypto.SHA256), v.PCRs[runtime.PCR]) {
				t.Errorf("the runtime log does not replay to the quoted PCR 15 (%v)", err)
			}
			if ev.EventLog != nil {
				t.Errorf("event log %d bytes from an absent file", len(ev.EventLog))
			}
			if !bytes.Equal(v.AKName, p.AKName()) || v.Hierarchy != tpm2.TPMRHEndorsement {
				t.Errorf("AK name %x hierarchy %#x, want %x under the endorsement hierarchy", v.AKName, v.Hierarchy, p.AKName())
			}
			if err := v.CheckAK(p.AKName()); err != nil {
				t.Error(err)
			}
			if err := v.CheckAK(newProvider(t, other, Options{Key: alg}).AKName()); !errors.Is(err, ErrAKNotAllowed) {
				t.Errorf("CheckAK with another TPM's AK: %v", err)
			}
			if a := v.Attest; a.ResetCount != 1 || !a.Safe {
				t.Errorf("clock info of a freshly started swtpm: %+v", a)
			}
			runTamperCases(t, ev, rd, newProvider(t, other, Options{Key: alg}).AKPublic())
		})
	}
}

func algName(a KeyAlg) string {
	return map[KeyAlg]string{ECCP256: "ecc-p256", RSA2048: "rsa-2048"}[a]
}

// TestAKStable: the AK is a primary key from a fixed template: the same TPM
// gives the same AK again, also after a restart on the same state, and the
// owner hierarchy and another TPM give other keys.
func TestAKStable(t *testing.T) {
	s := startSwtpm(t, "")
	first := newProvider(t, s, Options{}).AKPublic()
	if again := newProvider(t, s, Options{}).AKPublic(); !bytes.Equal(first, again) {
		t.Fatalf("second AK on the same TPM differs:\n%x\n%x", first, again)
	}
	owner := newProvider(t, s, Options{Hierarchy: tpm2.TPMRHOwner})
	if bytes.Equal(owner.AKPublic(), first) {
		t.Error("the owner hierarchy gave the endorsement hierarchy's AK")
	}
	rd := testReportData("owner")
	ev, err := owner.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Verify(ev, rd); err != nil || v.Hierarchy != tpm2.TPMRHOwner {
		t.Errorf("owner AK: %v, hierarchy %#x", err, v.Hierarchy)
	}

	s.Stop()
	restarted := startSwtpm(t, s.Dir)
	if after := newProvider(t, restarted, Options{}).AKPublic(); !bytes.Equal(first, after) {
		t.Fatalf("AK after a restart on the same state differs:\n%x\n%x", first, after)
	}
	if other := newProvider(t, startSwtpm(t, ""), Options{}).AKPublic(); bytes.Equal(first, other) {
		t.Fatal("two TPMs gave the same AK")
	}
}

// TestQualifyingDataSizes records why QualifyingData hashes: TPM2B_DATA is
// bounded by sizeof(TPMT_HA). swtpm implements SHA-512, so it takes up to
// 2 + 64 bytes and answers TPM_RC_SIZE beyond; a TPM without SHA-512 draws
// the line at 34 or 50, below 64. The 32 bytes we send fit every TPM 2.0.
func TestQualifyingDataSizes(t *testing.T) {
	s := startSwtpm(t, "")
	p := newProvider(t, s, Options{})
	for _, tc := range []struct {
		n  int
		ok bool
	}{{32, true}, {64, true}, {66, true}, {67, false}} {
		_, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: p.ak.Handle, Name: p.ak.Name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: make([]byte, tc.n)},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
				{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(0)},
			}},
		}.Execute(s.T)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, tpm2.TPMRCSize)) {
			t.Errorf("%d bytes of qualifying data: %v, want ok=%v (or TPM_RC_SIZE)", tc.n, err, tc.ok)
		}
	}
}

// interposer extends PCR 15 behind the provider's back right after each of
// the next n TPM2_Quote commands, as a concurrent measurement would.
type interposer struct {
	t transport.TPM
	n int
}

func (x *interposer) Send(cmd []byte) ([]byte, error) {
	rsp, err := x.t.Send(cmd)
	// Command header: tag (2 bytes), size (4), command code (4).
	if len(cmd) >= 10 && binary.BigEndian.Uint32(cmd[6:10]) == uint32(tpm2.TPMCCQuote) && x.n > 0 {
		x.n--
		d := sha256.Sum256([]byte("concurrent"))
		if _, e := (tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(runtime.PCR), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
		}).Execute(x.t); e != nil {
			return nil, e
		}
	}
	return rsp, err
}

// TestQuoteRetry: a PCR that moves between TPM2_Quote and TPM2_PCR_Read
// makes the provider quote again; one that keeps moving is an error, never
// evidence that does not verify.
func TestQuoteRetry(t *testing.T) {
	for _, tc := range []struct {
		moves int
		ok    bool
	}{{0, true}, {1, true}, {maxQuoteTries - 1, true}, {maxQuoteTries, false}} {
		t.Run(fmt.Sprint(tc.moves), func(t *testing.T) {
			s := startSwtpm(t, "")
			x := &interposer{t: s.T, n: tc.moves}
			p, err := New(x, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			rd := testReportData("retry")
			ev, err := p.Quote(context.Background(), rd)
			if !tc.ok {
				if !errors.Is(err, ErrPCRDigest) {
					t.Fatalf("PCR moving at every try: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(ev, rd); err != nil {
				t.Fatal(err)
			}
			if x.n != 0 {
				t.Fatalf("%d interpositions left", x.n)
			}
		})
	}
}

// TestProviderOptions: a custom selection is what gets quoted, and bad
// options are refused before the TPM is touched.
func TestProviderOptions(t *testing.T) {
	s := startSwtpm(t, "")
	p := newProvider(t, s, Options{PCRs: []int{15, 7}})
	rd := testReportData("options")
	ev, err := p.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ev, rd)
	if err != nil || !slices.Equal(v.Selection, []int{7, 15}) || len(ev.PCRs) != 2 {
		t.Fatalf("selection %v, %d PCRs: %v", v.Selection, len(ev.PCRs), err)
	}
	for _, o := range []Options{
		{PCRs: []int{24}},
		{PCRs: []int{-1}},
		{PCRs: []int{1, 1}},
		{Hierarchy: tpm2.TPMRHPlatform},
		{Key: KeyAlg(7)},
	} {
		if _, err := New(s.T, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := New(s.T, Options{HierarchyAuth: []byte("wrong")}); !errors.Is(err, tpm2.TPMRCBadAuth) {
		t.Errorf("wrong hierarchy authorization: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Quote(ctx, rd); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Quote(context.Background(), rd); err == nil {
		t.Error("quote after Close")
	}
	if _, err := p.EventLog(); !errors.Is(err, attest.ErrUnavailable) || !errors.Is(err, measured.ErrNotSupported) {
		t.Errorf("absent firmware log: %v", err)
	}
}

var record = flag.Bool("record", false, "record testdata/swtpm-*.json from a fresh swtpm")

// TestRecord writes the recorded evidence that the TPM-less tests, the
// fuzz seeds and the benchmark use: go test -run TestRecord -record.
func TestRecord(t *testing.T) {
	if !*record {
		t.Skip("-record not set")
	}
	version, _ := exec.Command("swtpm", "--version").CombinedOutput()
	for _, alg := range []KeyAlg{ECCP256, RSA2048} {
		s, other := startSwtpm(t, ""), startSwtpm(t, "")
		logPath := filepath.Join(t.TempDir(), "runtime.log")
		p := newProvider(t, s, Options{Key: alg, RuntimeLogPath: logPath, LogPath: filepath.Join(t.TempDir(), "absent")})
		measureBoot(t, s, p, logPath)
		rd := testReportData("cocoon vtpm testdata")
		ev, err := p.Quote(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		rec := recording{
			Comment:       fmt.Sprintf("TestRecord: fresh %s, PCRs 0-9 extended by measureBoot, AK %s under the endorsement hierarchy", strings.TrimSpace(strings.SplitN(string(version), ",", 2)[0]), algName(alg)),
			ReportData:    hex.EncodeToString(rd[:]),
			Evidence:      *ev,
			OtherAKPublic: newProvider(t, other, Options{Key: alg}).AKPublic(),
		}
		b, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "swtpm-"+algName(alg)+".json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
