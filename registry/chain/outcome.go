package chain

import (
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
)

// ErrPending: the external message executed, but a message the account
// sent to itself in that trace (a highload batch's internal_transfer) has
// not been executed yet, so the Outcome is not final. Look again later.
var ErrPending = errors.New("chain: transaction trace not complete yet")

// accountKey identifies an account independent of the address's flags
// (bounceable, testnet): workchain and 256-bit account id.
type accountKey struct {
	wc int32
	id [32]byte
}

func keyOf(a *address.Address) accountKey {
	k := accountKey{wc: a.Workchain()}
	copy(k.id[:], a.Data())
	return k
}

func (k accountKey) address() *address.Address {
	return address.NewAddress(0, byte(k.wc), k.id[:])
}

func sameAccount(a, b *address.Address) bool {
	if a == nil || b == nil || a.Type() != address.StdAddress || b.Type() != address.StdAddress {
		return false
	}
	return keyOf(a) == keyOf(b)
}

// traceOutcome accounts for what one external message did to account addr.
// first is the transaction that took the external message; later holds the
// account's transactions after it, ascending by LT (unrelated ones are
// skipped). A transaction in later belongs to the trace when its inbound
// message is one the account sent to itself within the trace, matched by
// created_lt (unique per sender); messages from other accounts, bounces
// included, are not part of it.
//
// Fees follow from how a transaction moves the balance (block.tlb,
// Transaction and the action phase of TON's transaction.cpp):
//
//	balance_after = balance_before + credited in-value - total_fees
//	                - sum over out internal messages of (value + fwd_fee)
//
// where total_fees already holds the storage, import, gas and action fees,
// the action fees holding the first fraction of each forward fee (and all
// of it for external out messages), and fwd_fee is the part of the forward
// fee the message still carries. A self-message's value leaves in one
// transaction and is credited in the next, so over the trace
//
//	balance_before - balance_after = sum(Sent) + Fees,
//	Fees = sum(total_fees) + sum(fwd_fee of out internal messages, self-messages included).
//
// ihr_fee is left out: IHR is disabled (global version >= 11 forces
// ihr_disabled, and from 12 the field carries message flags, not a fee).
func traceOutcome(addr *address.Address, first *tlb.Transaction, later []*tlb.Transaction) (*Outcome, error) {
	o := &Outcome{
		TxHash:  append([]byte(nil), first.Hash...),
		LT:      first.LT,
		At:      time.Unix(int64(first.Now), 0).UTC(),
		Success: true,
	}
	fees := new(big.Int)
	pending := map[uint64]bool{} // created_lt of self-messages not yet executed

	add := func(tx *tlb.Transaction) error {
		fees.Add(fees, tx.TotalFees.Coins.Nano())
		if !txSucceeded(tx) {
			o.Success = false
		}
		if tx.IO.Out == nil {
			return nil
		}
		msgs, err := tx.IO.Out.ToSlice()
		if err != nil {
			return fmt.Errorf("transaction %x: out messages: %w", tx.Hash, err)
		}
		for _, m := range msgs {
			if m.MsgType != tlb.MsgTypeInternal {
				continue // external out: its whole forward fee is in total_fees
			}
			im := m.AsInternal()
			fees.Add(fees, im.FwdFee.Nano())
			if sameAccount(im.DstAddr, addr) {
				pending[im.CreatedLT] = true
				continue
			}
			amount := im.Amount.Nano()
			if amount.Sign() == 0 {
				continue
			}
			if !amount.IsUint64() {
				return fmt.Errorf("transaction %x: message value %s overflows uint64", tx.Hash, amount)
			}
			o.Sent = append(o.Sent, Transfer{To: im.DstAddr, Amount: amount.Uint64()})
		}
		return nil
	}

	if err := add(first); err != nil {
		return nil, err
	}
	for _, tx := range later {
		if len(pending) == 0 {
			break
		}
		if tx.LT <= first.LT || tx.IO.In == nil || tx.IO.In.MsgType != tlb.MsgTypeInternal {
			continue
		}
		in := tx.IO.In.AsInternal()
		if !sameAccount(in.SrcAddr, addr) || !pending[in.CreatedLT] {
			continue
		}
		delete(pending, in.CreatedLT)
		if err := add(tx); err != nil {
			return nil, err
		}
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("%w: %d self-message(s) of transaction %x not executed", ErrPending, len(pending), first.Hash)
	}
	if !fees.IsUint64() {
		return nil, fmt.Errorf("transaction %x: fees %s overflow uint64", first.Hash, fees)
	}
	o.Fees = fees.Uint64()
	return o, nil
}

// txSucceeded: an ordinary transaction whose compute phase ran and
// succeeded and whose action phase succeeded without skipping an action
// (the highload wallet sends with IGNORE_ERRORS, so a transfer it cannot
// pay for is skipped, and the action phase still reports success).
func txSucceeded(tx *tlb.Transaction) bool {
	var d tlb.TransactionDescriptionOrdinary
	switch v := tx.Description.(type) {
	case tlb.TransactionDescriptionOrdinary:
		d = v
	case *tlb.TransactionDescriptionOrdinary:
		d = *v
	default:
		return false
	}
	if d.Aborted || d.ActionPhase == nil {
		return false
	}
	var vm tlb.ComputePhaseVM
	switch v := d.ComputePhase.Phase.(type) {
	case tlb.ComputePhaseVM:
		vm = v
	case *tlb.ComputePhaseVM:
		vm = *v
	default:
		return false
	}
	a := d.ActionPhase
	return vm.Success && a.Success && a.SkippedActions == 0
}

// inMessageMatches reports whether a transaction's inbound message is the
// external message msgHash names: by its cell hash, or by its normalized
// hash (TEP-467), which survives a relay re-encoding the message.
func inMessageMatches(tx *tlb.Transaction, msgHash []byte) bool {
	if tx.IO.In == nil || tx.IO.In.MsgType != tlb.MsgTypeExternalIn {
		return false
	}
	ext := tx.IO.In.AsExternalIn()
	if c, err := tlb.ToCell(ext); err == nil && string(c.Hash()) == string(msgHash) {
		return true
	}
	return string(ext.NormalizedHash()) == string(msgHash)
}
