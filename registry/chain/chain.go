// Package chain is the TON blockchain as the registry's payouts need it:
// send a signed external message, find the transaction that executed it,
// read balances and the chain's clock. Two implementations:
//
//	Lite      lite servers from a global config file (the real network), via tonutils-go
//	Emulated  an in-process ledger that executes the real contracts (the
//	          highload-v3 wallet's code, as deployed on mainnet) with tonutils-go's
//	          TVM (tvm.EmulateTransaction) under a mainnet config, delivers the
//	          outgoing internal messages, keeps balances and transactions, and
//	          persists its state to a file after every applied message
//
// The hot wallet is a highload wallet v3 (Highload.Batch builds its external
// messages): one external message carries up to 254*254 transfers, and its
// replay protection is a query id the caller allocates, so sending the same
// signed message again never pays twice.
//
// Errors: ErrNotFound, ErrRejected, ErrPending (Chain); ErrBatch (Highload);
// ErrCorruptState, ErrClock (Emulated).
package chain

import (
	"context"
	"errors"
	"time"

	"github.com/xssnick/tonutils-go/address"
)

// Errors.
var (
	// ErrNotFound: no transaction of the account executed that message
	// (among those the chain can still show).
	ErrNotFound = errors.New("chain: transaction not found")
	// ErrRejected: the chain refused the external message outright
	// (the contract did not accept it: bad signature, expired, replayed
	// query id, ...). Sending it again will not help.
	ErrRejected = errors.New("chain: external message rejected")
)

// Chain is what payouts need from TON. Implementations are safe for
// concurrent use.
type Chain interface {
	// Now is the chain's clock: the last block's time (Emulated: its
	// injected clock).
	Now(ctx context.Context) (time.Time, error)
	// SendExternal hands a signed external message (a BOC) to the chain.
	// Success means it was handed over, not that it executed: find the
	// outcome with Lookup.
	SendExternal(ctx context.Context, boc []byte) error
	// Lookup finds the transaction of account addr whose inbound external
	// message has the given cell hash (or normalized hash, TEP-467), and
	// the transactions it caused on the same account (a highload wallet
	// sends its batch to itself first). Transactions older than since need
	// not be searched (the message's created_at bounds where it can be).
	// ErrNotFound when there is none; ErrPending when it executed but a
	// self-message of its trace has not yet.
	Lookup(ctx context.Context, addr *address.Address, msgHash []byte, since time.Time) (*Outcome, error)
	// Account is the account's state; a zero Account for one that does
	// not exist.
	Account(ctx context.Context, addr *address.Address) (Account, error)
}

// Account is an account's state.
type Account struct {
	Exists  bool
	Active  bool   // has code and data (a deployed contract)
	Balance uint64 // nanoton
}

// Outcome is what one external message did to the sending account.
type Outcome struct {
	TxHash []byte // hash of the transaction that took the external message
	LT     uint64
	At     time.Time
	// Success: every transaction on the account in this trace passed its
	// compute and action phases and skipped no action. (The highload
	// wallet sends with IGNORE_ERRORS: a transfer it cannot pay for is
	// skipped while the action phase still succeeds; Sent shows what went.)
	Success bool
	// Sent are the value-carrying internal messages the account sent to
	// other accounts in this trace.
	Sent []Transfer
	// Fees is what the account paid beyond the values in Sent: total_fees
	// of its transactions in the trace plus the fwd_fee still carried by
	// each internal message they sent (self-messages included), such that
	// balance before - balance after = sum(Sent) + Fees exactly (when
	// nothing else arrived meanwhile). See traceOutcome.
	Fees uint64
}

// Transfer is one payment.
type Transfer struct {
	To     *address.Address
	Amount uint64 // nanoton
}
