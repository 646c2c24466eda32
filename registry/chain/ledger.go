package chain

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// ledger is Emulated's state: the shard state of every existing account,
// every transaction in execution order, and the logical-time counter. The
// indexes are derived from the transactions (never stored, so they cannot
// disagree with them).
type ledger struct {
	lt       uint64 // next free logical time: every transaction and message so far is below it
	now      uint32 // unix time of the last block
	accounts map[accountKey]*accountEntry
	txs      []*txRecord

	byMsg  map[string]int       // external in-message hash (cell and normalized) -> index in txs
	byAcct map[accountKey][]int // account -> indexes in txs, ascending
}

// accountEntry is one account's ShardAccount (block.tlb:
// account_descr$_ account:^Account last_trans_hash:bits256
// last_trans_lt:uint64 = ShardAccount) and its BOC as persisted.
type accountEntry struct {
	shard *tlb.ShardAccount
	boc   []byte
}

// txRecord is one transaction: its account (the Transaction carries only
// the 256-bit id, not the workchain), its BOC, and the parsed form.
type txRecord struct {
	key    accountKey
	boc    []byte
	tx     *tlb.Transaction
	inHash []byte // cell hash of the inbound message; nil when none
}

func newLedger() *ledger {
	return &ledger{
		lt:       1,
		accounts: map[accountKey]*accountEntry{},
		byMsg:    map[string]int{},
		byAcct:   map[accountKey][]int{},
	}
}

// newAccountEntry serializes a shard account for the ledger.
func newAccountEntry(shard *tlb.ShardAccount) (*accountEntry, error) {
	c, err := tlb.ToCell(shard)
	if err != nil {
		return nil, fmt.Errorf("serialize shard account: %w", err)
	}
	return &accountEntry{shard: shard, boc: stateBOC(c)}, nil
}

// parseAccountEntry reads a persisted shard account, insisting on the
// canonical BOC so a load-save round trip is byte-identical.
func parseAccountEntry(k accountKey, boc []byte) (*accountEntry, error) {
	c, err := cell.FromBOC(boc)
	if err != nil {
		return nil, fmt.Errorf("shard account BOC: %w", err)
	}
	if !bytes.Equal(stateBOC(c), boc) {
		return nil, fmt.Errorf("shard account BOC is not in canonical form")
	}
	var shard tlb.ShardAccount
	if err := tlb.Parse(&shard, c); err != nil {
		return nil, fmt.Errorf("shard account: %w", err)
	}
	var st tlb.AccountState
	if err := tlb.Parse(&st, shard.Account); err != nil {
		return nil, fmt.Errorf("account state: %w", err)
	}
	if !st.IsValid {
		return nil, fmt.Errorf("account %s is stored but does not exist", k.address().StringRaw())
	}
	if st.Address == nil || !sameAccount(st.Address, k.address()) {
		return nil, fmt.Errorf("account state of %v stored under %s", st.Address, k.address().StringRaw())
	}
	return &accountEntry{shard: &shard, boc: boc}, nil
}

// newTxRecord parses a transaction cell (from the emulator or a file) of
// an account in workchain wc.
func newTxRecord(wc int32, c *cell.Cell) (*txRecord, error) {
	var tx tlb.Transaction
	if err := tlb.Parse(&tx, c); err != nil {
		return nil, fmt.Errorf("transaction: %w", err)
	}
	tx.Hash = c.Hash()
	k := accountKey{wc: wc}
	if len(tx.AccountAddr) != len(k.id) {
		return nil, fmt.Errorf("transaction account_addr is %d bytes", len(tx.AccountAddr))
	}
	copy(k.id[:], tx.AccountAddr)
	r := &txRecord{key: k, boc: stateBOC(c), tx: &tx}
	// transaction$0111 ... ^[ in_msg:(Maybe ^(Message Any)) out_msgs:... ]:
	// the IO cell is the first reference, the in-message its first.
	if tx.IO.In != nil {
		io, err := c.PeekRef(0)
		if err != nil {
			return nil, fmt.Errorf("transaction io: %w", err)
		}
		in, err := io.PeekRef(0)
		if err != nil {
			return nil, fmt.Errorf("transaction in_msg: %w", err)
		}
		r.inHash = in.Hash()
	}
	return r, nil
}

// add appends a transaction and indexes it.
func (l *ledger) add(r *txRecord) {
	i := len(l.txs)
	l.txs = append(l.txs, r)
	l.byAcct[r.key] = append(l.byAcct[r.key], i)
	if r.tx.IO.In != nil && r.tx.IO.In.MsgType == tlb.MsgTypeExternalIn {
		l.byMsg[string(r.inHash)] = i
		l.byMsg[string(r.tx.IO.In.AsExternalIn().NormalizedHash())] = i
	}
}

// sortedKeys gives a canonical account order for the state file.
func sortedKeys(m map[accountKey]*accountEntry) []accountKey {
	keys := make([]accountKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	return keys
}

func keyLess(a, b accountKey) bool {
	if a.wc != b.wc {
		return a.wc < b.wc
	}
	return bytes.Compare(a.id[:], b.id[:]) < 0
}

// staged collects one message's effects on top of a ledger without
// touching it, so a rejected or failed message leaves the ledger as it was;
// its cost is what the message touches, not the ledger's size.
type staged struct {
	base     *ledger
	lt       uint64
	now      uint32
	accounts map[accountKey]*accountEntry // nil entry: account deleted
	txs      []*txRecord
}

func (l *ledger) stage() *staged {
	return &staged{base: l, lt: l.lt, now: l.now, accounts: map[accountKey]*accountEntry{}}
}

func (s *staged) account(k accountKey) (*accountEntry, bool) {
	if a, ok := s.accounts[k]; ok {
		return a, a != nil
	}
	a, ok := s.base.accounts[k]
	return a, ok
}

// merged is the ledger as it will be after apply, for encoding; it shares
// everything it can with the base and must not be modified.
func (s *staged) merged() *ledger {
	l := &ledger{
		lt:       s.lt,
		now:      s.now,
		accounts: make(map[accountKey]*accountEntry, len(s.base.accounts)+len(s.accounts)),
		txs:      append(s.base.txs[:len(s.base.txs):len(s.base.txs)], s.txs...),
	}
	for k, a := range s.base.accounts {
		l.accounts[k] = a
	}
	for k, a := range s.accounts {
		if a == nil {
			delete(l.accounts, k)
		} else {
			l.accounts[k] = a
		}
	}
	return l
}

// apply makes the staged effects part of the base ledger.
func (s *staged) apply() {
	l := s.base
	for k, a := range s.accounts {
		if a == nil {
			delete(l.accounts, k)
		} else {
			l.accounts[k] = a
		}
	}
	for _, r := range s.txs {
		l.add(r)
	}
	l.lt, l.now = s.lt, s.now
}

// stateBOC is how the state file stores a cell: a single-root BOC without
// the CRC32C (the file's SHA-256 covers it).
func stateBOC(c *cell.Cell) []byte { return c.ToBOCWithFlags(false) }
