package payout_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-appliance/cocoon/registry/chain"
	"github.com/cocoon-appliance/cocoon/registry/payout"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

const ton = 1_000_000_000

// clock is the tests' shared clock for the chain and the registry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a registry's payout side on an emulated ledger.
type env struct {
	st     store.Store
	ledger *chain.Emulated
	wallet *chain.Highload
	eng    *payout.Engine
	now    func() time.Time
}

func walletKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(sha256.New().Sum([]byte("payout test hot wallet"))[:32])
}

const timeout = 10 * time.Minute

// open opens (or reopens) the books and the ledger in dir.
func open(t testing.TB, dir string, now func() time.Time) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ledger, err := chain.NewEmulated(chain.EmulatedOptions{Path: filepath.Join(dir, "ledger.json"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	w, err := chain.NewHighload(walletKey(), 0, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, ledger: ledger, wallet: w, now: now, eng: &payout.Engine{
		Store: st, Chain: ledger, Wallet: w, Timeout: timeout, Margin: time.Minute,
		MinPayout: 1, Max: payout.DefaultMax, Now: now,
	}}
}

// workerAddr is worker i's fresh payout address.
func workerAddr(i int) *address.Address {
	h := sha256.Sum256(fmt.Appendf(nil, "worker %d payout", i))
	return address.NewAddress(0, 0, h[:])
}

func workerID(i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "worker %d key", i))
	return fmt.Sprintf("%x", h)
}

// addWorkers registers n workers.
func (e *env) addWorkers(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		err := e.st.PutWorker(context.Background(), store.Worker{
			ID: workerID(i), PublicKey: workerID(i), Payout: workerAddr(i).String(), Endpoint: "127.0.0.1:1",
			Models: []string{"tiny"}, Price: 1, Certificate: []byte{1}, Evidence: []byte(`{}`),
			RegisteredAt: e.now(), CertExpires: e.now().Add(time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// credit gives worker i a receipt (seq) worth amount(i, seq).
func (e *env) credit(t testing.TB, workers int, seq uint64) {
	t.Helper()
	rs := make([]store.Receipt, workers)
	for i := range workers {
		rs[i] = store.Receipt{Worker: workerID(i), Seq: seq, Model: "tiny", Tokens: 100,
			Amount: amount(i, seq), End: e.now(), Signed: fmt.Appendf(nil, `{"w":%d,"seq":%d}`, i, seq)}
	}
	if _, _, err := e.st.AddReceipts(context.Background(), rs, e.now()); err != nil {
		t.Fatal(err)
	}
}

// amount varies per worker and receipt, down to single nanotons.
func amount(i int, seq uint64) uint64 {
	return 10_000_000 + uint64(i)*1_000_003 + seq*7
}

func (e *env) balance(t testing.TB, a *address.Address) uint64 {
	t.Helper()
	acc, err := e.ledger.Account(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return acc.Balance
}

// check proves, from the ledger's balances, that every worker got exactly
// what it earned and that the hot wallet paid exactly amounts + recorded fees.
func (e *env) check(t testing.TB, workers int, funded uint64) {
	t.Helper()
	ctx := context.Background()
	open, err := e.st.OpenBatches(ctx)
	if err != nil || len(open) != 0 {
		t.Fatalf("open batches %v %v", open, err)
	}
	var paid, fees uint64
	for i := range workers {
		b, err := e.st.Balance(ctx, workerID(i))
		if err != nil {
			t.Fatal(err)
		}
		if b.Unpaid != 0 || b.InFlight != 0 || b.Paid != b.Earned {
			t.Errorf("worker %d books %+v: want everything paid", i, b)
		}
		// A recipient that already exists pays its accrued storage fee
		// out of the next transfer (mainnet rules): balance + the fees
		// of its own transactions is what it was sent.
		got, fee := e.balance(t, workerAddr(i)), e.ledger.FeesPaid(workerAddr(i))
		if got+fee != b.Earned {
			t.Errorf("worker %d ledger balance %d + its storage fees %d = %d, earned %d", i, got, fee, got+fee, b.Earned)
		}
		paid += b.Paid
	}
	bs, err := e.st.Batches(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.State == store.Confirmed {
			fees += b.Fees
		}
	}
	if got, want := e.balance(t, e.wallet.Address()), funded-paid-fees; got != want {
		t.Errorf("hot wallet %d nanoton, want funded %d - paid %d - fees %d = %d (off by %d)", got, funded, paid, fees, want, int64(got)-int64(want))
	}
	t.Logf("%d workers paid %d nanoton in %d batches, fees %d nanoton (%d per transfer)", workers, paid, len(bs), fees, fees/uint64(max(1, workers)))
}

func TestPayoutExactToTheNanoton(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	e := open(t, t.TempDir(), c.Now)
	const workers, funded = 200, 10_000 * ton
	e.addWorkers(t, workers)
	e.credit(t, workers, 1)
	e.credit(t, workers, 2)
	if err := e.ledger.Fund(context.Background(), e.wallet.Address(), funded); err != nil {
		t.Fatal(err)
	}
	rep, err := e.eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Confirmed != 1 || rep.Planned != 1 || len(rep.Pending) != 0 {
		t.Fatalf("report %+v: want one batch of 200 confirmed", rep)
	}
	e.check(t, workers, funded)

	// New earnings are paid in the next run; old ones are not paid again.
	c.Add(time.Minute)
	e.credit(t, 3, 3)
	rep, err = e.eng.Run(context.Background())
	if err != nil || rep.Confirmed != 1 {
		t.Fatalf("second run %+v %v", rep, err)
	}
	e.check(t, workers, funded)
	rep, err = e.eng.Run(context.Background())
	if err != nil || rep.Planned != 0 || rep.Paid != 0 {
		t.Fatalf("idle run %+v %v: nothing is due", rep, err)
	}
}

// TestResume stops a batch after each step, as a crash would, and checks
// that a fresh engine finishes it exactly once.
func TestResume(t *testing.T) {
	steps := []struct {
		name string
		stop func(t *testing.T, e *env, b *store.Batch)
	}{
		{"planned", func(t *testing.T, e *env, b *store.Batch) {}},
		{"signed", func(t *testing.T, e *env, b *store.Batch) { sign(t, e, b) }},
		{"marked sent, not sent", func(t *testing.T, e *env, b *store.Batch) {
			sign(t, e, b)
			must(t, e.st.MarkSent(context.Background(), b.ID, e.now()))
		}},
		{"sent, not confirmed", func(t *testing.T, e *env, b *store.Batch) {
			msg := sign(t, e, b)
			must(t, e.st.MarkSent(context.Background(), b.ID, e.now()))
			must(t, e.ledger.SendExternal(context.Background(), msg))
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
			dir := t.TempDir()
			e := open(t, dir, c.Now)
			const workers, funded = 5, 100 * ton
			e.addWorkers(t, workers)
			e.credit(t, workers, 1)
			must(t, e.ledger.Fund(context.Background(), e.wallet.Address(), funded))
			b, err := e.st.PlanBatch(context.Background(), store.PlanParams{Now: c.Now(), CreatedAt: c.Now(), MinPayout: 1, Max: 200})
			if err != nil || b == nil {
				t.Fatalf("plan: %v %v", b, err)
			}
			s.stop(t, e, b)
			c.Add(30 * time.Second)
			e2 := open(t, dir, c.Now) // the restarted registry
			rep, err := e2.eng.Run(context.Background())
			if err != nil || rep.Confirmed != 1 || rep.Planned != 0 {
				t.Fatalf("resume: %+v %v", rep, err)
			}
			e2.check(t, workers, funded)
		})
	}
}

func sign(t *testing.T, e *env, b *store.Batch) []byte {
	t.Helper()
	tr := make([]chain.Transfer, len(b.Items))
	for i, it := range b.Items {
		a, err := address.ParseAddr(it.Address)
		must(t, err)
		tr[i] = chain.Transfer{To: a, Amount: it.Amount}
	}
	boc, h, err := e.wallet.Batch(b.QueryID, b.CreatedAt, tr, true)
	must(t, err)
	must(t, e.st.SignBatch(context.Background(), b.ID, boc, fmt.Sprintf("%x", h), e.now()))
	return boc
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestExpiredIsPlannedAgain: a signed batch that was never sent expires
// after its timeout and its transfers go out once, in a new batch.
func TestExpiredIsPlannedAgain(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	e := open(t, t.TempDir(), c.Now)
	const workers, funded = 3, 100 * ton
	e.addWorkers(t, workers)
	e.credit(t, workers, 1)
	must(t, e.ledger.Fund(context.Background(), e.wallet.Address(), funded))
	b, err := e.st.PlanBatch(context.Background(), store.PlanParams{Now: c.Now(), CreatedAt: c.Now(), MinPayout: 1, Max: 200})
	must(t, err)
	old := sign(t, e, b)
	c.Add(timeout + 2*time.Minute)
	rep, err := e.eng.Run(context.Background())
	if err != nil || rep.Expired != 1 || rep.Confirmed != 1 {
		t.Fatalf("run %+v %v: want the old batch expired and a new one confirmed", rep, err)
	}
	// The expired message can never execute now.
	if err := e.ledger.SendExternal(context.Background(), old); !errors.Is(err, chain.ErrRejected) {
		t.Fatalf("expired message sent: %v, want ErrRejected", err)
	}
	e.check(t, workers, funded)
}

// TestUnderfunded: a batch the wallet cannot cover waits, reported, and is
// paid once the wallet is topped up.
func TestUnderfunded(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	e := open(t, t.TempDir(), c.Now)
	const workers = 4
	e.addWorkers(t, workers)
	e.credit(t, workers, 1)
	must(t, e.ledger.Fund(context.Background(), e.wallet.Address(), 10_000_000))
	rep, err := e.eng.Run(context.Background())
	if err != nil || len(rep.Pending) != 1 || rep.Confirmed != 0 || len(rep.Errors) != 1 {
		t.Fatalf("run %+v %v: want one pending batch and an underfunded error", rep, err)
	}
	evs, _ := e.st.Events(context.Background(), 10)
	if len(evs) == 0 || evs[0].Level != "error" {
		t.Fatalf("events %+v: want the underfunded error for the dashboard", evs)
	}
	must(t, e.ledger.Fund(context.Background(), e.wallet.Address(), 50*ton))
	c.Add(time.Minute)
	rep, err = e.eng.Run(context.Background())
	if err != nil || rep.Confirmed != 1 {
		t.Fatalf("after top-up %+v %v", rep, err)
	}
	e.check(t, workers, 50*ton+10_000_000)
}
