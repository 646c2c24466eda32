// Package payout pays workers their earnings in TON, in batches from a
// highload-v3 hot wallet, exactly once, across crashes.
//
// A batch goes through the states of store.BatchState, and every step is
// recorded in the store before the next one acts on the chain:
//
//	planned    store.PlanBatch chose the items, moved their amounts out of
//	           unpaid and allocated a query id; created_at is fixed (chain time)
//	signed     the external message (query id, created_at, transfers) is built,
//	           signed and stored; nothing has left the registry yet
//	sent       MarkSent is recorded, then the message is handed to the chain;
//	           after a crash it is handed over again, byte for byte the same
//	confirmed  the wallet's transaction that took the message is found on the
//	           chain: the items are paid and its fees recorded
//	expired    the message's validity (created_at + the wallet's timeout, plus
//	           a margin) has passed and no transaction took it: it can never
//	           execute, so the items go back to unpaid and are planned again
//	           under a new query id
//
// Why this pays exactly once: the highload wallet v3 contract accepts a
// query id once within its timeout and refuses messages older than the
// timeout (highload-wallet-contract-v3, README "Replay protection"), so the
// one stored message can execute at most once however often it is sent; and a
// batch is declared expired only when the chain shows no transaction for it
// after it can no longer execute. A crash at any point leaves the batch in a
// state from which Run resumes: planned (sign it), signed or sent (look it up,
// send it again, or expire it).
package payout

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-appliance/cocoon/registry/chain"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// Defaults.
const (
	DefaultMax    = 200
	DefaultMargin = time.Minute
	// FeeReserve is what the wallet must hold per transfer on top of the
	// amounts before a batch is sent (forward and action fees of one
	// transfer are about 0.0004 TON on today's mainnet config; this leaves room).
	FeeReserve uint64 = 5_000_000 // 0.005 TON
)

// ErrUnderfunded: the hot wallet cannot cover a batch; it stays signed and
// is sent once the wallet is topped up (or expires and is planned again).
var ErrUnderfunded = errors.New("payout: hot wallet underfunded")

// Wallet is the hot wallet (chain.Highload).
type Wallet interface {
	Address() *address.Address
	Batch(queryID uint32, createdAt time.Time, transfers []chain.Transfer, init bool) (boc, msgHash []byte, err error)
}

// Engine plans, signs, sends and confirms payout batches.
type Engine struct {
	Store  store.Store
	Chain  chain.Chain
	Wallet Wallet
	// Timeout is the wallet contract's timeout (the message's validity).
	Timeout time.Duration
	// Margin is waited past created_at + Timeout before a batch that no
	// transaction took is declared expired (0: DefaultMargin).
	Margin time.Duration
	// MinPayout and Every are the defaults for workers without their own.
	MinPayout uint64
	Every     time.Duration
	// Max is the most transfers per batch (0: DefaultMax).
	Max int
	Now func() time.Time // the registry's clock (store timestamps)
	Log *slog.Logger
}

// Report says what one Run did.
type Report struct {
	Planned   int      `json:"planned"`
	Sent      int      `json:"sent"`
	Confirmed int      `json:"confirmed"`
	Expired   int      `json:"expired"`
	Paid      uint64   `json:"paid_nanoton"`
	Fees      uint64   `json:"fees_nanoton"`
	Pending   []int64  `json:"pending,omitempty"` // batches still open after this run
	Errors    []string `json:"errors,omitempty"`
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// Run resumes every open batch, then plans and sends new batches until
// nothing is due (at most 100 per run, so one run stays bounded). It
// returns the first store or chain error that stopped it; a batch that
// only has to wait (not yet confirmed, wallet underfunded) is not an error
// but is listed in Report.Pending.
func (e *Engine) Run(ctx context.Context) (*Report, error) {
	rep := &Report{}
	open, err := e.Store.OpenBatches(ctx)
	if err != nil {
		return rep, err
	}
	for i := range open {
		if err := e.advance(ctx, &open[i], rep); err != nil {
			return rep, err
		}
	}
	for range 100 {
		if len(rep.Pending) > 0 {
			// An open batch holds the wallet (underfunded, or waiting
			// for its transaction): planning more would only queue
			// behind it.
			break
		}
		now, err := e.Chain.Now(ctx)
		if err != nil {
			return rep, fmt.Errorf("payout: chain time: %w", err)
		}
		b, err := e.Store.PlanBatch(ctx, store.PlanParams{
			Now: e.Now(), CreatedAt: now.Truncate(time.Second),
			MinPayout: e.MinPayout, Every: e.Every, Max: e.max(),
		})
		if err != nil {
			return rep, fmt.Errorf("payout: plan: %w", err)
		}
		if b == nil {
			break
		}
		rep.Planned++
		e.log().Info("payout batch planned", "batch", b.ID, "query_id", b.QueryID, "transfers", len(b.Items), "total_nanoton", b.Total())
		if err := e.advance(ctx, b, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// RunOnce is Run for the admin API.
func (e *Engine) RunOnce(ctx context.Context) (any, error) { return e.Run(ctx) }

func (e *Engine) max() int {
	if e.Max <= 0 {
		return DefaultMax
	}
	return e.Max
}

func (e *Engine) margin() time.Duration {
	if e.Margin <= 0 {
		return DefaultMargin
	}
	return e.Margin
}

// advance moves one batch as far as it can go now.
func (e *Engine) advance(ctx context.Context, b *store.Batch, rep *Report) error {
	if b.State == store.Planned {
		if err := e.sign(ctx, b); err != nil {
			return err
		}
	}
	// Signed or Sent: did a transaction take it?
	since := b.CreatedAt.Add(-e.margin())
	out, err := e.Chain.Lookup(ctx, e.Wallet.Address(), msgHash(b), since)
	switch {
	case err == nil:
		return e.confirm(ctx, b, out, rep)
	case !errors.Is(err, chain.ErrNotFound):
		return fmt.Errorf("payout: batch %d: look up: %w", b.ID, err)
	}
	now, err := e.Chain.Now(ctx)
	if err != nil {
		return fmt.Errorf("payout: chain time: %w", err)
	}
	if now.After(b.CreatedAt.Add(e.Timeout + e.margin())) {
		// Past its validity and no transaction took it: it never will.
		reason := fmt.Sprintf("no transaction took the message before it expired (created %s, timeout %s, sent %d times)",
			b.CreatedAt.UTC().Format(time.RFC3339), e.Timeout, b.Sends)
		if err := e.Store.ExpireBatch(ctx, b.ID, reason, e.Now()); err != nil {
			return fmt.Errorf("payout: batch %d: expire: %w", b.ID, err)
		}
		rep.Expired++
		e.event(ctx, "warn", fmt.Sprintf("payout batch %d expired: %s; its %d transfers are planned again", b.ID, reason, len(b.Items)))
		return nil
	}
	if !now.Before(b.CreatedAt.Add(e.Timeout)) {
		// The contract would refuse it now; wait for the margin to pass.
		rep.Pending = append(rep.Pending, b.ID)
		return nil
	}
	if err := e.funded(ctx, b); err != nil {
		rep.Pending = append(rep.Pending, b.ID)
		rep.Errors = append(rep.Errors, err.Error())
		e.event(ctx, "error", err.Error())
		return nil
	}
	// Record the hand-over before it happens: a crash right after sending
	// must find the batch in Sent, so the restart looks it up first.
	if err := e.Store.MarkSent(ctx, b.ID, e.Now()); err != nil {
		return fmt.Errorf("payout: batch %d: mark sent: %w", b.ID, err)
	}
	b.State, b.Sends = store.Sent, b.Sends+1
	rep.Sent++
	sendErr := e.Chain.SendExternal(ctx, b.Message)
	if sendErr != nil && !errors.Is(sendErr, chain.ErrRejected) {
		rep.Pending = append(rep.Pending, b.ID)
		rep.Errors = append(rep.Errors, fmt.Sprintf("batch %d: send: %v", b.ID, sendErr))
		return nil
	}
	// A rejection may mean an earlier send already executed (the
	// contract refuses a query id twice): the lookup tells.
	out, err = e.Chain.Lookup(ctx, e.Wallet.Address(), msgHash(b), since)
	switch {
	case err == nil:
		return e.confirm(ctx, b, out, rep)
	case errors.Is(err, chain.ErrNotFound):
		if sendErr != nil {
			e.event(ctx, "error", fmt.Sprintf("payout batch %d: the chain refused the message: %v", b.ID, sendErr))
			rep.Errors = append(rep.Errors, fmt.Sprintf("batch %d: %v", b.ID, sendErr))
		}
		rep.Pending = append(rep.Pending, b.ID) // not yet in a block (lite servers), or refused: it expires
		return nil
	default:
		return fmt.Errorf("payout: batch %d: look up: %w", b.ID, err)
	}
}

// msgHash is the batch's message hash as bytes (the store keeps hex).
func msgHash(b *store.Batch) []byte {
	h, _ := hex.DecodeString(b.MsgHash) // written by sign from bytes
	return h
}

// sign builds and stores the batch's message: Planned → Signed.
func (e *Engine) sign(ctx context.Context, b *store.Batch) error {
	transfers := make([]chain.Transfer, len(b.Items))
	for i, it := range b.Items {
		to, err := address.ParseAddr(it.Address)
		if err != nil {
			// Registration validated it; a bad address here is a bug or
			// a tampered database: stop rather than pay elsewhere.
			return fmt.Errorf("payout: batch %d: worker %s address %q: %w", b.ID, it.Worker, it.Address, err)
		}
		transfers[i] = chain.Transfer{To: to, Amount: it.Amount}
	}
	acc, err := e.Chain.Account(ctx, e.Wallet.Address())
	if err != nil {
		return fmt.Errorf("payout: hot wallet state: %w", err)
	}
	boc, hash, err := e.Wallet.Batch(b.QueryID, b.CreatedAt, transfers, !acc.Active)
	if err != nil {
		return fmt.Errorf("payout: batch %d: build message: %w", b.ID, err)
	}
	h := hex.EncodeToString(hash)
	if err := e.Store.SignBatch(ctx, b.ID, boc, h, e.Now()); err != nil {
		return fmt.Errorf("payout: batch %d: record signed message: %w", b.ID, err)
	}
	b.State, b.Message, b.MsgHash = store.Signed, boc, h
	return nil
}

// funded checks that the wallet covers the batch and its fees.
func (e *Engine) funded(ctx context.Context, b *store.Batch) error {
	acc, err := e.Chain.Account(ctx, e.Wallet.Address())
	if err != nil {
		return fmt.Errorf("payout: hot wallet state: %w", err)
	}
	need := b.Total() + FeeReserve*uint64(len(b.Items)+1)
	if acc.Balance < need {
		return fmt.Errorf("%w: batch %d needs %d nanoton (%d transfers + fee reserve), wallet %s holds %d",
			ErrUnderfunded, b.ID, need, len(b.Items), e.Wallet.Address(), acc.Balance)
	}
	return nil
}

// confirm records a batch's transaction: → Confirmed.
func (e *Engine) confirm(ctx context.Context, b *store.Batch, out *chain.Outcome, rep *Report) error {
	if err := delivered(b, out); err != nil {
		// The message executed but did not pay what the books say: its
		// query id is spent, so it will not execute again. Stop paying
		// until an operator looks; the batch stays open and is reported.
		e.event(ctx, "error", err.Error())
		return err
	}
	if err := e.Store.ConfirmBatch(ctx, b.ID, out.Fees, hex.EncodeToString(out.TxHash), e.Now()); err != nil {
		return fmt.Errorf("payout: batch %d: confirm: %w", b.ID, err)
	}
	rep.Confirmed++
	rep.Paid += b.Total()
	rep.Fees += out.Fees
	e.log().Info("payout batch confirmed", "batch", b.ID, "transfers", len(b.Items), "total_nanoton", b.Total(), "fees_nanoton", out.Fees, "tx", hex.EncodeToString(out.TxHash))
	return nil
}

// ErrMismatch: the chain's transaction did not pay the batch's items.
var ErrMismatch = errors.New("payout: transaction does not match batch")

// delivered checks that the trace paid every item exactly.
func delivered(b *store.Batch, out *chain.Outcome) error {
	want := map[string]uint64{}
	for _, it := range b.Items {
		a, err := address.ParseAddr(it.Address)
		if err != nil {
			return err
		}
		want[rawKey(a)] += it.Amount
	}
	got := map[string]uint64{}
	for _, t := range out.Sent {
		got[rawKey(t.To)] += t.Amount
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("%w: batch %d: %s received %d nanoton, want %d (success=%v)", ErrMismatch, b.ID, k, got[k], v, out.Success)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%w: batch %d: %d recipients paid, want %d", ErrMismatch, b.ID, len(got), len(want))
	}
	return nil
}

// rawKey names an account independently of its user-friendly flags.
func rawKey(a *address.Address) string {
	return fmt.Sprintf("%d:%x", a.Workchain(), a.Data())
}

func (e *Engine) event(ctx context.Context, level, msg string) {
	if level == "error" {
		e.log().Error(msg)
	} else {
		e.log().Warn(msg)
	}
	_ = e.Store.AddEvent(ctx, store.Event{At: e.Now(), Level: level, Message: msg})
}
