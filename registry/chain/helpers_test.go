package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
)

// t0 is near the embedded config's date, so its storage prices apply.
var t0 = time.Unix(1778780552, 0).UTC()

// testClock is the injected chain clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// freshAddrs are basechain addresses nobody has used.
func freshAddrs(n int, tag string) []*address.Address {
	out := make([]*address.Address, n)
	for i := range out {
		h := sha256.Sum256(binary.BigEndian.AppendUint32([]byte(tag), uint32(i)))
		out[i] = address.NewAddress(0, 0, h[:])
	}
	return out
}

// transfersTo pays 0.01 TON + i*1000 nanoton to the i-th address: every
// amount differs, so a mixed-up recipient shows.
func transfersTo(addrs []*address.Address) ([]Transfer, uint64) {
	var sum uint64
	out := make([]Transfer, len(addrs))
	for i, a := range addrs {
		out[i] = Transfer{To: a, Amount: 10_000_000 + uint64(i)*1000}
		sum += out[i].Amount
	}
	return out, sum
}

func newTestEmulated(t testing.TB, path string, clk *testClock) *Emulated {
	t.Helper()
	e, err := NewEmulated(EmulatedOptions{Path: path, Now: clk.Now})
	if err != nil {
		t.Fatalf("NewEmulated: %v", err)
	}
	return e
}

func balanceOf(t testing.TB, c Chain, a *address.Address) uint64 {
	t.Helper()
	acc, err := c.Account(context.Background(), a)
	if err != nil {
		t.Fatalf("Account(%s): %v", a.StringRaw(), err)
	}
	return acc.Balance
}

const tonNano = 1_000_000_000

// deployedWallet funds a highload wallet with 1000 TON and deploys it with
// a first batch of one transfer (init=true), query id 1.
func deployedWallet(t testing.TB, e *Emulated, clk *testClock) *Highload {
	t.Helper()
	ctx := context.Background()
	h, err := NewHighload(testKey(1), 0x10ad, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Fund(ctx, h.Address(), 1000*tonNano); err != nil {
		t.Fatalf("Fund: %v", err)
	}
	acc, err := e.Account(ctx, h.Address())
	if err != nil || !acc.Exists || acc.Active || acc.Balance != 1000*tonNano {
		t.Fatalf("funded wallet = %+v, %v; want existing uninit with 1000 TON", acc, err)
	}
	boc, _, err := h.Batch(1, clk.Now().Add(-time.Second), []Transfer{{To: freshAddrs(1, "deploy")[0], Amount: tonNano}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SendExternal(ctx, boc); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if acc, _ := e.Account(ctx, h.Address()); !acc.Active {
		t.Fatalf("wallet after deploy = %+v, want active", acc)
	}
	return h
}

// checkConservation audits the whole ledger: every nanoton minted is on an
// account, was taken as a transaction fee, or left in a message as the part
// of its forward fee still carried (collected by validators on import):
//
//	minted = sum(balances) + sum(total_fees) + sum(fwd_fee of internal messages)
func checkConservation(t testing.TB, e *Emulated) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	minted, fees, fwd, balances := new(big.Int), new(big.Int), new(big.Int), new(big.Int)
	for _, r := range e.st.txs {
		tx := r.tx
		fees.Add(fees, tx.TotalFees.Coins.Nano())
		if in := tx.IO.In; in != nil && in.MsgType == tlb.MsgTypeInternal && sameAccount(in.AsInternal().SrcAddr, e.minter) {
			minted.Add(minted, in.AsInternal().Amount.Nano())
		}
		if tx.IO.Out == nil {
			continue
		}
		msgs, err := tx.IO.Out.ToSlice()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.MsgType == tlb.MsgTypeInternal {
				fwd.Add(fwd, m.AsInternal().FwdFee.Nano())
			}
		}
	}
	for k, a := range e.st.accounts {
		acc, err := accountFromShard(a.shard)
		if err != nil {
			t.Fatalf("%s: %v", k.address().StringRaw(), err)
		}
		balances.Add(balances, new(big.Int).SetUint64(acc.Balance))
	}
	got := new(big.Int).Add(balances, fees)
	got.Add(got, fwd)
	if got.Cmp(minted) != 0 {
		t.Fatalf("conservation: balances %s + fees %s + carried fwd fees %s = %s, minted %s (off by %s)",
			balances, fees, fwd, got, minted, new(big.Int).Sub(got, minted))
	}
}

// ledgerSnapshot is the ledger's state file: equal snapshots, equal ledgers.
type ledgerSnapshot []byte

func snapshot(t testing.TB, e *Emulated) ledgerSnapshot {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	return encodeState(e.st)
}

func (s ledgerSnapshot) diff(o ledgerSnapshot) string {
	if bytes.Equal(s, o) {
		return ""
	}
	return fmt.Sprintf("state %d bytes -> %d bytes", len(s), len(o))
}

// lastTxFees is total_fees of the account's last transaction.
func lastTxFees(t testing.TB, e *Emulated, a *address.Address) uint64 {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	idx := e.st.byAcct[keyOf(a)]
	if len(idx) == 0 {
		t.Fatalf("%s has no transactions", a.StringRaw())
	}
	return e.st.txs[idx[len(idx)-1]].tx.TotalFees.Coins.Nano().Uint64()
}
