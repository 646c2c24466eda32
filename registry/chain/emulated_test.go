package chain

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// payBatch sends one batch and checks it to the nanoton: each recipient's
// balance grew by its amount, Outcome.Sent lists exactly the transfers,
// and the wallet's balance fell by sum(Sent) + Fees.
func payBatch(t *testing.T, e *Emulated, h *Highload, queryID uint32, createdAt time.Time, tr []Transfer) *Outcome {
	t.Helper()
	ctx := context.Background()
	boc, hash, err := h.Batch(queryID, createdAt, tr, false)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]uint64{}
	for _, x := range tr {
		before[x.To.StringRaw()] = balanceOf(t, e, x.To)
	}
	walletBefore := balanceOf(t, e, h.Address())
	if err := e.SendExternal(ctx, boc); err != nil {
		t.Fatalf("SendExternal: %v", err)
	}
	walletAfter := balanceOf(t, e, h.Address())
	o, err := e.Lookup(ctx, h.Address(), hash, createdAt)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !o.Success {
		t.Fatalf("Outcome.Success = false for a funded batch")
	}
	var sum uint64
	want := map[string]uint64{}
	for _, x := range tr {
		sum += x.Amount
		want[x.To.StringRaw()] += x.Amount
		// A recipient's own transaction takes the storage fee it owes
		// (zero for a new account) from what arrives.
		got, owed := balanceOf(t, e, x.To)-before[x.To.StringRaw()], lastTxFees(t, e, x.To)
		if before[x.To.StringRaw()] == 0 && owed != 0 {
			t.Fatalf("new recipient %s paid fees %d", x.To.StringRaw(), owed)
		}
		if got+owed != x.Amount {
			t.Fatalf("recipient %s got %d after fees %d, want %d", x.To.StringRaw(), got, owed, x.Amount)
		}
	}
	if len(o.Sent) != len(tr) {
		t.Fatalf("Outcome.Sent has %d transfers, want %d", len(o.Sent), len(tr))
	}
	for _, s := range o.Sent {
		want[s.To.StringRaw()] -= s.Amount
	}
	for a, v := range want {
		if v != 0 {
			t.Fatalf("Outcome.Sent to %s differs from the batch by %d", a, v)
		}
	}
	if drop := walletBefore - walletAfter; drop != sum+o.Fees {
		t.Fatalf("wallet balance fell %d, want sum %d + fees %d = %d (off by %d)",
			drop, sum, o.Fees, sum+o.Fees, int64(drop)-int64(sum+o.Fees))
	}
	if o.Fees == 0 || !o.At.Equal(e.clock().Truncate(time.Second)) || len(o.TxHash) != 32 || o.LT == 0 {
		t.Fatalf("Outcome = fees %d at %v (now %v), tx %x lt %d", o.Fees, o.At, e.clock(), o.TxHash, o.LT)
	}
	checkConservation(t, e)
	return o
}

func TestBatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
	}{
		{"one transfer", 1},
		{"two transfers", 2},
		{"200 transfers", 200},
		{"254 transfers, two internal_transfer packs", 254},
		{"600 transfers, three packs", 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(t0)
			e := newTestEmulated(t, "", clk)
			h := deployedWallet(t, e, clk)
			clk.Add(time.Minute)
			tr, _ := transfersTo(freshAddrs(tc.n, tc.name))
			o := payBatch(t, e, h, 2, clk.Now().Add(-30*time.Second), tr)
			t.Logf("%d transfers: fees %d nanoton, %d per transfer", tc.n, o.Fees, o.Fees/uint64(tc.n))
			// Recipients are new: uninit accounts now, holding the value.
			acc, err := e.Account(context.Background(), tr[0].To)
			if err != nil || !acc.Exists || acc.Active {
				t.Fatalf("recipient = %+v, %v; want existing uninit", acc, err)
			}
		})
	}
}

func TestPaySameRecipientsTwice(t *testing.T) {
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	tr, _ := transfersTo(freshAddrs(50, "twice"))
	payBatch(t, e, h, 2, clk.Now(), tr)
	clk.Add(time.Hour + time.Minute) // past the timeout: the wallet rotates its query sets
	payBatch(t, e, h, 3, clk.Now(), tr)
}

func TestReplayIsRejected(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	tr, _ := transfersTo(freshAddrs(3, "replay"))
	boc, hash, err := h.Batch(7, clk.Now(), tr, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SendExternal(ctx, boc); err != nil {
		t.Fatal(err)
	}
	first, err := e.Lookup(ctx, h.Address(), hash, t0)
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, e)
	for _, step := range []time.Duration{0, time.Second, 30 * time.Minute} {
		clk.Add(step)
		err := e.SendExternal(ctx, boc)
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "already_executed") {
			t.Fatalf("replay after %v: %v, want ErrRejected (already_executed)", step, err)
		}
		if diff := snap.diff(snapshot(t, e)); diff != "" {
			t.Fatalf("replay changed the ledger: %s", diff)
		}
	}
	// The same query id with other contents is a replay too.
	other, _, _ := h.Batch(7, clk.Now(), tr[:1], false)
	if err := e.SendExternal(ctx, other); !errors.Is(err, ErrRejected) {
		t.Fatalf("reused query id: %v, want ErrRejected", err)
	}
	again, err := e.Lookup(ctx, h.Address(), hash, t0)
	if err != nil || string(again.TxHash) != string(first.TxHash) {
		t.Fatalf("Lookup after replays = %v, %v; want the first transaction", again, err)
	}
}

func TestClockDrivesValidity(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	to := []Transfer{{To: freshAddrs(1, "clock")[0], Amount: tonNano}}
	T := t0.Add(time.Hour)

	// highload-wallet-v3.func: created_at > now - timeout and created_at <= now.
	a, _, _ := h.Batch(10, T, to, false)
	b, _, _ := h.Batch(11, T, to, false)
	for _, tc := range []struct {
		name   string
		now    time.Time
		msg    []byte
		accept bool
	}{
		{"created in the future", T.Add(-time.Second), a, false},
		{"last second of validity", T.Add(time.Hour - time.Second), a, true},
		{"expired at created_at + timeout", T.Add(time.Hour), b, false},
		{"long expired", T.Add(10 * time.Hour), b, false},
	} {
		clk.Set(tc.now)
		snap := snapshot(t, e)
		err := e.SendExternal(ctx, tc.msg)
		if tc.accept && err != nil {
			t.Fatalf("%s: %v, want accepted", tc.name, err)
		}
		if !tc.accept {
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "invalid_created_at") {
				t.Fatalf("%s: %v, want ErrRejected (invalid_created_at)", tc.name, err)
			}
			if diff := snap.diff(snapshot(t, e)); diff != "" {
				t.Fatalf("%s: rejected message changed the ledger: %s", tc.name, diff)
			}
		}
	}
	// Block time never goes back.
	clk.Set(T)
	if err := e.SendExternal(ctx, b); !errors.Is(err, ErrClock) {
		t.Fatalf("clock moved back: %v, want ErrClock", err)
	}
	if err := e.Fund(ctx, h.Address(), 1); !errors.Is(err, ErrClock) {
		t.Fatalf("Fund with clock moved back: %v, want ErrClock", err)
	}
}

func TestWrongKeyIsRejected(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	// Same subwallet and timeout, another key: sign, then aim the message
	// at our wallet (the address is not covered by the signature).
	thief, err := NewHighload(testKey(9), 0x10ad, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	boc, _, err := thief.Batch(5, clk.Now(), []Transfer{{To: freshAddrs(1, "thief")[0], Amount: 500 * tonNano}}, false)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cell.FromBOC(boc)
	var ext tlb.ExternalMessage
	if err := tlb.Parse(&ext, c); err != nil {
		t.Fatal(err)
	}
	ext.DstAddr = h.Address()
	forged, err := tlb.ToCell(&ext)
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, e)
	err = e.SendExternal(ctx, forged.ToBOC())
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "invalid_signature") {
		t.Fatalf("forged message: %v, want ErrRejected (invalid_signature)", err)
	}
	if diff := snap.diff(snapshot(t, e)); diff != "" {
		t.Fatalf("forged message changed the ledger: %s", diff)
	}
}

func TestRejectedMessages(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h, _ := NewHighload(testKey(3), 0x10ad, time.Hour)
	to := []Transfer{{To: freshAddrs(1, "rej")[0], Amount: tonNano}}
	noInit, _, _ := h.Batch(1, clk.Now(), to, false)
	withInit, _, _ := h.Batch(2, clk.Now(), to, true)
	internal, _ := tlb.ToCell(&tlb.InternalMessage{IHRDisabled: true, DstAddr: h.Address(), Amount: tlb.FromNanoTONU(1)})

	for _, tc := range []struct {
		name string
		fund uint64
		msg  []byte
		why  string
	}{
		{"not a BOC", 0, []byte("hello"), "not a BOC"},
		{"internal message", 0, internal.ToBOC(), "want external"},
		{"account does not exist", 0, withInit, "does not exist"},
		{"uninit account, no StateInit", 10 * tonNano, noInit, "no usable StateInit"},
	} {
		if tc.fund > 0 {
			if err := e.Fund(ctx, h.Address(), tc.fund); err != nil {
				t.Fatal(err)
			}
		}
		snap := snapshot(t, e)
		err := e.SendExternal(ctx, tc.msg)
		if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tc.why) {
			t.Fatalf("%s: %v, want ErrRejected (%s)", tc.name, err, tc.why)
		}
		if diff := snap.diff(snapshot(t, e)); diff != "" {
			t.Fatalf("%s: changed the ledger: %s", tc.name, diff)
		}
	}
	// Funded and sent with its StateInit, the same wallet deploys.
	if err := e.SendExternal(ctx, withInit); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	checkConservation(t, e)
}

func TestUnderfundedBatch(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h, _ := NewHighload(testKey(4), 0x10ad, time.Hour)
	if err := e.Fund(ctx, h.Address(), 3*tonNano); err != nil {
		t.Fatal(err)
	}
	deploy, _, _ := h.Batch(1, clk.Now(), []Transfer{{To: freshAddrs(1, "uf0")[0], Amount: tonNano / 10}}, true)
	if err := e.SendExternal(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		n    int
		each uint64
	}{
		{"one transfer beyond the balance", 1, 5 * tonNano},
		{"a batch beyond the balance", 5, tonNano},
	} {
		rcpt := freshAddrs(tc.n, tc.name)
		var tr []Transfer
		for _, a := range rcpt {
			tr = append(tr, Transfer{To: a, Amount: tc.each})
		}
		clk.Add(time.Second)
		boc, hash, _ := h.Batch(uint32(2+tc.n), clk.Now(), tr, false)
		before := balanceOf(t, e, h.Address())
		// The wallet accepts (and spends the query id), then its send is
		// skipped: IGNORE_ERRORS.
		if err := e.SendExternal(ctx, boc); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		o, err := e.Lookup(ctx, h.Address(), hash, t0)
		if err != nil {
			t.Fatal(err)
		}
		if o.Success || len(o.Sent) != 0 {
			t.Fatalf("%s: Outcome success %v, sent %v; want failure, nothing sent", tc.name, o.Success, o.Sent)
		}
		if drop := before - balanceOf(t, e, h.Address()); drop != o.Fees || drop == 0 {
			t.Fatalf("%s: wallet fell %d, want fees %d", tc.name, drop, o.Fees)
		}
		for _, a := range rcpt {
			if acc, _ := e.Account(ctx, a); acc.Exists {
				t.Fatalf("%s: recipient %s exists: %+v", tc.name, a.StringRaw(), acc)
			}
		}
	}
	checkConservation(t, e)
}

func TestLookupNotFound(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	boc, hash, _ := h.Batch(2, clk.Now(), []Transfer{{To: freshAddrs(1, "nf")[0], Amount: tonNano}}, false)
	for _, tc := range []struct {
		name string
		addr *address.Address
		hash []byte
	}{
		{"unknown hash", h.Address(), make([]byte, 32)},
		{"not sent yet", h.Address(), hash},
		{"other account", freshAddrs(1, "nf")[0], hash},
	} {
		if tc.name == "other account" {
			if err := e.SendExternal(ctx, boc); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Lookup(ctx, tc.addr, tc.hash, t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: %v, want ErrNotFound", tc.name, err)
		}
	}
	if _, err := e.Lookup(ctx, h.Address(), hash, t0); err != nil {
		t.Fatalf("sent message: %v", err)
	}
}

func TestNormalizedHashLookup(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	boc, hash, _ := h.Batch(2, clk.Now(), []Transfer{{To: freshAddrs(1, "norm")[0], Amount: tonNano}}, false)
	c, _ := cell.FromBOC(boc)
	var ext tlb.ExternalMessage
	if err := tlb.Parse(&ext, c); err != nil {
		t.Fatal(err)
	}
	if err := e.SendExternal(ctx, boc); err != nil {
		t.Fatal(err)
	}
	a, err := e.Lookup(ctx, h.Address(), hash, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Lookup(ctx, h.Address(), ext.NormalizedHash(), t0)
	if err != nil || string(a.TxHash) != string(b.TxHash) {
		t.Fatalf("Lookup by normalized hash = %v, %v; want %x", b, err, a.TxHash)
	}
}

func TestFundRejects(t *testing.T) {
	e := newTestEmulated(t, "", newClock(t0))
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"nil address":  func() error { return e.Fund(ctx, nil, 1) },
		"none address": func() error { return e.Fund(ctx, address.NewAddressNone(), 1) },
		"zero amount":  func() error { return e.Fund(ctx, freshAddrs(1, "f")[0], 0) },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: Fund succeeded", name)
		}
	}
	if _, err := NewEmulated(EmulatedOptions{}); err == nil {
		t.Error("NewEmulated without a clock succeeded")
	}
	if _, err := NewEmulated(EmulatedOptions{Path: t.TempDir() + "/no/such/dir/state", Now: newClock(t0).Now}); err == nil {
		t.Error("NewEmulated with a state file in a missing directory succeeded")
	}
}

func TestFundAccumulates(t *testing.T) {
	ctx := context.Background()
	e := newTestEmulated(t, "", newClock(t0))
	a := freshAddrs(1, "acc")[0]
	if acc, err := e.Account(ctx, a); err != nil || acc != (Account{}) {
		t.Fatalf("new account = %+v, %v; want zero", acc, err)
	}
	for _, n := range []uint64{1, 2 * tonNano, 3} {
		if err := e.Fund(ctx, a, n); err != nil {
			t.Fatal(err)
		}
	}
	if acc, _ := e.Account(ctx, a); acc != (Account{Exists: true, Balance: 2*tonNano + 4}) {
		t.Fatalf("account = %+v, want uninit with 2000000004", acc)
	}
	checkConservation(t, e)
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, t.TempDir()+"/state", clk)
	h := deployedWallet(t, e, clk)
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		go func(i int) {
			boc, hash, err := h.Batch(uint32(100+i), clk.Now(), []Transfer{{To: freshAddrs(8, "conc")[i], Amount: tonNano}}, false)
			if err == nil {
				err = e.SendExternal(ctx, boc)
			}
			if err == nil {
				_, err = e.Lookup(ctx, h.Address(), hash, t0)
			}
			errs <- err
		}(i)
		go func() {
			_, err := e.Account(ctx, h.Address())
			errs <- err
		}()
	}
	for i := 0; i < 16; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	checkConservation(t, e)
}

// TestContractAgreesWithValidateBatch sends what Batch refuses to build
// and shows the contract refuses it too (or could not pay it).
func TestContractAgreesWithValidateBatch(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	to := []Transfer{{To: freshAddrs(1, "agree")[0], Amount: tonNano}}
	// QueryId bit_number < 1023 (scheme.tlb): 1023 overflows the bitmap
	// cell before accept_message.
	boc, _, err := h.build(1023, clk.Now(), to, false)
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, e)
	if err := e.SendExternal(ctx, boc); !errors.Is(err, ErrRejected) {
		t.Fatalf("bit_number 1023: %v, want ErrRejected", err)
	}
	if diff := snap.diff(snapshot(t, e)); diff != "" {
		t.Fatalf("bit_number 1023 changed the ledger: %s", diff)
	}
	// 1022 is the last valid bit_number.
	if boc, _, err = h.Batch(1022, clk.Now(), to, false); err != nil {
		t.Fatal(err)
	}
	if err := e.SendExternal(ctx, boc); err != nil {
		t.Fatalf("bit_number 1022: %v", err)
	}
}
