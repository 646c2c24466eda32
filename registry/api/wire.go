package api

import (
	"crypto/ed25519"

	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// The wire format and the Go client live in registry/wire, which workers
// and clients link without the server's store and database drivers. They
// are re-exported here so that api.X keeps naming the same thing.

// Go client.
type (
	Client    = wire.Client
	Submitter = wire.Submitter
	Error     = wire.Error
)

// Request and response bodies.
type (
	Registration      = wire.Registration
	RegisterRequest   = wire.RegisterRequest
	Heartbeat         = wire.Heartbeat
	HeartbeatRequest  = wire.HeartbeatRequest
	HeartbeatResponse = wire.HeartbeatResponse
	ReceiptsRequest   = wire.ReceiptsRequest
	ReceiptsResponse  = wire.ReceiptsResponse
	WorkerInfo        = wire.WorkerInfo
	WorkersResponse   = wire.WorkersResponse
	PriceInfo         = wire.PriceInfo
	PricesResponse    = wire.PricesResponse
	PolicyInfo        = wire.PolicyInfo
	AllowRequest      = wire.AllowRequest
	AllowedImage      = wire.AllowedImage
	AllowlistResponse = wire.AllowlistResponse
	SetPriceRequest   = wire.SetPriceRequest
	Balance           = wire.Balance
	BalancesResponse  = wire.BalancesResponse
	PayoutItem        = wire.PayoutItem
	Batch             = wire.Batch
	PayoutsResponse   = wire.PayoutsResponse
	RunResponse       = wire.RunResponse
	ErrorBody         = wire.ErrorBody
	ErrorDetail       = wire.ErrorDetail
)

// Worker statuses.
const (
	StatusAttested = wire.StatusAttested
	StatusExpired  = wire.StatusExpired
	StatusOffline  = wire.StatusOffline
)

// Signatures.
const (
	RegisterDomain  = wire.RegisterDomain
	HeartbeatDomain = wire.HeartbeatDomain
	MaxClockSkew    = wire.MaxClockSkew
)

// WorkerID is wire.WorkerID: hex SHA-256 of the worker's public key.
func WorkerID(pub ed25519.PublicKey) string { return wire.WorkerID(pub) }

// SignRegistration is wire.SignRegistration.
func SignRegistration(reg Registration, key ed25519.PrivateKey) (RegisterRequest, error) {
	return wire.SignRegistration(reg, key)
}

// SignHeartbeat is wire.SignHeartbeat.
func SignHeartbeat(hb Heartbeat, key ed25519.PrivateKey) (HeartbeatRequest, error) {
	return wire.SignHeartbeat(hb, key)
}

// Sentinels: the same values as wire's, so errors.Is matches either name.
var (
	ErrBadRequest   = wire.ErrBadRequest
	ErrUnauthorized = wire.ErrUnauthorized
	ErrForbidden    = wire.ErrForbidden
	ErrNotFound     = wire.ErrNotFound
	ErrMethod       = wire.ErrMethod
	ErrConflict     = wire.ErrConflict
	ErrTooLarge     = wire.ErrTooLarge
	ErrMediaType    = wire.ErrMediaType
	ErrInternal     = wire.ErrInternal
	ErrUnavailable  = wire.ErrUnavailable
)

// Error codes (ErrorDetail.Code).
const (
	CodeBadRequest     = wire.CodeBadRequest
	CodeMalformedJSON  = wire.CodeMalformedJSON
	CodeTooLarge       = wire.CodeTooLarge
	CodeMediaType      = wire.CodeMediaType
	CodeNotFound       = wire.CodeNotFound
	CodeMethod         = wire.CodeMethod
	CodeUnknownWorker  = wire.CodeUnknownWorker
	CodeBadCertificate = wire.CodeBadCertificate
	CodeCertExpired    = wire.CodeCertExpired
	CodeAttestation    = wire.CodeAttestation
	CodeSimulated      = wire.CodeSimulated
	CodeImage          = wire.CodeImage
	CodePolicy         = wire.CodePolicy
	CodeBadSignature   = wire.CodeBadSignature
	CodeStale          = wire.CodeStale
	CodeReplay         = wire.CodeReplay
	CodeBadModel       = wire.CodeBadModel
	CodeBadPrice       = wire.CodeBadPrice
	CodeBadReceipt     = wire.CodeBadReceipt
	CodeConflict       = wire.CodeConflict
	CodeAdminDisabled  = wire.CodeAdminDisabled
	CodeUnauthorized   = wire.CodeUnauthorized
	CodeUnavailable    = wire.CodeUnavailable
	CodeInternal       = wire.CodeInternal
)
