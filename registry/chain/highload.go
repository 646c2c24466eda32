package chain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
)

// ErrBatch: Batch was asked for a message the highload wallet would refuse
// or mis-execute. Nothing was signed.
var ErrBatch = errors.New("chain: invalid highload batch")

// Limits of highload-wallet-v3 (ton-blockchain/highload-wallet-contract-v3,
// contracts/scheme.tlb and highload-wallet-v3.func).
const (
	// MaxBatch: one external message carries at most 254*254 transfers
	// (254 actions per internal_transfer, each pack chaining the next).
	MaxBatch = 254 * 254
	// MaxQueryID bounds the query id: QueryId is shift:uint13 bit_number:(## 10)
	// with bit_number < 1023 (the bitmap cell holds 1023 bits).
	MaxQueryID = 1<<23 - 1
	// MinTimeout and MaxTimeout bound the wallet's timeout (its message
	// TTL and the replay window): the contract stores timeout:uint22
	// seconds and needs it > 0; tonutils-go's builder asks for more than 5 s.
	MinTimeout = 6 * time.Second
	MaxTimeout = (1<<22 - 1) * time.Second
)

// transferMode is how every transfer is sent: PayGasSeparately (+1, the
// recipient gets the exact amount) + IgnoreErrors (+2, one transfer the
// wallet cannot pay for is skipped instead of failing the whole list).
const transferMode = wallet.PayGasSeparately + wallet.IgnoreErrors

// Highload is the hot wallet: a highload wallet v3 with the contract code
// tonutils-go ships (the one deployed on mainnet). It only signs; sending is
// the Chain's job, so it needs no network.
type Highload struct {
	w         *wallet.Wallet
	subwallet uint32
	timeout   uint32 // seconds
}

// batchParams carries one Batch call's query id and created_at into the
// wallet package's MessageBuilder callback, which tonutils-go calls with the
// context it was given; a per-call value keeps Batch safe for concurrent use.
type batchParams struct {
	queryID   uint32
	createdAt int64
}

type batchParamsKey struct{}

// NewHighload derives the wallet (its address follows from the key, the
// subwallet id and the timeout, all part of its StateInit data).
func NewHighload(key ed25519.PrivateKey, subwallet uint32, timeout time.Duration) (*Highload, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes, want %d", ErrBatch, len(key), ed25519.PrivateKeySize)
	}
	if timeout < MinTimeout || timeout > MaxTimeout || timeout%time.Second != 0 {
		return nil, fmt.Errorf("%w: timeout %v, want whole seconds in [%v, %v]", ErrBatch, timeout, MinTimeout, MaxTimeout)
	}
	cfg := wallet.ConfigHighloadV3{
		MessageTTL: uint32(timeout / time.Second),
		MessageBuilder: func(ctx context.Context, _ uint32) (uint32, int64, error) {
			p, ok := ctx.Value(batchParamsKey{}).(batchParams)
			if !ok {
				return 0, 0, errors.New("no batch parameters in context")
			}
			return p.queryID, p.createdAt, nil
		},
	}
	base, err := wallet.FromPrivateKeyWithOptions(key, cfg)
	if err != nil {
		return nil, fmt.Errorf("highload wallet: %w", err)
	}
	w, err := base.GetSubwallet(subwallet)
	if err != nil {
		return nil, fmt.Errorf("highload wallet subwallet %d: %w", subwallet, err)
	}
	return &Highload{w: w, subwallet: subwallet, timeout: cfg.MessageTTL}, nil
}

// Address is the wallet's address, non-bounceable (it is funded before it
// is deployed, and bounceable transfers to an uninit account bounce).
func (h *Highload) Address() *address.Address { return h.w.WalletAddress() }

// Timeout is the wallet's message TTL and replay window.
func (h *Highload) Timeout() time.Duration { return time.Duration(h.timeout) * time.Second }

// Batch signs one external message that pays every transfer. The contract
// accepts it while now-timeout < createdAt <= now (block time), once per
// queryID within the replay window; init attaches the wallet's StateInit so
// the message deploys a funded, uninitialised wallet (an active wallet
// ignores it). Transfers are non-bounceable (recipients may not exist yet)
// with mode 3. Same inputs give the same bytes (Ed25519 is deterministic).
// msgHash is the message cell's hash: what Chain.Lookup takes.
func (h *Highload) Batch(queryID uint32, createdAt time.Time, transfers []Transfer, init bool) (boc []byte, msgHash []byte, err error) {
	if err := validateBatch(queryID, createdAt, transfers, h.w.WalletAddress()); err != nil {
		return nil, nil, err
	}
	return h.build(queryID, createdAt, transfers, init)
}

// build signs without validateBatch (tests use it to show the contract
// refuses what validateBatch refuses).
func (h *Highload) build(queryID uint32, createdAt time.Time, transfers []Transfer, init bool) ([]byte, []byte, error) {
	msgs := make([]*wallet.Message, len(transfers))
	for i, t := range transfers {
		msgs[i] = &wallet.Message{
			Mode: transferMode,
			// int_msg_info$0 ihr_disabled:Bool bounce:Bool bounced:Bool ...
			// (block.tlb): bounce=false by hand, SimpleMessage would force true.
			InternalMessage: &tlb.InternalMessage{
				IHRDisabled: true,
				Bounce:      false,
				DstAddr:     t.To,
				Amount:      tlb.FromNanoTONU(t.Amount),
			},
		}
	}
	ctx := context.WithValue(context.Background(), batchParamsKey{}, batchParams{queryID: queryID, createdAt: createdAt.Unix()})
	ext, err := h.w.PrepareExternalMessageForMany(ctx, init, msgs)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBatch, err)
	}
	c, err := tlb.ToCell(ext)
	if err != nil {
		return nil, nil, fmt.Errorf("serialize external message: %w", err)
	}
	return c.ToBOC(), c.Hash(), nil
}

func validateBatch(queryID uint32, createdAt time.Time, transfers []Transfer, self *address.Address) error {
	if len(transfers) == 0 {
		return fmt.Errorf("%w: no transfers", ErrBatch)
	}
	if len(transfers) > MaxBatch {
		return fmt.Errorf("%w: %d transfers, at most %d", ErrBatch, len(transfers), MaxBatch)
	}
	if queryID > MaxQueryID {
		return fmt.Errorf("%w: query id %d, want < %d", ErrBatch, queryID, 1<<23)
	}
	if queryID&1023 == 1023 {
		return fmt.Errorf("%w: query id %d has bit_number 1023, want < 1023 (QueryId in scheme.tlb)", ErrBatch, queryID)
	}
	if createdAt.Unix() <= 0 {
		return fmt.Errorf("%w: created_at %v, want after the Unix epoch", ErrBatch, createdAt)
	}
	// The wallet attaches sum + 0.007 TON per transfer + 0.01 TON to its
	// self-message; keep the whole sum inside uint64 nanoton.
	var sum uint64
	for i, t := range transfers {
		if t.To == nil || t.To.Type() != address.StdAddress {
			return fmt.Errorf("%w: transfer %d: recipient %v, want a standard address", ErrBatch, i, t.To)
		}
		if sameAccount(t.To, self) {
			return fmt.Errorf("%w: transfer %d: recipient is the wallet itself", ErrBatch, i)
		}
		if t.Amount == 0 {
			return fmt.Errorf("%w: transfer %d to %s: zero amount", ErrBatch, i, t.To.StringRaw())
		}
		if t.Amount > math.MaxUint64-sum {
			return fmt.Errorf("%w: transfer %d: total amount overflows uint64 nanoton", ErrBatch, i)
		}
		sum += t.Amount
	}
	return nil
}
