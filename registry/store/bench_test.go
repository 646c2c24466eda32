package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/internal/pgtest"
)

// benchBatch is the receipts per AddReceipts call, as a worker's gateway
// batches them.
const benchBatch = 256

// BenchmarkAddReceipts measures receipts stored and credited per second,
// in batches of 256 receipts of about 600 bytes, each call one durable
// transaction (SQLite: WAL, synchronous=FULL, on disk).
//
//	go test -run - -bench AddReceipts ./registry/store
func BenchmarkAddReceipts(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchAddReceipts(b, "sqlite:"+filepath.Join(b.TempDir(), "books.db"), 1)
	})
	// 8 × GOMAXPROCS gateways sending at once.
	b.Run("sqlite-parallel", func(b *testing.B) {
		benchAddReceipts(b, "sqlite:"+filepath.Join(b.TempDir(), "books.db"), 8)
	})
	b.Run("postgres", func(b *testing.B) {
		benchAddReceipts(b, pgtest.Start(b), 1)
	})
	b.Run("postgres-parallel", func(b *testing.B) {
		benchAddReceipts(b, pgtest.Start(b), 8)
	})
}

func benchAddReceipts(b *testing.B, dsn string, senders int) {
	ctx := context.Background()
	st, err := Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const workers = 16
	var ids []string
	for i := range workers {
		w := newWorker(i)
		if err := st.PutWorker(ctx, w); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, w.ID)
	}
	var next atomic.Int64 // batch number: worker and seqs follow from it
	batch := func() []Receipt {
		n := next.Add(1) - 1
		w := ids[n%workers]
		base := uint64(n/workers) * benchBatch
		rs := make([]Receipt, benchBatch)
		for i := range rs {
			seq := base + uint64(i) + 1
			rs[i] = Receipt{Worker: w, Seq: seq, Model: "llama-3.1-8b", Tokens: 1801, Amount: 270_150,
				End: at(time.Duration(seq) * time.Millisecond), Signed: benchSigned(w, seq)}
		}
		return rs
	}
	if n := len(benchSigned(ids[0], 1)); n < 550 || n > 650 {
		b.Fatalf("signed receipt of %d bytes, want about 600", n)
	}
	b.SetParallelism(senders)
	b.ResetTimer()
	start := time.Now()
	if senders == 1 {
		for b.Loop() {
			if _, _, err := st.AddReceipts(ctx, batch(), at(time.Hour)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := st.AddReceipts(ctx, batch(), at(time.Hour)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(next.Load()*benchBatch)/time.Since(start).Seconds(), "receipts/s")
}

// benchSigned is a signed receipt as guest/receipt writes it: about 600
// bytes of JSON with an Ed25519 signature.
func benchSigned(worker string, seq uint64) []byte {
	b := make([]byte, 0, 640)
	b = append(b, `{"v":1,"worker":"`...)
	b = append(b, worker...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"model":"llama-3.1-8b","prompt_tokens":1234,"completion_tokens":567,`+
		`"start":"2026-11-01T12:00:00.000Z","end":"2026-11-01T12:00:01.250Z",`+
		`"request":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",`+
		`"client":"ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",`+
		`"price":150000000,"amount":270150,"sig":"`...)
	b = fmt.Appendf(b, "%064x%064x", seq, seq*31+7)
	b = append(b, `"}`...)
	return b
}
