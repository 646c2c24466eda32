package chain

import (
	"context"
	"testing"
	"time"
)

// BenchmarkBatch200 pays 200 recipients per op from a deployed highload
// wallet on the in-memory ledger. It reports the wallet's fees per
// transfer (Outcome.Fees / 200, mainnet config) and the time SendExternal
// takes to execute the whole trace (1 external + 1 internal_transfer + 200
// recipient transactions); signing and Lookup are outside the timer.
func BenchmarkBatch200(b *testing.B) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(b, "", clk)
	h := deployedWallet(b, e, clk)
	if err := e.Fund(ctx, h.Address(), 10_000_000*tonNano); err != nil {
		b.Fatal(err)
	}
	tr, _ := transfersTo(freshAddrs(200, "bench"))
	var fees uint64
	var emulation time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		clk.Add(time.Second)
		n := uint32(i + 2)
		q := (n/1023)<<10 | n%1023 // shift, bit_number < 1023
		boc, hash, err := h.Batch(q, clk.Now(), tr, false)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := e.SendExternal(ctx, boc); err != nil {
			b.Fatal(err)
		}
		emulation += time.Since(start)
		b.StopTimer()
		o, err := e.Lookup(ctx, h.Address(), hash, t0)
		if err != nil || !o.Success || len(o.Sent) != len(tr) {
			b.Fatalf("batch %d: %+v, %v", i, o, err)
		}
		fees += o.Fees
		b.StartTimer()
	}
	b.ReportMetric(float64(fees)/float64(b.N*len(tr)), "nanoton/transfer")
	b.ReportMetric(float64(emulation.Microseconds())/1000/float64(b.N), "ms/batch")
}
