package chain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// TestNewLiteBadConfig covers what works offline: a config file that
// cannot lead to a lite server fails at once, saying why.
func TestNewLiteBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "nope.json"), "no such file"},
		{"not JSON", write("bad.json", "{liteservers: ["), "global config"},
		{"no liteservers", write("empty.json", `{"liteservers": [], "validator": {}}`), "lists no liteservers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			l, err := NewLite(ctx, tc.path)
			if err == nil {
				l.Close()
				t.Fatal("NewLite succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("NewLite = %v; want it to name %s and say %q", err, tc.path, tc.want)
			}
		})
	}
}

// ledgerAPI serves the lite-server calls Lite makes from an Emulated
// ledger's real transactions; any other call panics (nil interface).
type ledgerAPI struct {
	ton.APIClientWrapped
	e    *Emulated
	hide int // newest transactions of every account to leave out (not yet on chain)
}

func (f *ledgerAPI) CurrentMasterchainInfo(context.Context) (*ton.BlockIDExt, error) {
	return &ton.BlockIDExt{Workchain: -1, SeqNo: 1}, nil
}

func (f *ledgerAPI) WaitForBlock(uint32) ton.APIClientWrapped { return f }

func (f *ledgerAPI) visible(a *address.Address) []*txRecord {
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	var out []*txRecord
	for _, i := range f.e.st.byAcct[keyOf(a)] {
		out = append(out, f.e.st.txs[i])
	}
	return out[:max(0, len(out)-f.hide)]
}

func (f *ledgerAPI) GetAccount(_ context.Context, _ *ton.BlockIDExt, a *address.Address) (*tlb.Account, error) {
	txs := f.visible(a)
	if len(txs) == 0 {
		return &tlb.Account{}, nil
	}
	last := txs[len(txs)-1].tx
	return &tlb.Account{IsActive: true, LastTxLT: last.LT, LastTxHash: last.Hash}, nil
}

// ListTransactions behaves like liteServer.getTransactions: up to limit
// transactions ending at (lt, hash), oldest first, freshly parsed.
func (f *ledgerAPI) ListTransactions(_ context.Context, a *address.Address, limit uint32, lt uint64, hash []byte) ([]*tlb.Transaction, error) {
	txs := f.visible(a)
	end := -1
	for i, r := range txs {
		if r.tx.LT == lt {
			if !bytes.Equal(r.tx.Hash, hash) {
				return nil, fmt.Errorf("tx at lt %d has hash %x, asked %x", lt, r.tx.Hash, hash)
			}
			end = i
		}
	}
	if end < 0 {
		return nil, ton.ErrNoTransactionsWereFound
	}
	var out []*tlb.Transaction
	for _, r := range txs[max(0, end+1-int(limit)) : end+1] {
		c, err := cell.FromBOC(r.boc)
		if err != nil {
			return nil, err
		}
		var tx tlb.Transaction
		if err := tlb.Parse(&tx, c); err != nil {
			return nil, err
		}
		tx.Hash = c.Hash()
		out = append(out, &tx)
	}
	return out, nil
}

// TestLiteLookupOnLedger runs Lite.Lookup's backward scan over real
// transactions: it must agree with Emulated.Lookup, page through more than
// one getTransactions answer, stop at since, and see an unfinished trace.
func TestLiteLookupOnLedger(t *testing.T) {
	ctx := context.Background()
	clk := newClock(t0)
	e := newTestEmulated(t, "", clk)
	h := deployedWallet(t, e, clk)
	clk.Add(time.Minute)
	tr, _ := transfersTo(freshAddrs(600, "lite"))
	boc, hash, err := h.Batch(2, clk.Now(), tr, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SendExternal(ctx, boc); err != nil {
		t.Fatal(err)
	}
	sentAt := clk.Now()
	// Twenty more transactions on the wallet after it.
	for i := 0; i < 20; i++ {
		clk.Add(time.Second)
		b, _, _ := h.Batch(uint32(3+i), clk.Now(), []Transfer{{To: tr[i].To, Amount: 1}}, false)
		if err := e.SendExternal(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	want, err := e.Lookup(ctx, h.Address(), hash, sentAt)
	if err != nil {
		t.Fatal(err)
	}
	l := &Lite{api: &ledgerAPI{e: e}}
	got, err := l.Lookup(ctx, h.Address(), hash, sentAt)
	if err != nil {
		t.Fatalf("Lite.Lookup: %v", err)
	}
	if !bytes.Equal(got.TxHash, want.TxHash) || got.Fees != want.Fees || got.Success != want.Success || len(got.Sent) != len(want.Sent) || !got.At.Equal(want.At) {
		t.Fatalf("Lite.Lookup = %+v, want %+v", got, want)
	}
	if _, err := l.Lookup(ctx, h.Address(), hash, sentAt.Add(time.Second)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("since after the message: %v, want ErrNotFound", err)
	}
	if _, err := l.Lookup(ctx, h.Address(), make([]byte, 32), t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown message: %v, want ErrNotFound", err)
	}

	// The last pack of the batch not executed yet: the trace is pending.
	e2 := newTestEmulated(t, "", newClock(t0))
	h2 := deployedWallet(t, e2, newClock(t0))
	boc, hash, _ = h2.Batch(2, t0, tr, false)
	if err := e2.SendExternal(ctx, boc); err != nil {
		t.Fatal(err)
	}
	pending := &Lite{api: &ledgerAPI{e: e2, hide: 1}}
	if _, err := pending.Lookup(ctx, h2.Address(), hash, t0); !errors.Is(err, ErrPending) {
		t.Fatalf("half-executed trace: %v, want ErrPending", err)
	}
}
