// Package loadtest measures how many work receipts the registry takes in:
// Workers simulated workers post signed receipts for Duration to a real
// registry/api.Server on a SQLite store, over HTTP on loopback TCP, and
// Run reports receipts/s, the latency of each POST (p50, p90, p99, max)
// and the errors, then checks the books to the nanoton.
//
// Method:
//
//   - Setup, not measured: the store is a SQLite file in Options.Dir,
//     opened by registry/store as a deployment opens it (WAL,
//     synchronous=FULL: every acknowledged batch is on disk). One model is
//     priced and the image of a TDX simulator (guest/attest/sim)
//     allowlisted; the api.Server is configured as registry/service
//     configures it (default price cache of 10 s, simulated evidence
//     admitted). Each worker has its own Ed25519 key and RA-TLS
//     certificate and registers through POST /v1/workers, attestation
//     checked.
//   - Pre-signed receipts: in a deployment each worker signs its receipts
//     on its own machine. Here the client shares the CPUs with the
//     registry: on the 2-core development VM an Ed25519 signature takes
//     31 µs of a core, its verification 71 µs, and the registry spends
//     about 130 µs of CPU per receipt in all, so signing during the
//     window would take almost a fifth of the CPU from the registry under
//     test. Every receipt is therefore signed, and every batch
//     encoded as its request body, before the window starts: enough for
//     15,000 receipts/s per CPU, more than the registry's signature checks
//     alone allow (supply.go). A worker that runs out before the window
//     ends is an error (ErrSupply), never a capped figure.
//     Sequence numbers rise by one per worker from 1, batch after batch.
//     The posts are plain net/http requests carrying those bodies, the
//     bytes api.Client.SubmitReceipts sends, without its per-call
//     encoding.
//   - Closed loop: each worker posts its next batch as soon as the last is
//     answered, so the rate is the most the registry takes with Workers
//     senders, and the latency is mostly queueing behind the other
//     workers' batches. By Little's law the mean latency is about
//     Workers × Batch / rate: the batch size trades per-request cost
//     (an HTTP round trip and one fsync'd transaction per batch) against
//     that queueing. DefaultBatch is the measured compromise (see it).
//   - The window starts when the workers start and ends when the last
//     answer after Duration arrives: requests in flight at the deadline
//     are waited for and counted, and the rate divides by that time.
//   - Exactness: every receipt is 1,000 tokens and the workers ask the
//     model's floor price, so each earns exactly the same credit whatever
//     the market price does during the run. After the window every
//     request must have been answered 200 with acked_through its last seq
//     and every receipt added (not a duplicate), and the store's earned
//     balance of each worker must equal its acknowledged receipts times
//     that credit; otherwise Run returns an error along with the Result.
//
// A load test measures elapsed time, so it reads the wall clock; the
// registry's clock is the wall clock too, as deployed.
package loadtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/api"
)

// Defaults of Options.
const (
	DefaultWorkers  = 8
	DefaultDuration = 30 * time.Second
	// DefaultBatch was chosen by measurement: 8 workers, 30 s windows, on
	// the shared 2-core development VM (AMD EPYC, ext4 on virtio, an fsync
	// about 2.4 ms), runs with no other busy process (receipts/s, p99):
	//
	//	16   10,900-13,500   31-39 ms
	//	20   10,800-14,800   34-46 ms
	//	24   12,100-15,400   38-48 ms
	//	32   14,000-17,900   42-56 ms
	//	64   17,300 (10 s)   74 ms
	//
	// Every batch is one SQLite transaction with an fsync, so small
	// batches spend the registry's time committing; large ones make each
	// POST wait behind 7 others' long batches (Little's law above). 24 is
	// the size whose worst run kept the most room on both targets.
	DefaultBatch = 24
)

// Errors.
var (
	// ErrOptions: Options that cannot be run.
	ErrOptions = errors.New("loadtest: bad options")
	// ErrSupply: the registry took receipts faster than the pre-signed
	// supply lasted.
	ErrSupply = errors.New("loadtest: pre-signed receipts ran out")
	// ErrUnacked: a request failed or did not acknowledge its whole batch.
	ErrUnacked = errors.New("loadtest: receipts not acknowledged")
	// ErrBooks: the store's balances differ from what the acknowledged
	// receipts are worth.
	ErrBooks = errors.New("loadtest: books do not match the receipts")
	// ErrTarget: a target of Check was missed.
	ErrTarget = errors.New("loadtest: target missed")
)

// Options configure Run.
type Options struct {
	Workers  int           // concurrent workers (0: DefaultWorkers)
	Duration time.Duration // measured window (0: DefaultDuration)
	Batch    int           // receipts per POST (0: DefaultBatch; at most api.MaxBatch)
	Dir      string        // where the SQLite database goes (required)
	Progress io.Writer     // one line every ~5 s with the running rate; nil: none
}

func (o Options) withDefaults() (Options, error) {
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	switch {
	case o.Dir == "":
		return o, fmt.Errorf("%w: Dir is required (the SQLite database goes there)", ErrOptions)
	case o.Workers < 0 || o.Duration < 0:
		return o, fmt.Errorf("%w: %d workers for %v", ErrOptions, o.Workers, o.Duration)
	case o.Batch < 0 || o.Batch > api.MaxBatch:
		return o, fmt.Errorf("%w: batch %d, want 1..%d", ErrOptions, o.Batch, api.MaxBatch)
	}
	return o, nil
}

// Result is what Run measured.
type Result struct {
	Workers, Batch int
	Duration       time.Duration // the window as it ran (Duration plus the last answers)
	Requests       int64         // POSTs answered or failed in the window
	Receipts       int64         // receipts acknowledged
	Errors         int64         // POSTs that failed or acknowledged less than their batch
	ReceiptsPerSec float64
	// Per-request latency: from sending the POST to reading its answer.
	P50, P90, P99, Max time.Duration
	// Credited is the nanoton the store credited; Run checks that it is
	// what the acknowledged receipts were worth.
	Credited uint64
}

// Run runs the benchmark. When the measurement ran but its checks failed
// (errors, ran out of receipts, books off), it returns the Result and the
// error.
func Run(ctx context.Context, o Options) (_ *Result, err error) {
	if o, err = o.withDefaults(); err != nil {
		return nil, err
	}
	s, image, err := bootSimulator()
	if err != nil {
		return nil, err
	}
	reg, err := startRegistry(ctx, o.Dir, hex.EncodeToString(image[:]), s)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, reg.close()) }()
	hc := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: o.Workers, DisableCompression: true},
		Timeout:   time.Minute,
	}
	defer hc.CloseIdleConnections()

	now := time.Now()
	ws := make([]*worker, o.Workers)
	c := &api.Client{BaseURL: reg.url, HTTP: hc}
	for i := range ws {
		// Valid past the window with room: receipts must end before the
		// certificate expires.
		if ws[i], err = newWorker(ctx, s, image, i, now, o.Duration+time.Hour); err != nil {
			return nil, err
		}
		if err := ws[i].register(ctx, c, i); err != nil {
			return nil, err
		}
	}
	bodies, err := presign(ctx, ws, supplyBatches(o), o.Batch, time.Now())
	if err != nil {
		return nil, err
	}

	r, acked, err := drive(ctx, hc, reg.url, ws, bodies, o)
	if err != nil && r == nil {
		return nil, err
	}
	return r, errors.Join(err, checkBooks(ctx, reg, ws, acked, r))
}

// tally is one worker's share of the measurement.
type tally struct {
	requests, receipts, errors int64
	lat                        []time.Duration
	firstErr                   error
	ranOut                     bool
}

// drive runs the measured window: every worker posts its batches, one at
// a time, until Duration has passed. acked[i] is worker i's receipts
// acknowledged.
func drive(ctx context.Context, hc *http.Client, url string, ws []*worker, bodies [][][]byte, o Options) (*Result, []int64, error) {
	tallies := make([]tally, len(ws))
	var live atomic.Int64 // receipts acknowledged so far, for Progress
	var liveErr atomic.Int64
	start := time.Now()
	deadline := start.Add(o.Duration)
	stopProgress := progress(o.Progress, start, &live, &liveErr)
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			t := &tallies[i]
			path := url + "/v1/workers/" + w.id + "/receipts"
			for j := 0; time.Now().Before(deadline) && ctx.Err() == nil; j++ {
				if j == len(bodies[i]) {
					t.ranOut = true
					return
				}
				sent := time.Now()
				err := post(ctx, hc, path, bodies[i][j], uint64((j+1)*o.Batch), o.Batch)
				t.lat = append(t.lat, time.Since(sent))
				t.requests++
				if err != nil {
					t.errors++
					liveErr.Add(1)
					if t.firstErr == nil {
						t.firstErr = fmt.Errorf("worker %d batch %d: %w", i, j, err)
					}
					continue
				}
				t.receipts += int64(o.Batch)
				live.Add(int64(o.Batch))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}

	r := &Result{Workers: o.Workers, Batch: o.Batch, Duration: elapsed}
	var lat []time.Duration
	var errs []error
	acked := make([]int64, len(ws))
	for i, t := range tallies {
		r.Requests += t.requests
		r.Receipts += t.receipts
		r.Errors += t.errors
		acked[i] = t.receipts
		lat = append(lat, t.lat...)
		if t.firstErr != nil {
			errs = append(errs, fmt.Errorf("%w: %d failed, first: %w", ErrUnacked, t.errors, t.firstErr))
		}
		if t.ranOut {
			errs = append(errs, fmt.Errorf("%w: worker %d sent all %d batches before %v: the registry takes more than the %.0f receipts/s they were signed for",
				ErrSupply, i, len(bodies[i]), o.Duration, supplyRate(o, len(bodies[i]))))
		}
	}
	r.ReceiptsPerSec = float64(r.Receipts) / elapsed.Seconds()
	slices.Sort(lat)
	r.P50, r.P90, r.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r, acked, errors.Join(errs...)
}

// post sends one batch and checks that the answer acknowledges all of it:
// acked_through its last seq, every receipt added.
func post(ctx context.Context, hc *http.Client, url string, body []byte, last uint64, size int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
	}
	var ack api.ReceiptsResponse
	if err := json.Unmarshal(data, &ack); err != nil {
		return fmt.Errorf("answer %.200q: %w", data, err)
	}
	if ack.AckedThrough != last || ack.Added != size {
		return fmt.Errorf("acked through %d with %d added, %d duplicates; want through %d with %d added", ack.AckedThrough, ack.Added, ack.Duplicates, last, size)
	}
	return nil
}

// progress writes the running rate to w every 5 s until stop is called.
func progress(w io.Writer, start time.Time, receipts, errs *atomic.Int64) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		last, lastAt := int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				n := receipts.Load()
				fmt.Fprintf(w, "loadtest: %4.0fs %8.0f receipts/s (last %.0f s), %d receipts, %d errors\n",
					now.Sub(start).Seconds(), float64(n-last)/now.Sub(lastAt).Seconds(), now.Sub(lastAt).Seconds(), n, errs.Load())
				last, lastAt = n, now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
