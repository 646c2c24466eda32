// Package dashboard renders the registry's operator dashboard: one
// self-contained HTML page (inline CSS, no JavaScript, no external assets)
// showing the hot wallet, totals, workers, payout batches and recent events.
//
// The package only presents data. Callers build a View from the store and the
// chain and hand Handler a function that does so per request; keeping the
// data plain structs means the page can be tested without a database.
package dashboard

import "time"

// View is everything the page shows. Amounts are integer nanoton
// (1 TON = 1e9 nanoton) so they render exactly. Rows are shown in the order
// given; the caller decides what "recent" and "first" mean.
type View struct {
	Title     string    // page title; "Cocoon registry" when empty
	Generated time.Time // when the data was read; the page never calls time.Now
	Wallet    WalletInfo
	Totals    TotalsInfo
	Workers   []WorkerRow
	Batches   []BatchRow
	Events    []EventRow
}

// WalletInfo is the hot wallet that pays the workers.
type WalletInfo struct {
	Address string
	Balance uint64 // nanoton
	Chain   string // "emulated" (in-process ledger) or "lite" (real lite servers)
}

// TotalsInfo sums the books across all workers.
type TotalsInfo struct {
	Workers  int // registered
	Attested int // currently holding accepted evidence
	Earned   uint64
	Unpaid   uint64
	Paid     uint64
	Fees     uint64 // paid by the hot wallet on top of the amounts
}

// WorkerRow is one registered worker. ID, Endpoint, Models and ImageHash come
// from the worker itself and are untrusted; the template escapes them.
type WorkerRow struct {
	ID         string
	Endpoint   string
	Models     []string
	Kind       string // attestation kind: "tdx", "vtpm" or "sim"
	ImageHash  string
	Simulated  bool    // evidence is simulated: fine for tests, never for money
	Status     string  // "attested", "expired" or "offline"
	Reputation float64 // 0..1
	Price      uint64  // nanoton per 1M tokens
	Earned     uint64
	Unpaid     uint64
	Paid       uint64
	LastSeen   time.Time
}

// BatchRow is one payout batch on its way to the chain.
type BatchRow struct {
	ID      int64
	State   string // "planned", "signed", "sent", "confirmed" or "expired"
	Items   int
	Total   uint64
	Fees    uint64
	TxHash  string
	Updated time.Time
	Error   string
}

// EventRow is one entry of the registry's recent log.
type EventRow struct {
	At      time.Time
	Level   string // "error", "warn" or "info"
	Worker  string // may be empty for registry-wide events
	Message string
}
