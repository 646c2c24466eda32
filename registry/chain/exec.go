package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// maxTraceTransactions stops a trace that never ends (on the real chain
// fees end every loop; this only guards the emulator from a bad config).
const maxTraceTransactions = 1 << 20

// emptyShard is a ShardAccount of an account that does not exist
// (account_none$0, last_trans_hash zero, last_trans_lt 0).
func emptyShard() *tlb.ShardAccount {
	return &tlb.ShardAccount{
		Account:       cell.BeginCell().MustStoreBoolBit(false).EndCell(),
		LastTransHash: make([]byte, 32),
	}
}

// execute runs one ordinary transaction of account k on msgCell and, when
// there is a transaction (an external message the contract did not accept
// leaves none), records it and the account's new state in st.
func (e *Emulated) execute(st *staged, block *tvm.BlockContext, k accountKey, msgCell *cell.Cell) (*tvm.TransactionExecutionResult, error) {
	shard := emptyShard()
	if a, ok := st.account(k); ok {
		shard = a.shard
	}
	acc, err := tvm.PrepareAccount(shard, k.address())
	if err != nil {
		return nil, fmt.Errorf("prepare account %s: %w", k.address().StringRaw(), err)
	}
	msg, err := tvm.PrepareMessage(msgCell)
	if err != nil {
		return nil, fmt.Errorf("prepare message: %w", err)
	}
	if st.lt > math.MaxInt64 {
		return nil, fmt.Errorf("logical time %d overflows", st.lt)
	}
	res, err := e.machine.EmulateTransaction(block, acc, msg, tvm.TransactionOptions{LogicalTime: int64(st.lt)})
	if err != nil {
		return nil, err
	}
	if res.TransactionCell == nil {
		if msg.Message().MsgType == tlb.MsgTypeInternal {
			return nil, errors.New("internal message produced no transaction")
		}
		return res, nil
	}
	rec, err := newTxRecord(k.wc, res.TransactionCell)
	if err != nil {
		return nil, err
	}
	if rec.key != k {
		return nil, fmt.Errorf("transaction of %s executed for %s", rec.key.address().StringRaw(), k.address().StringRaw())
	}
	next := res.NextAccount
	if next.State() != nil && next.State().IsValid {
		a, err := newAccountEntry(next.ShardAccount())
		if err != nil {
			return nil, err
		}
		st.accounts[k] = a
	} else {
		st.accounts[k] = nil // deleted: a shard keeps no trace of it
	}
	st.txs = append(st.txs, rec)
	if res.EndLT > st.lt {
		st.lt = res.EndLT
	}
	return res, nil
}

// deliver executes the outgoing internal messages and everything they
// cause, breadth first. One counter numbers all logical times, so the
// queue is already in created_lt order.
func (e *Emulated) deliver(st *staged, block *tvm.BlockContext, out []tvm.OutMessage) error {
	queue := internalOnly(nil, out)
	for n := 0; len(queue) > 0; n++ {
		if n == maxTraceTransactions {
			return fmt.Errorf("chain: trace exceeds %d transactions", maxTraceTransactions)
		}
		m := queue[0]
		queue = queue[1:]
		dst := m.Msg.AsInternal().DstAddr
		res, err := e.execute(st, block, keyOf(dst), m.Cell)
		if err != nil {
			return fmt.Errorf("chain: deliver message %x to %s: %w", m.Cell.Hash(), dst.StringRaw(), err)
		}
		queue = internalOnly(queue, res.OutMessages)
	}
	return nil
}

// internalOnly appends the internal messages of out to q (external out
// messages are logs: nobody receives them).
func internalOnly(q, out []tvm.OutMessage) []tvm.OutMessage {
	for _, m := range out {
		if m.Msg != nil && m.Msg.MsgType == tlb.MsgTypeInternal {
			q = append(q, m)
		}
	}
	return q
}

// blockSeed derives a block's random seed from the logical time, so the
// same history replays to the same hashes.
func blockSeed(lt uint64) []byte {
	h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("cocoon/registry/chain emulated block "), lt))
	return h[:]
}

// highloadExitCodes are highload-wallet-v3's throw codes
// (highload-wallet-v3.func, error::*).
var highloadExitCodes = map[int64]string{
	33: "invalid_signature",
	34: "invalid_subwallet_id",
	35: "invalid_created_at (expired or in the future)",
	36: "already_executed (query id replayed)",
	37: "invalid_message_to_send",
	38: "invalid_timeout",
}

// highloadCodeHash is the hash of the contract code tonutils-go ships.
var highloadCodeHash = func() []byte {
	si, err := wallet.GetStateInit(make(ed25519.PublicKey, ed25519.PublicKeySize), wallet.ConfigHighloadV3{MessageTTL: 60}, 0)
	if err != nil {
		panic(fmt.Sprintf("highload v3 state init: %v", err))
	}
	return si.Code.Hash()
}()

// rejectReason says why the contract did not accept an external message.
func (e *Emulated) rejectReason(k accountKey, res *tvm.TransactionExecutionResult) string {
	a, ok := e.st.accounts[k]
	if !ok {
		return "account does not exist (fund it, then send with its StateInit)"
	}
	var s tlb.AccountState
	if err := tlb.Parse(&s, a.shard.Account); err == nil && s.Status != tlb.AccountStatusActive && res.Code == nil {
		return fmt.Sprintf("account is %s and the message carries no usable StateInit", s.Status)
	}
	reason := fmt.Sprintf("contract did not accept it (exit code %d)", res.ExitCode)
	if res.Code != nil && bytes.Equal(res.Code.Hash(), highloadCodeHash) {
		if name, ok := highloadExitCodes[res.ExitCode]; ok {
			reason += ": highload-wallet-v3 " + name
		}
	}
	return reason
}
