package wire

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels, one per status class the API answers with. Errors of the
// server's handlers wrap them, and a client's *Error matches the one of
// its status (errors.Is), so callers test the kind of failure, not text.
var (
	ErrBadRequest   = errors.New("api: bad request")            // 400
	ErrUnauthorized = errors.New("api: unauthorized")           // 401
	ErrForbidden    = errors.New("api: forbidden")              // 403
	ErrNotFound     = errors.New("api: not found")              // 404
	ErrMethod       = errors.New("api: method not allowed")     // 405
	ErrConflict     = errors.New("api: conflict")               // 409
	ErrTooLarge     = errors.New("api: request too large")      // 413
	ErrMediaType    = errors.New("api: unsupported media type") // 415
	ErrInternal     = errors.New("api: internal error")         // 500
	ErrUnavailable  = errors.New("api: service unavailable")    // 503
)

var statusErr = map[int]error{
	http.StatusBadRequest:            ErrBadRequest,
	http.StatusUnauthorized:          ErrUnauthorized,
	http.StatusForbidden:             ErrForbidden,
	http.StatusNotFound:              ErrNotFound,
	http.StatusMethodNotAllowed:      ErrMethod,
	http.StatusConflict:              ErrConflict,
	http.StatusRequestEntityTooLarge: ErrTooLarge,
	http.StatusUnsupportedMediaType:  ErrMediaType,
	http.StatusInternalServerError:   ErrInternal,
	http.StatusServiceUnavailable:    ErrUnavailable,
}

// Sentinel is the sentinel of an HTTP status, nil for a status the API
// does not answer with (502 from a proxy matches none).
func Sentinel(status int) error { return statusErr[status] }

// Error codes (ErrorDetail.Code).
const (
	CodeBadRequest     = "bad_request"
	CodeMalformedJSON  = "malformed_json"
	CodeTooLarge       = "too_large"
	CodeMediaType      = "unsupported_media_type"
	CodeNotFound       = "not_found"
	CodeMethod         = "method_not_allowed"
	CodeUnknownWorker  = "unknown_worker"
	CodeBadCertificate = "bad_certificate"
	CodeCertExpired    = "certificate_expired"
	CodeAttestation    = "attestation_refused"
	CodeSimulated      = "simulated_refused"
	CodeImage          = "image_not_allowlisted"
	CodePolicy         = "policy_refused"
	CodeBadSignature   = "bad_signature"
	CodeStale          = "stale"
	CodeReplay         = "replay"
	CodeBadModel       = "bad_model"
	CodeBadPrice       = "bad_price"
	CodeBadReceipt     = "bad_receipt"
	CodeConflict       = "conflict"
	CodeAdminDisabled  = "admin_disabled"
	CodeUnauthorized   = "unauthorized"
	CodeUnavailable    = "unavailable"
	CodeInternal       = "internal"
)

// Error is an error response as the client sees it.
type Error struct {
	Status  int    // HTTP status
	Code    string // ErrorDetail.Code; "" when the body was not ours
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("registry: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("registry: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Is matches the sentinel of e's status.
func (e *Error) Is(target error) bool {
	s := Sentinel(e.Status)
	return s != nil && s == target
}
