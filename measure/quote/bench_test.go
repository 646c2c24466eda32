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
func BenchmarkVerifyValidate(b *testing.B) {
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
	reportData := parsed.GetTdQuoteBody().GetReportData()

	b.Run("collateral", func(b *testing.B) {
		o := quote.Options{Now: time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC), Collateral: coll}
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
		o := quote.Options{Now: time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)}
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
