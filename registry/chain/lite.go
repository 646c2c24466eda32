package chain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/liteclient"
	"github.com/xssnick/tonutils-go/tl"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Lite is Chain on the real network: lite servers from a TON global config
// file, through tonutils-go (proof checks: ProofCheckPolicyFast, trusted
// block from the config's init block; requests retried on another server).
//
// What is tested here is only what works offline (a bad config file is a
// clear error); the network paths are thin calls into tonutils-go and the
// trace accounting Emulated shares (traceOutcome). SendExternal maps a lite
// server's "not accepted" answer to ErrRejected by its error text, which is
// best effort: any other failure may or may not have reached validators,
// so callers find out with Lookup before building a new message.
type Lite struct {
	pool *liteclient.ConnectionPool
	api  ton.APIClientWrapped
}

var _ Chain = (*Lite)(nil)

// liteScanBatch is how many transactions one liteServer.getTransactions
// asks for (servers cap it at 16).
const liteScanBatch = 16

// NewLite reads the global config (e.g. https://ton.org/global.config.json
// saved to a file) and connects to at least one of its lite servers.
func NewLite(ctx context.Context, globalConfigPath string) (*Lite, error) {
	cfg, err := liteclient.GetConfigFromFile(globalConfigPath)
	if err != nil {
		return nil, fmt.Errorf("chain: lite: global config %s: %w", globalConfigPath, err)
	}
	if len(cfg.Liteservers) == 0 {
		return nil, fmt.Errorf("chain: lite: global config %s lists no liteservers", globalConfigPath)
	}
	pool := liteclient.NewConnectionPool()
	if err := pool.AddConnectionsFromConfig(ctx, cfg); err != nil {
		pool.Stop()
		return nil, fmt.Errorf("chain: lite: connect to %d liteservers: %w", len(cfg.Liteservers), err)
	}
	client := ton.NewAPIClient(pool, ton.ProofCheckPolicyFast)
	client.SetTrustedBlockFromConfig(cfg)
	return &Lite{pool: pool, api: client.WithRetry()}, nil
}

// Close drops the connections.
func (l *Lite) Close() { l.pool.Stop() }

// Now is the generation time of the last masterchain block.
func (l *Lite) Now(ctx context.Context) (time.Time, error) {
	master, err := l.api.CurrentMasterchainInfo(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("chain: lite: masterchain info: %w", err)
	}
	h, err := l.api.GetBlockHeader(ctx, master)
	if err != nil {
		return time.Time{}, fmt.Errorf("chain: lite: block header %d: %w", master.SeqNo, err)
	}
	return time.Unix(int64(h.GenUtime), 0).UTC(), nil
}

// SendExternal hands the BOC to a lite server as it is: re-encoding it
// could change the message's cell hash, which Lookup needs.
func (l *Lite) SendExternal(ctx context.Context, boc []byte) error {
	c, err := cell.FromBOC(boc)
	if err != nil {
		return fmt.Errorf("%w: not a BOC: %v", ErrRejected, err)
	}
	var m tlb.Message
	if err := tlb.Parse(&m, c); err != nil || m.MsgType != tlb.MsgTypeExternalIn {
		return fmt.Errorf("%w: not an external in message (%v)", ErrRejected, err)
	}
	var resp tl.Serializable
	if err := l.api.Client().QueryLiteserver(ctx, ton.SendMessage{Body: boc}, &resp); err != nil {
		return fmt.Errorf("chain: lite: send message: %w", err)
	}
	switch r := resp.(type) {
	case ton.SendMessageStatus:
		if r.Status != 1 {
			return fmt.Errorf("chain: lite: send message: status %d", r.Status)
		}
		return nil
	case ton.LSError:
		if strings.Contains(r.Text, "not accepted") || strings.Contains(r.Text, "cannot apply external message") {
			return fmt.Errorf("%w: lite server: %s (code %d)", ErrRejected, r.Text, r.Code)
		}
		return fmt.Errorf("chain: lite: send message: %s (code %d)", r.Text, r.Code)
	}
	return fmt.Errorf("chain: lite: send message: unexpected answer %T", resp)
}

// Lookup walks the account's transactions from the newest back until one
// is older than since. The transactions newer than the match are kept only
// while they could be part of its trace (internal, from the account).
func (l *Lite) Lookup(ctx context.Context, addr *address.Address, msgHash []byte, since time.Time) (*Outcome, error) {
	master, err := l.api.CurrentMasterchainInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("chain: lite: masterchain info: %w", err)
	}
	acc, err := l.api.WaitForBlock(master.SeqNo).GetAccount(ctx, master, addr)
	if err != nil {
		return nil, fmt.Errorf("chain: lite: account %s: %w", addr.StringRaw(), err)
	}
	if !acc.IsActive {
		return nil, fmt.Errorf("%w: account %s does not exist", ErrNotFound, addr.StringRaw())
	}
	var newer []*tlb.Transaction // newest first
	for lt, hash := acc.LastTxLT, acc.LastTxHash; lt != 0; {
		list, err := l.api.ListTransactions(ctx, addr, liteScanBatch, lt, hash)
		if errors.Is(err, ton.ErrNoTransactionsWereFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("chain: lite: transactions of %s before lt %d: %w", addr.StringRaw(), lt, err)
		}
		for i := len(list) - 1; i >= 0; i-- { // list is oldest first
			tx := list[i]
			if int64(tx.Now) < since.Unix() {
				return nil, fmt.Errorf("%w: message %x on %s since %v", ErrNotFound, msgHash, addr.StringRaw(), since)
			}
			if inMessageMatches(tx, msgHash) {
				later := make([]*tlb.Transaction, len(newer))
				for j, t := range newer {
					later[len(newer)-1-j] = t
				}
				return traceOutcome(addr, tx, later)
			}
			if in := tx.IO.In; in != nil && in.MsgType == tlb.MsgTypeInternal && sameAccount(in.AsInternal().SrcAddr, addr) {
				newer = append(newer, tx)
			}
		}
		lt, hash = list[0].PrevTxLT, list[0].PrevTxHash
	}
	return nil, fmt.Errorf("%w: message %x on %s", ErrNotFound, msgHash, addr.StringRaw())
}

// Account reads the account at the last masterchain block.
func (l *Lite) Account(ctx context.Context, addr *address.Address) (Account, error) {
	master, err := l.api.CurrentMasterchainInfo(ctx)
	if err != nil {
		return Account{}, fmt.Errorf("chain: lite: masterchain info: %w", err)
	}
	acc, err := l.api.WaitForBlock(master.SeqNo).GetAccount(ctx, master, addr)
	if err != nil {
		return Account{}, fmt.Errorf("chain: lite: account %s: %w", addr.StringRaw(), err)
	}
	if !acc.IsActive || acc.State == nil || !acc.State.IsValid {
		return Account{}, nil
	}
	bal := acc.State.Balance.Nano()
	if !bal.IsUint64() {
		return Account{}, fmt.Errorf("chain: lite: account %s: balance %s overflows uint64", addr.StringRaw(), bal)
	}
	return Account{Exists: true, Active: acc.State.Status == tlb.AccountStatusActive, Balance: bal.Uint64()}, nil
}
