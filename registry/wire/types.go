package wire

import (
	"encoding/json"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
)

// Registration is what a worker asks to be listed with. Its JSON, as
// json.Marshal writes this struct (fields in this order), is what the
// worker signs: do not reorder.
type Registration struct {
	// Certificate is the DER of the worker's RA-TLS certificate (base64
	// in JSON).
	Certificate []byte `json:"certificate"`
	// Payout is the TON address (user-friendly form) earnings go to.
	Payout string `json:"payout"`
	// Endpoint is the host:port of the worker's RA-TLS gateway.
	Endpoint string   `json:"endpoint"`
	Models   []string `json:"models"`
	// Price is the asking price, nanoton per 1,000,000 tokens.
	Price uint64 `json:"price"`
	// MinPayout (nanoton) and PayoutEveryS (seconds) are the worker's
	// payout threshold and schedule; 0 takes the operator's defaults.
	MinPayout    uint64 `json:"min_payout"`
	PayoutEveryS int64  `json:"payout_every_s"`
	// At is when it was signed, Unix milliseconds.
	At int64 `json:"at"`
}

// RegisterRequest is the body of POST /v1/workers.
type RegisterRequest struct {
	Registration Registration `json:"registration"`
	// Sig is the hex Ed25519 signature, by the certificate's key, over
	// "cocoon-register/v1\x00" || JSON(Registration).
	Sig string `json:"sig"`
}

// Heartbeat is a worker's liveness report. Its JSON is what the worker
// signs: do not reorder.
type Heartbeat struct {
	At        int64   `json:"at"`         // Unix milliseconds
	Served    int64   `json:"served"`     // requests served since the previous heartbeat
	Failed    int64   `json:"failed"`     // requests failed since the previous heartbeat
	LatencyMS float64 `json:"latency_ms"` // median latency over them; 0 when none
}

// HeartbeatRequest is the body of POST /v1/workers/{id}/heartbeat.
type HeartbeatRequest struct {
	Heartbeat Heartbeat `json:"heartbeat"`
	// Sig is over "cocoon-heartbeat/v1\x00" || JSON(Heartbeat).
	Sig string `json:"sig"`
}

// HeartbeatResponse answers a heartbeat.
type HeartbeatResponse struct {
	Status     string  `json:"status"`
	Reputation float64 `json:"reputation"`
	// IntervalS is when the registry expects the next one.
	IntervalS int64 `json:"interval_s"`
}

// ReceiptsRequest is the body of POST /v1/workers/{id}/receipts.
type ReceiptsRequest struct {
	Receipts []receipt.Signed `json:"receipts"`
}

// ReceiptsResponse acknowledges a batch: the registry holds every receipt
// of it, up to AckedThrough.
type ReceiptsResponse struct {
	AckedThrough uint64 `json:"acked_through"`
	Added        int    `json:"added"`
	Duplicates   int    `json:"duplicates"`
}

// Worker statuses.
const (
	StatusAttested = "attested" // certificate valid now, heard from recently
	StatusExpired  = "expired"  // certificate expired: it must register a renewed one
	StatusOffline  = "offline"  // no heartbeat or receipts for OfflineAfter
)

// WorkerInfo is a listed worker with everything a client needs to verify
// it itself: its certificate (the evidence is inside) and what the
// registry found.
type WorkerInfo struct {
	ID          string          `json:"id"`
	PublicKey   string          `json:"public_key"`
	Certificate []byte          `json:"certificate"`
	Evidence    json.RawMessage `json:"evidence"`
	Endpoint    string          `json:"endpoint"`
	Models      []string        `json:"models"`
	Price       uint64          `json:"price"`
	Payout      string          `json:"payout"`
	Status      string          `json:"status"`
	Reputation  float64         `json:"reputation"`
	Registered  time.Time       `json:"registered_at"`
	CertExpires time.Time       `json:"cert_expires"`
	LastSeen    *time.Time      `json:"last_seen,omitempty"`
	Heartbeats  int64           `json:"heartbeats"`
	Served      int64           `json:"served"`
	Failed      int64           `json:"failed"`
	LatencyMS   float64         `json:"latency_ms"`
}

// WorkersResponse is GET /v1/workers.
type WorkersResponse struct {
	Workers []WorkerInfo `json:"workers"`
}

// PriceInfo is one model's market.
type PriceInfo struct {
	Model string `json:"model"`
	// Price is the market price now, nanoton per 1M tokens.
	Price        uint64 `json:"price"`
	Base         uint64 `json:"base"`
	Min          uint64 `json:"min"`
	Max          uint64 `json:"max"`
	DemandTokens int64  `json:"demand_tokens"`
	LiveWorkers  int    `json:"live_workers"`
}

// PricesResponse is GET /v1/prices.
type PricesResponse struct {
	Prices  []PriceInfo `json:"prices"`
	WindowS int64       `json:"window_s"`
	At      time.Time   `json:"at"`
}

// PolicyInfo is GET /v1/policy: what the registry admits, for clients to
// check a worker's evidence against.
type PolicyInfo struct {
	ImageHashes    []string `json:"image_hashes"`
	Models         []string `json:"models"`
	AllowSimulated bool     `json:"allow_simulated"`
	// EvidenceKinds are the kinds of evidence the registry verifies.
	EvidenceKinds []string `json:"evidence_kinds"`
	// TDXPolicy is the measure/policy file the registry applies to TDX and
	// simulated quotes, with the allowlist as its image_hashes.
	TDXPolicy json.RawMessage `json:"tdx_policy,omitempty"`
	// VTPMPolicy is the guest/ratls vTPM policy file, when vTPM evidence
	// is accepted.
	VTPMPolicy json.RawMessage `json:"vtpm_policy,omitempty"`
	// SimRoot is the DER of the TDX simulator's root that simulated quotes
	// must chain to, when they are accepted (TEST key: development only).
	SimRoot []byte `json:"sim_root,omitempty"`
}

// AllowRequest is the body of PUT /v1/admin/allowlist/{hash}.
type AllowRequest struct {
	Note string `json:"note"`
}

// AllowedImage is an allowlisted image hash.
type AllowedImage struct {
	Hash  string    `json:"hash"`
	Note  string    `json:"note"`
	Added time.Time `json:"added"`
}

// AllowlistResponse is GET /v1/admin/allowlist.
type AllowlistResponse struct {
	Images []AllowedImage `json:"images"`
}

// SetPriceRequest is the body of PUT /v1/admin/prices/{model}: nanoton per
// 1M tokens, min <= base <= max.
type SetPriceRequest struct {
	Base uint64 `json:"base"`
	Min  uint64 `json:"min"`
	Max  uint64 `json:"max"`
}

// Balance is a worker's money, nanoton.
type Balance struct {
	Worker   string `json:"worker"`
	Earned   uint64 `json:"earned"`
	Unpaid   uint64 `json:"unpaid"`
	InFlight uint64 `json:"in_flight"`
	Paid     uint64 `json:"paid"`
}

// BalancesResponse is GET /v1/admin/balances.
type BalancesResponse struct {
	Balances []Balance `json:"balances"`
}

// PayoutItem is one transfer of a batch.
type PayoutItem struct {
	Worker  string `json:"worker"`
	Address string `json:"address"`
	Amount  uint64 `json:"amount"`
}

// Batch is a payout batch (registry/store.Batch without the message).
type Batch struct {
	ID        int64        `json:"id"`
	QueryID   uint32       `json:"query_id"`
	CreatedAt time.Time    `json:"created_at"`
	State     string       `json:"state"`
	Items     []PayoutItem `json:"items"`
	Total     uint64       `json:"total"`
	MsgHash   string       `json:"msg_hash,omitempty"`
	Sends     int          `json:"sends"`
	Fees      uint64       `json:"fees"`
	TxHash    string       `json:"tx_hash,omitempty"`
	Error     string       `json:"error,omitempty"`
	Updated   time.Time    `json:"updated"`
}

// PayoutsResponse is GET /v1/admin/payouts.
type PayoutsResponse struct {
	Batches []Batch `json:"batches"`
}

// RunResponse is POST /v1/admin/payouts/run: what the payout run reported.
type RunResponse struct {
	Result json.RawMessage `json:"result"`
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: Code is stable for programs, Message
// is for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
