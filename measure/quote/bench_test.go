package quote_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

func load(b *testing.B, name string) []byte {
	d, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkVerifyValidate measures what a registry does per worker quote:
// quote.Verify, then policy.Validate (image hash allowlist, XFAM, report
// data). One goroutine, so quotes/s is per core; run it with -cpu 1 so the
// garbage collector does not borrow a second core:
//
//	go test -run '^$' -bench BenchmarkVerifyValidate -benchtime 3s -cpu 1 ./measure/quote/
//
// "collateral": Verify with the sample collateral given (TCB info, QE
// identity, both CRLs, all Intel-signed). With this sample Verify ends in
// ErrTCBStatus, as the last step after every signature check (see
// testdata/README.md), so the time is that of a full verification; Validate
// then runs on the parsed quote, as it would on an accepted one.
//
// "offline": no collateral (signatures and PCK chain only); it passes.
// benchInputs is the sample quote, its collateral, and a policy it meets.
type benchInputs struct {
	raw        []byte
	coll       *quote.Collateral
	parsed     *pb.QuoteV4
	pol        *policy.Policy
	reportData []byte
}

var (
	benchNowCollateral = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
	benchNowOffline    = time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)
)

func benchSetup(b *testing.B) benchInputs {
	raw := load(b, "tdx_prod_quote_SPR_E4.dat")
	chain := load(b, "tcb_signing_chain.pem")
	coll := &quote.Collateral{
		TCBInfo: load(b, "sample_tcbInfo_response"), TCBInfoIssuerChain: chain,
		QEIdentity: load(b, "sample_qeIdentity_response"), QEIdentityIssuerChain: chain,
		PCKCRL: load(b, "pckcrl"), PCKCRLIssuerChain: load(b, "pckcrl_issuer_chain.pem"),
		RootCACRL: load(b, "rootcrl.der"),
	}
	parsed, err := quote.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	m, err := imagehash.FromQuote(parsed)
	if err != nil {
		b.Fatal(err)
	}
	pol := &policy.Policy{ImageHashes: [][32]byte{m.ImageHash()}, XFAM: &m.XFAM}
	return benchInputs{raw, coll, parsed, pol, parsed.GetTdQuoteBody().GetReportData()}
}

func BenchmarkVerifyValidate(b *testing.B) {
	in := benchSetup(b)
	raw, coll, parsed, pol, reportData := in.raw, in.coll, in.parsed, in.pol, in.reportData

	b.Run("collateral", func(b *testing.B) {
		o := quote.Options{Now: benchNowCollateral, Collateral: coll}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := quote.Verify(raw, o); !errors.Is(err, quote.ErrTCBStatus) {
				b.Fatalf("Verify: %v, want ErrTCBStatus for this sample", err)
			}
			if err := pol.Validate(policy.Evidence{Quote: parsed}, reportData); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "quotes/s")
	})
	b.Run("offline", func(b *testing.B) {
		o := quote.Options{Now: benchNowOffline}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			q, err := quote.Verify(raw, o)
			if err != nil {
				b.Fatal(err)
			}
			if err := pol.Validate(policy.Evidence{Quote: q}, reportData); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "quotes/s")
	})
}

// BenchmarkVerifierValidate is BenchmarkVerifyValidate with a Verifier whose
// caches are warm, as in a registry that has seen each worker once: per
// quote it parses, checks the quote and QE report signatures, the QE report
// data, revocation (map lookups), every validity window, the QE identity and
// the TCB level; then Validate as above.
//
//	go test -run '^$' -bench BenchmarkVerifierValidate -benchtime 3s -cpu 1 ./measure/quote/
//
// "collateral": the sample collateral given. The sample ends in
// ErrTCBStatus after both signatures have been checked (the TCB level is
// evaluated last), so the time is that of a full verification.
//
// "offline": no collateral; the QE is pinned instead; it passes.
func BenchmarkVerifierValidate(b *testing.B) {
	in := benchSetup(b)
	run := func(b *testing.B, v *quote.Verifier, now time.Time, want error) {
		verify := func() *pb.QuoteV4 {
			q, err := v.Verify(in.raw, now)
			if want == nil && err != nil || want != nil && !errors.Is(err, want) {
				b.Fatalf("Verify: %v, want %v", err, want)
			}
			if q == nil {
				q = in.parsed
			}
			return q
		}
		verify() // warm up the caches
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			q := verify()
			if err := in.pol.Validate(policy.Evidence{Quote: q}, in.reportData); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "quotes/s")
	}
	b.Run("collateral", func(b *testing.B) {
		run(b, quote.NewVerifier(quote.VerifierOptions{Collateral: in.coll}), benchNowCollateral, quote.ErrTCBStatus)
	})
	b.Run("offline", func(b *testing.B) {
		run(b, quote.NewVerifier(quote.VerifierOptions{}), benchNowOffline, nil)
	})
}
