package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/internal/pgtest"
)

// The suite: every case runs on every engine, each on a fresh, empty
// database.
var suite = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"Migrate", testMigrate},
	{"Reopen", testReopen},
	{"Constraints", testConstraints},
	{"Allowlist", testAllowlist},
	{"Prices", testPrices},
	{"Workers", testWorkers},
	{"Heartbeat", testHeartbeat},
	{"AddReceipts", testAddReceipts},
	{"ReceiptsAndUsage", testReceiptsAndUsage},
	{"ConcurrentReceipts", testConcurrentReceipts},
	{"PlanBatch", testPlanBatch},
	{"QueryIDWrap", testQueryIDWrap},
	{"Transitions", testTransitions},
	{"BatchLists", testBatchLists},
	{"Events", testEvents},
}

// engines give the DSN of a fresh database.
var engines = []struct {
	name string
	dsn  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "books.db") }},
	{"postgres", func(t *testing.T) string { return pgtest.Start(t) }},
}

func TestStore(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			for _, c := range suite {
				t.Run(c.name, func(t *testing.T) {
					h := newHarness(t, e.name, e.dsn)
					c.run(t, h)
					h.check()
				})
			}
		})
	}
}

// harness is one case's store and helpers.
type harness struct {
	t      *testing.T
	ctx    context.Context
	engine string
	dsn    string
	newDSN func(t *testing.T) string
	s      *sqlStore
}

func newHarness(t *testing.T, engine string, newDSN func(t *testing.T) string) *harness {
	h := &harness{t: t, ctx: context.Background(), engine: engine, dsn: newDSN(t), newDSN: newDSN}
	h.s = h.open()
	return h
}

// fresh is a harness on another new, empty database of the same engine,
// for a subtest that needs one of its own.
func (h *harness) fresh(t *testing.T) *harness { return newHarness(t, h.engine, h.newDSN) }

// open opens another Store on the case's database, closed at cleanup.
func (h *harness) open() *sqlStore {
	h.t.Helper()
	st, err := Open(h.ctx, h.dsn)
	if err != nil {
		h.t.Fatalf("Open(%s): %v", h.dsn, err)
	}
	h.t.Cleanup(func() { st.Close() })
	return st.(*sqlStore)
}

// t0 is the suite's clock: tests pass times, the store reads none.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// workerID is a realistic worker ID: hex SHA-256 of a 32-byte key.
func workerID(i int) (id, pub string) {
	key := sha256.Sum256([]byte(fmt.Sprintf("key %d", i)))
	sum := sha256.Sum256(key[:])
	return hex.EncodeToString(sum[:]), hex.EncodeToString(key[:])
}

func newWorker(i int) Worker {
	id, pub := workerID(i)
	return Worker{
		ID:          id,
		PublicKey:   pub,
		Payout:      fmt.Sprintf("UQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%03d", i),
		Endpoint:    fmt.Sprintf("10.0.0.%d:8443", i),
		Models:      []string{"llama-3.1-8b", "qwen2.5-7b"},
		Price:       150_000_000,
		Certificate: []byte{0x30, 0x82, 0x01, byte(i)},
		Evidence:    []byte(`{"tdx":{"mrtd":"ab"}}`),
		// Times with milliseconds: what the store keeps.
		RegisteredAt: at(time.Duration(i)*time.Minute + 123*time.Millisecond),
		CertExpires:  at(24 * time.Hour),
	}
}

// put registers workers 0..n-1 and returns their IDs.
func (h *harness) put(n int) []string {
	h.t.Helper()
	var ids []string
	for i := range n {
		w := newWorker(i)
		if err := h.s.PutWorker(h.ctx, w); err != nil {
			h.t.Fatal(err)
		}
		ids = append(ids, w.ID)
	}
	return ids
}

// signed is a receipt's signed JSON of about 600 bytes, as
// guest/receipt writes them; salt makes a different receipt for the same
// (worker, seq).
func signed(worker string, seq uint64, salt string) []byte {
	return []byte(fmt.Sprintf(`{"v":1,"worker":%q,"seq":%d,"model":"llama-3.1-8b","prompt_tokens":1234,`+
		`"completion_tokens":567,"start":"2026-11-01T12:00:00.000Z","end":"2026-11-01T12:00:01.250Z",`+
		`"request":"sha256:%x","client":"ed25519:%x","price":150000000,"salt":%q,`+
		`"sig":"%x%x"}`,
		worker, seq, sha256.Sum256([]byte(fmt.Sprint(seq))), sha256.Sum256([]byte(worker)), salt,
		sha256.Sum256([]byte(fmt.Sprint(worker, seq, salt))), sha256.Sum256([]byte(fmt.Sprint(seq, worker, salt)))))
}

func rcpt(worker string, seq, amount uint64) Receipt {
	return Receipt{
		Worker: worker, Seq: seq, Model: "llama-3.1-8b", Tokens: 1801, Amount: amount,
		End: at(time.Duration(seq%1_000_000) * time.Second), Signed: signed(worker, seq, ""),
	}
}

func (h *harness) add(rs []Receipt, now time.Time) (added, dup int) {
	h.t.Helper()
	added, dup, err := h.s.AddReceipts(h.ctx, rs, now)
	if err != nil {
		h.t.Fatalf("AddReceipts: %v", err)
	}
	h.check()
	return added, dup
}

func (h *harness) balance(w string) Balance {
	h.t.Helper()
	b, err := h.s.Balance(h.ctx, w)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// errIs: err is want, or both are nil.
func errIs(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}
