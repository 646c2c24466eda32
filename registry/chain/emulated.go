package chain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/internal/durable"
	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// ErrClock: the emulated clock is before the Unix epoch, past uint32
// seconds, or earlier than the last block (block time never goes back).
var ErrClock = errors.New("chain: emulated clock out of range")

// EmulatedOptions configure NewEmulated.
type EmulatedOptions struct {
	// Path is the state file; "" keeps the ledger in memory only.
	Path string
	// Now is the chain's clock (required): each SendExternal and Fund
	// executes in a block with this time.
	Now func() time.Time
	// Config is the blockchain config root; nil means the embedded
	// mainnet config (mainnetconfig/README.md).
	Config *cell.Cell
}

// Emulated is an in-process TON ledger: it executes the real contracts
// with tonutils-go's TVM under a real blockchain config, so fees, replay
// protection, deploys and bounces are what mainnet would do. All of one
// external message's transactions run in one block at Now(); the ledger
// is persisted after every applied message.
//
// Differences from the real chain it does not hide: no shards or
// masterchain blocks (one logical-time counter orders everything), every
// message of a trace is delivered at once, and only ordinary transactions
// exist (no tick-tock, no elections, no config changes).
type Emulated struct {
	mu      sync.Mutex
	path    string
	clock   func() time.Time
	cfg     *tvm.PreparedBlockchainConfig
	minter  *address.Address
	machine *tvm.TVM
	st      *ledger
}

var _ Chain = (*Emulated)(nil)

// NewEmulated opens the ledger at o.Path (a missing file is an empty
// ledger; a corrupt one is ErrCorruptState).
func NewEmulated(o EmulatedOptions) (*Emulated, error) {
	if o.Now == nil {
		return nil, errors.New("chain: EmulatedOptions.Now is required")
	}
	root := o.Config
	if root == nil {
		var err error
		if root, err = MainnetConfig(); err != nil {
			return nil, err
		}
	}
	cfg, err := tvm.PrepareBlockchainConfig(root)
	if err != nil {
		return nil, fmt.Errorf("chain: blockchain config: %w", err)
	}
	minter, err := tlb.BlockchainConfig{Root: root}.GetMinterAddress()
	if err != nil {
		return nil, fmt.Errorf("chain: blockchain config: minter address (param 2 or 0): %w", err)
	}
	st := newLedger()
	if o.Path != "" {
		// Fail now, not at the first commit, when the file cannot be written.
		if fi, err := os.Stat(filepath.Dir(o.Path)); err != nil {
			return nil, fmt.Errorf("chain: emulated state %s: %w", o.Path, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("chain: emulated state %s: %s is not a directory", o.Path, filepath.Dir(o.Path))
		}
		if st, err = loadState(o.Path); err != nil {
			return nil, err
		}
	}
	return &Emulated{
		path:    o.Path,
		clock:   o.Now,
		cfg:     cfg,
		minter:  address.NewAddress(0, byte(0xff), minter), // masterchain (-1)
		machine: tvm.NewTVM(),
		st:      st,
	}, nil
}

// Now is the injected clock.
func (e *Emulated) Now(ctx context.Context) (time.Time, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock(), nil
}

// Fund mints nanoton to addr: an internal, non-bounceable message from the
// config's minter address, executed as an ordinary transaction on addr (a
// missing account becomes uninit holding the value; a contract runs its
// recv_internal and pays for its gas), then whatever it sends is delivered.
func (e *Emulated) Fund(ctx context.Context, addr *address.Address, nanoton uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if addr == nil || addr.Type() != address.StdAddress {
		return fmt.Errorf("chain: fund %v: want a standard address", addr)
	}
	if nanoton == 0 {
		return fmt.Errorf("chain: fund %s: zero amount", addr.StringRaw())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st.stage()
	block, err := e.newBlock(st)
	if err != nil {
		return err
	}
	msg, err := tlb.ToCell(&tlb.InternalMessage{
		IHRDisabled: true,
		Bounce:      false,
		SrcAddr:     e.minter,
		DstAddr:     addr,
		Amount:      tlb.FromNanoTONU(nanoton),
		CreatedLT:   st.lt,
		CreatedAt:   block.Now(),
	})
	if err != nil {
		return fmt.Errorf("chain: fund: build message: %w", err)
	}
	res, err := e.execute(st, block, keyOf(addr), msg)
	if err != nil {
		return fmt.Errorf("chain: fund %s: %w", addr.StringRaw(), err)
	}
	if err := e.deliver(st, block, res.OutMessages); err != nil {
		return err
	}
	return e.commit(st)
}

// SendExternal executes the external message on its destination now. A
// message the contract does not accept leaves no transaction, as on TON,
// and is ErrRejected. An accepted one is recorded with everything it
// causes, and the ledger is persisted before SendExternal returns.
func (e *Emulated) SendExternal(ctx context.Context, boc []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := cell.FromBOC(boc)
	if err != nil {
		return fmt.Errorf("%w: not a BOC: %v", ErrRejected, err)
	}
	msg, err := tvm.PrepareMessage(c)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	if msg.Message().MsgType != tlb.MsgTypeExternalIn {
		return fmt.Errorf("%w: %s message, want external in", ErrRejected, msg.Message().MsgType)
	}
	dst := msg.Message().AsExternalIn().DstAddr
	if dst == nil || dst.Type() != address.StdAddress {
		return fmt.Errorf("%w: destination %v is not a standard address", ErrRejected, dst)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st.stage()
	block, err := e.newBlock(st)
	if err != nil {
		return err
	}
	k := keyOf(dst)
	res, err := e.execute(st, block, k, c)
	if err != nil {
		// The emulator refuses what a validator would not even try:
		// malformed or oversized messages, no balance for the import fee.
		if _, ok := e.st.accounts[k]; !ok {
			return fmt.Errorf("%w: %s: account does not exist: %v", ErrRejected, dst.StringRaw(), err)
		}
		return fmt.Errorf("%w: %s: %v", ErrRejected, dst.StringRaw(), err)
	}
	if !res.Accepted {
		return fmt.Errorf("%w: %s: %s", ErrRejected, dst.StringRaw(), e.rejectReason(k, res))
	}
	if err := e.deliver(st, block, res.OutMessages); err != nil {
		return err
	}
	return e.commit(st)
}

// Lookup finds the transaction that took the external message (by cell or
// normalized hash) on addr. The whole trace is always on the ledger, so
// since is not needed and the answer is never ErrPending.
func (e *Emulated) Lookup(ctx context.Context, addr *address.Address, msgHash []byte, since time.Time) (*Outcome, error) {
	if addr == nil || addr.Type() != address.StdAddress {
		return nil, fmt.Errorf("chain: lookup: address %v is not a standard address", addr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := keyOf(addr)
	i, ok := e.st.byMsg[string(msgHash)]
	if !ok || e.st.txs[i].key != k {
		return nil, fmt.Errorf("%w: message %x on %s", ErrNotFound, msgHash, addr.StringRaw())
	}
	var later []*tlb.Transaction
	for _, j := range e.st.byAcct[k] {
		if j > i {
			later = append(later, e.st.txs[j].tx)
		}
	}
	return traceOutcome(addr, e.st.txs[i].tx, later)
}

// Account reads the account's current state.
func (e *Emulated) Account(ctx context.Context, addr *address.Address) (Account, error) {
	if addr == nil || addr.Type() != address.StdAddress {
		return Account{}, fmt.Errorf("chain: account: address %v is not a standard address", addr)
	}
	e.mu.Lock()
	a, ok := e.st.accounts[keyOf(addr)]
	e.mu.Unlock()
	if !ok {
		return Account{}, nil
	}
	return accountFromShard(a.shard)
}

func accountFromShard(shard *tlb.ShardAccount) (Account, error) {
	var st tlb.AccountState
	if err := tlb.Parse(&st, shard.Account); err != nil {
		return Account{}, fmt.Errorf("chain: account state: %w", err)
	}
	if !st.IsValid {
		return Account{}, nil
	}
	bal := st.Balance.Nano()
	if !bal.IsUint64() {
		return Account{}, fmt.Errorf("chain: account %s: balance %s overflows uint64", st.Address.StringRaw(), bal)
	}
	return Account{Exists: true, Active: st.Status == tlb.AccountStatusActive, Balance: bal.Uint64()}, nil
}

// newBlock opens the block one message executes in: time from the clock,
// a random seed derived from the logical time (deterministic replays).
func (e *Emulated) newBlock(st *staged) (*tvm.BlockContext, error) {
	now := e.clock()
	if now.Unix() <= 0 || now.Unix() > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %v", ErrClock, now)
	}
	t := uint32(now.Unix())
	if t < st.now {
		return nil, fmt.Errorf("%w: %v is before the last block at %v", ErrClock, now.UTC(), time.Unix(int64(st.now), 0).UTC())
	}
	st.now = t
	return e.cfg.NewBlockContext(tvm.BlockOptions{Now: t, RandSeed: blockSeed(st.lt)})
}

// commit persists st, then makes it current: a failed write leaves both
// the file and the in-memory ledger as they were.
func (e *Emulated) commit(st *staged) error {
	if e.path != "" {
		if err := durable.WriteFile(e.path, encodeState(st.merged()), 0o600); err != nil {
			return fmt.Errorf("chain: persist emulated state: %w", err)
		}
	}
	st.apply()
	return nil
}

// FeesPaid is the total fees (total_fees of every transaction) the account
// has paid on this ledger: what an auditor subtracts from what it received
// to explain its balance (a recipient that already exists pays its accrued
// storage fee out of the next incoming transfer, as on mainnet).
func (e *Emulated) FeesPaid(addr *address.Address) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var sum uint64
	for _, i := range e.st.byAcct[keyOf(addr)] {
		sum += e.st.txs[i].tx.TotalFees.Coins.Nano().Uint64()
	}
	return sum
}
