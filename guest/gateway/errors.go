package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Errors. Every error response wraps one of these; tests and callers use
// errors.Is.
var (
	ErrConfig        = errors.New("gateway: bad configuration")
	ErrBadJSON       = errors.New("gateway: request body is not a JSON object")
	ErrBadParam      = errors.New("gateway: invalid parameter")
	ErrUnsupported   = errors.New("gateway: unsupported parameter")
	ErrModelNotFound = errors.New("gateway: model not served")
	ErrBodyTooLarge  = errors.New("gateway: request body too large")
	ErrMediaType     = errors.New("gateway: unsupported content type")
	ErrMethod        = errors.New("gateway: method not allowed")
	ErrUnknownURL    = errors.New("gateway: unknown URL")
	ErrBusy          = errors.New("gateway: too many requests in flight")
	ErrOverloaded    = errors.New("gateway: engine overloaded")
	ErrUpstream      = errors.New("gateway: upstream unavailable")
	ErrInternal      = errors.New("gateway: internal error")
)

// OpenAI error types, as the "type" member of an error body.
const (
	typeInvalidRequest = "invalid_request_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
)

// apiError is an error the client sees: an HTTP status and OpenAI's error
// object, {"error":{"message","type","param","code"}}. Its message is
// written for the client, who sent the request over RA-TLS; it never
// quotes the request's content back (only parameter names and numbers), so
// it is safe to log too.
type apiError struct {
	status int
	typ    string
	param  string // "" is written as null
	code   string // "" is written as null
	msg    string
	err    error // the sentinel
}

func (e *apiError) Error() string { return e.err.Error() + ": " + e.msg }
func (e *apiError) Unwrap() error { return e.err }

func invalid(sentinel error, param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: param, msg: fmt.Sprintf(format, args...), err: sentinel}
}

func unsupported(param, why string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: param, code: "unsupported_parameter",
		msg: fmt.Sprintf("'%s' %s", param, why), err: ErrUnsupported}
}

// modelNotFound is OpenAI's answer to an unknown model: 404 with code
// model_not_found. The name is not echoed: it is client input, and this
// message may reach a log.
func modelNotFound() *apiError {
	return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, param: "model", code: "model_not_found",
		msg: "the model does not exist or is not served by this worker; GET /v1/models lists the served ones", err: ErrModelNotFound}
}

func internalError() *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: typeServer, msg: "internal error", err: ErrInternal}
}

// errorBody is the JSON form. Param and Code are pointers so that "absent"
// is null, as OpenAI writes it.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func (e *apiError) body() []byte {
	var b errorBody
	b.Error.Message, b.Error.Type = e.msg, e.typ
	if e.param != "" {
		b.Error.Param = &e.param
	}
	if e.code != "" {
		b.Error.Code = &e.code
	}
	out, _ := json.Marshal(b) // strings and pointers only: cannot fail
	return append(out, '\n')
}

// writeError sends e as the whole response; retryAfter > 0 adds a
// Retry-After header in whole seconds, rounded up.
func writeError(w http.ResponseWriter, e *apiError, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((retryAfter+time.Second-1)/time.Second), 10))
	}
	b := e.body()
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.status)
	w.Write(b)
}

// asAPIError turns any error into what the client sees; errors that are
// not already API errors become a 500 that says nothing about them.
func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	return internalError()
}
