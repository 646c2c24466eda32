package api

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
)

// BenchmarkReceipts posts batches of 256 receipts from 4 workers at once
// through the real handler, over HTTP (loopback), into SQLite; one op is
// one batch. Signing happens before the timer (it is the workers' work).
//
//	saturate     each worker posts its next batch as soon as the last is
//	             answered: the most receipts/s the registry takes; latency
//	             is mostly queueing behind the other workers' batches
//	rate=10000   batches are due on a fixed schedule adding up to 10,000
//	             receipts/s; latency counts from when a batch was due (a
//	             late start is the registry's delay too)
//
// Both report receipts/s and the p50/p99 latency of a POST in ms.
func BenchmarkReceipts(b *testing.B) {
	b.Run("saturate", func(b *testing.B) { benchReceipts(b, 0) })
	b.Run("rate=10000", func(b *testing.B) { benchReceipts(b, 10000) })
}

const (
	benchWorkers = 4
	benchBatch   = 256
)

func benchReceipts(b *testing.B, rate int) {
	fixtures(b)
	e := newEnv(b, func(s *Server) { s.PriceTTL = 0 }) // the default cache, as deployed
	ws := make([]*simWorker, benchWorkers)
	for i := range ws {
		ws[i] = newSimWorker(b, 1, `{"worker":"a"}`, byte(10+i), t0, 0)
		e.register(ws[i])
	}
	bodies := benchBodies(b, ws)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers}}
	defer client.CloseIdleConnections()
	// Batch k is due at start + k × every (rate > 0) and is sent by
	// worker k % benchWorkers.
	var every time.Duration
	if rate > 0 {
		every = time.Duration(float64(time.Second) * benchBatch / float64(rate))
	}

	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, w := range ws {
		wg.Go(func() {
			url := e.ts.URL + "/v1/workers/" + w.id + "/receipts"
			for j, body := range bodies[i] {
				due := time.Now()
				if rate > 0 {
					due = start.Add(time.Duration(j*benchWorkers+i) * every)
					time.Sleep(time.Until(due))
				}
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				d := time.Since(due)
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N*benchBatch)/elapsed.Seconds(), "receipts/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")

	// Everything sent is in the books.
	var n int
	for _, w := range ws {
		rs, err := e.st.Receipts(context.Background(), w.id, 0, b.N*benchBatch)
		if err != nil {
			b.Fatal(err)
		}
		n += len(rs)
	}
	if n != b.N*benchBatch {
		b.Fatalf("%d receipts stored, %d sent", n, b.N*benchBatch)
	}
}

// benchBodies signs b.N batches: bodies[i] are worker i's, seqs rising.
func benchBodies(b *testing.B, ws []*simWorker) [][][]byte {
	end := t0.Add(30 * time.Second)
	bodies := make([][][]byte, len(ws))
	for k := range b.N {
		i := k % len(ws)
		first := uint64(len(bodies[i])*benchBatch) + 1
		batch := make([]receipt.Signed, benchBatch)
		for j := range batch {
			batch[j] = ws[i].receipt(b, first+uint64(j), model, 700, 300, end)
		}
		bodies[i] = append(bodies[i], mustJSON(b, ReceiptsRequest{Receipts: batch}))
	}
	return bodies
}
