package api

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

// httpError is a handler's failure: the status and code to answer with,
// the message the caller reads, and the cause for the log.
type httpError struct {
	status int
	code   string
	msg    string
	cause  error
}

func (e *httpError) Error() string { return e.msg }

// Unwrap gives the status's sentinel and the cause.
func (e *httpError) Unwrap() []error {
	errs := []error{statusErr[e.status]}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// fail makes a handler error; the message is formatted like fmt.Errorf,
// and the cause, if any, is kept for errors.Is.
func fail(status int, code string, cause error, format string, a ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, a...), cause: cause}
}

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
	s, ok := statusErr[e.Status]
	return ok && s == target
}
