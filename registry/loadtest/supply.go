package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/registry/api"
)

// The pre-signed supply is sized for supplyPerCPU receipts/s per CPU
// over the window. The registry verifies an Ed25519 signature per receipt,
// about 70 µs of a core on the 2-core machine this was measured on, so a
// registry cannot take much more than 14,000 receipts/s per core; 15,000
// leaves room without signing receipts that are never sent. maxSupply
// bounds the memory the bodies take (about 420 bytes a receipt) on
// machines with many CPUs. A registry that takes receipts faster than the
// supply lasts makes Run fail with ErrSupply rather than report a capped
// figure.
const (
	supplyPerCPU = 15_000
	maxSupply    = 2_000_000
)

// supplyBatches is how many batches each worker gets signed.
func supplyBatches(o Options) int {
	total := min(float64(supplyPerCPU*runtime.GOMAXPROCS(0))*o.Duration.Seconds(), maxSupply)
	return int(total/float64(o.Workers*o.Batch)) + 2
}

// supplyRate is the intake the supply lasts at, for messages.
func supplyRate(o Options, batches int) float64 {
	return float64(batches*o.Workers*o.Batch) / o.Duration.Seconds()
}

// presign signs, for every worker, n batches of size receipts, seqs 1 to
// n×size in order, each ending at end, and encodes each batch as the body
// of POST /v1/workers/{id}/receipts: bodies[i][j] is worker i's batch j.
// The work is spread over every CPU; it happens before the measured
// window, because on a shared machine the client's signing would take
// CPU from the registry under test (see the package documentation).
func presign(ctx context.Context, ws []*worker, n, size int, end time.Time) ([][][]byte, error) {
	bodies := make([][][]byte, len(ws))
	for i := range bodies {
		bodies[i] = make([][]byte, n)
	}
	var next atomic.Int64 // the next job: worker job % len(ws), batch job / len(ws)
	jobs := int64(n * len(ws))
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for p := range errs {
		wg.Go(func() {
			for {
				k := next.Add(1) - 1
				if k >= jobs || ctx.Err() != nil {
					errs[p] = ctx.Err()
					return
				}
				i, j := int(k)%len(ws), int(k)/len(ws)
				b, err := signBatch(ws[i], uint64(j*size)+1, size, end)
				if err != nil {
					errs[p] = err
					return
				}
				bodies[i][j] = b
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return bodies, nil
}

// signBatch is the JSON body of size receipts of w from seq first on.
func signBatch(w *worker, first uint64, size int, end time.Time) ([]byte, error) {
	batch := make([]receipt.Signed, size)
	for k := range batch {
		seq := first + uint64(k)
		// A commitment is an HMAC of the request body in a deployment
		// (guest/gateway); any 32 bytes will do here, distinct per receipt.
		c := sha256.Sum256(fmt.Appendf(nil, "%s/%d", w.pubHex, seq))
		r := receipt.Receipt{
			V: receipt.Version, Worker: w.pubHex, Seq: seq, Request: "lt-" + strconv.FormatUint(seq, 10), Model: model,
			Usage: receipt.Usage{Prompt: promptTokens, Completion: completionTokens},
			Start: end.Add(-time.Second).UnixMilli(), End: end.UnixMilli(),
			Commitment: hex.EncodeToString(c[:]),
		}
		s, err := receipt.Sign(r, w.key)
		if err != nil {
			return nil, fmt.Errorf("loadtest: signing seq %d: %w", seq, err)
		}
		batch[k] = s
	}
	return json.Marshal(api.ReceiptsRequest{Receipts: batch})
}
