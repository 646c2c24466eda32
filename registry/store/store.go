// Package store is the registry's books: allowlisted image hashes and
// models, registered workers and their evidence, heartbeats, work receipts
// and the earnings they credit, prices, and TON payout batches.
//
// One schema, two engines, chosen by the DSN given to Open:
//
//	sqlite:PATH          embedded default (modernc.org/sqlite, WAL)
//	postgres://...       PostgreSQL (pgx) for deployments that outgrow one machine
//
// Money is integer nanoton (1 TON = 1e9 nanoton), never floating point.
// Both engines hold integers as signed 64-bit: a uint64 above 2^63-1
// (money, seq) is refused with ErrInvalid, never wrapped. Times are kept
// as Unix milliseconds and read back in UTC; the zero time reads back as
// the zero time.
//
// Invariant, for every worker, at every commit:
//
//	earned = unpaid + in_flight + paid
//
// where in_flight is the sum of its items in batches that are planned,
// signed or sent. Receipts only add to earned (and unpaid); PlanBatch moves
// unpaid into a batch; ConfirmBatch moves a batch's items to paid; ExpireBatch
// (a batch that provably never executed) moves them back to unpaid. Every
// method is one database transaction, so a crash between any two calls loses
// nothing and credits nothing twice.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a receipt with the same (worker, seq) is held with
	// different content, or a state change does not apply to the
	// batch's current state.
	ErrConflict = errors.New("store: conflict")
	ErrDSN      = errors.New("store: bad DSN")
	// ErrInvalid: an argument the books cannot hold, e.g. an amount
	// above 2^63-1 (the engines' BIGINT), a negative count, an unknown
	// event level.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrSchema: the database's schema is newer than this binary, or a
	// migration it records differs from this binary's.
	ErrSchema = errors.New("store: schema mismatch")
)

// Worker is a registered worker.
type Worker struct {
	ID        string // hex SHA-256 of the Ed25519 public key (32 bytes)
	PublicKey string // hex Ed25519 key of its RA-TLS certificate
	Payout    string // TON address its earnings go to (user-friendly form)
	Endpoint  string // host:port of its RA-TLS gateway
	Models    []string
	// Price is its asking price, nanoton per 1,000,000 tokens.
	Price uint64
	// MinPayout and PayoutEvery are its payout threshold and schedule
	// (0: the operator's defaults).
	MinPayout   uint64
	PayoutEvery time.Duration
	Certificate []byte // DER of the RA-TLS certificate it registered with
	// Evidence is what the registry's verification found (JSON written by
	// registry/api; opaque here).
	Evidence     json.RawMessage
	RegisteredAt time.Time
	CertExpires  time.Time
	Stats        Stats
}

// Stats are the inputs of reputation, kept per worker.
type Stats struct {
	LastSeen   time.Time // last heartbeat or receipt batch (never moves backwards)
	Heartbeats int64     // heartbeats received since registration
	Served     int64     // requests the worker reported served
	Failed     int64     // requests the worker reported failed
	LatencyMS  float64   // exponentially weighted mean of reported latency (alpha 0.2)
}

// Heartbeat is one liveness report.
type Heartbeat struct {
	At        time.Time
	Served    int64   // requests served since the previous heartbeat
	Failed    int64   // requests failed since the previous heartbeat
	LatencyMS float64 // median latency over them; 0 when none
}

// Receipt is one verified receipt as the books keep it.
type Receipt struct {
	Worker string // worker ID
	Seq    uint64
	Model  string
	Tokens int64  // billable tokens
	Amount uint64 // nanoton credited
	End    time.Time
	// Signed is the signed receipt exactly as received (guest/receipt
	// JSON), kept for audit; a replay is recognised by equal bytes.
	Signed []byte
}

// Balance is a worker's money.
type Balance struct {
	Worker   string
	Earned   uint64
	Unpaid   uint64
	InFlight uint64
	Paid     uint64
}

// AllowedImage is an allowlisted image hash.
type AllowedImage struct {
	Hash  string // 64 lower-case hex digits (measure/imagehash)
	Note  string
	Added time.Time
}

// Price is the operator's bounds for one model, nanoton per 1M tokens.
type Price struct {
	Model string
	Base  uint64
	Min   uint64
	Max   uint64
}

// BatchState is where a payout batch is in its life.
type BatchState string

// Batch states, in order. Confirmed and Expired are final.
const (
	Planned   BatchState = "planned"   // items chosen, amounts moved out of unpaid, query id allocated
	Signed    BatchState = "signed"    // external message built and stored; not yet handed to the chain
	Sent      BatchState = "sent"      // handed to the chain at least once
	Confirmed BatchState = "confirmed" // the wallet's transaction is on chain; items are paid
	Expired   BatchState = "expired"   // provably never executed (TTL passed, no transaction): items back to unpaid
)

// Item is one transfer in a batch.
type Item struct {
	Worker  string
	Address string // TON address at planning time
	Amount  uint64
}

// Batch is one highload-wallet external message carrying many transfers.
type Batch struct {
	ID      int64
	QueryID uint32 // highload-v3 query id (23 bits), allocated by PlanBatch
	// CreatedAt is the message's created_at (chain time, whole seconds),
	// fixed at planning so that signing again gives the same message.
	CreatedAt time.Time
	State     BatchState
	Items     []Item
	Message   []byte // signed external message BOC (from Signed on)
	MsgHash   string // hex hash of Message's cell
	Sends     int    // times handed to the chain
	Fees      uint64 // nanoton the hot wallet paid beyond the amounts (Confirmed)
	TxHash    string // hex hash of the wallet's transaction (Confirmed)
	Error     string // why it expired
	Updated   time.Time
}

// Total is the sum of the batch's amounts.
func (b *Batch) Total() uint64 {
	var t uint64
	for _, it := range b.Items {
		t += it.Amount
	}
	return t
}

// PlanParams choose what PlanBatch pays.
type PlanParams struct {
	Now time.Time
	// CreatedAt is the message's created_at to record (chain time).
	CreatedAt time.Time
	// MinPayout and Every apply to workers that have none of their own.
	MinPayout uint64
	Every     time.Duration
	// Max is the most items in one batch (highload-v3 takes up to 254*254).
	Max int
}

// Event is a line for the dashboard's "recent errors" and the audit trail.
type Event struct {
	At      time.Time
	Level   string // "info", "warn", "error"
	Worker  string // "" when not about one worker
	Message string
}

// Store is the registry's books. Implementations are safe for concurrent use.
type Store interface {
	// Allowlist. The hash must be 64 lower-case hex digits (ErrInvalid).
	AllowImage(ctx context.Context, img AllowedImage) error // idempotent; updates the note, keeps Added
	DisallowImage(ctx context.Context, hash string) error   // ErrNotFound if absent
	Allowlist(ctx context.Context) ([]AllowedImage, error)  // by hash

	// Prices.
	SetPrice(ctx context.Context, p Price) error
	Prices(ctx context.Context) ([]Price, error) // by model

	// Workers. PutWorker inserts, or replaces everything but
	// RegisteredAt and Stats of a worker with the same ID.
	PutWorker(ctx context.Context, w Worker) error
	Worker(ctx context.Context, id string) (*Worker, error) // ErrNotFound
	Workers(ctx context.Context) ([]Worker, error)          // by ID
	// Heartbeat updates Stats (ErrNotFound for an unknown worker).
	Heartbeat(ctx context.Context, worker string, hb Heartbeat) error

	// AddReceipts stores, in one transaction, every receipt of rs whose
	// (worker, seq) is new, and credits its Amount to the worker's earned
	// and unpaid balance. A receipt held with equal Signed bytes is a
	// replay: skipped, counted in dup, credited nothing. A receipt held
	// with different bytes fails the whole call with ErrConflict and
	// stores nothing. Unknown workers: ErrNotFound, nothing stored.
	// It also sets the workers' Stats.LastSeen to now (unless later).
	// Seq or Amount above 2^63-1, negative Tokens, or an earned balance
	// that would pass 2^63-1: ErrInvalid, nothing stored.
	AddReceipts(ctx context.Context, rs []Receipt, now time.Time) (added, dup int, err error)
	// Receipts returns a worker's receipts with seq > after, in seq order,
	// at most limit (all for limit <= 0). Seqs start at 1: a receipt with
	// seq 0 is stored and credited but never listed.
	Receipts(ctx context.Context, worker string, after uint64, limit int) ([]Receipt, error)
	// Usage is the billable tokens of receipts of model that ended at or
	// after since (for prices).
	Usage(ctx context.Context, model string, since time.Time) (int64, error)

	// Balances.
	Balance(ctx context.Context, worker string) (Balance, error) // zero balance for a worker with none
	Balances(ctx context.Context) ([]Balance, error)             // of the workers ever credited, by worker

	// Payouts.
	// PlanBatch picks, in worker ID order, up to Max workers whose unpaid
	// balance is at least their threshold and whose last confirmed or
	// in-flight payout is at least their schedule old, allocates the next
	// query id (a counter in the store, modulo 2^23), and moves their
	// whole unpaid balance into a new Planned batch. Nothing due: nil, nil.
	// A worker's threshold is its MinPayout, or p.MinPayout when 0 (a zero
	// balance is never due); its schedule is PayoutEvery, or p.Every when
	// 0, counted from the Now of its last batch that did not expire.
	// Workers without a Payout address are skipped. p.Max <= 0: ErrInvalid.
	PlanBatch(ctx context.Context, p PlanParams) (*Batch, error)
	// The state changes below fail with ErrNotFound for an unknown batch
	// and ErrConflict, naming the current and the wanted states, for one
	// in another state.
	// SignBatch records the signed message: Planned → Signed. An empty
	// msg or msgHash: ErrInvalid.
	SignBatch(ctx context.Context, id int64, msg []byte, msgHash string, now time.Time) error
	// MarkSent records a hand-over to the chain: Signed or Sent → Sent, Sends+1.
	MarkSent(ctx context.Context, id int64, now time.Time) error
	// ConfirmBatch: Sent → Confirmed; items move from in-flight to paid.
	ConfirmBatch(ctx context.Context, id int64, fees uint64, txHash string, now time.Time) error
	// ExpireBatch: Planned, Signed or Sent → Expired; items move back to unpaid.
	ExpireBatch(ctx context.Context, id int64, reason string, now time.Time) error
	// OpenBatches are the batches not Confirmed or Expired, by ID.
	OpenBatches(ctx context.Context) ([]Batch, error)
	Batch(ctx context.Context, id int64) (*Batch, error) // ErrNotFound
	// Batches are the most recent batches, newest first (all for limit <= 0).
	Batches(ctx context.Context, limit int) ([]Batch, error)

	// Events.
	AddEvent(ctx context.Context, e Event) error            // Level not info, warn or error: ErrInvalid
	Events(ctx context.Context, limit int) ([]Event, error) // newest first (all for limit <= 0)

	Close() error
}
