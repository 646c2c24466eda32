package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Typed errors; test with errors.Is. Verification failures also match the
// guest/ratls error underneath (ratls.ErrPolicy, ratls.ErrQuote, ...).
var (
	// ErrPolicy: a policy that cannot be used (does not parse, a bad
	// image hash, a simulator root that is not a certificate).
	ErrPolicy = errors.New("client: bad policy")
	// ErrRefused: a worker that local verification refused.
	ErrRefused = errors.New("client: worker refused by local verification")
	// ErrImage: the measured image hash is not on the local allowlist, or
	// TDX/simulated evidence measures none.
	ErrImage = errors.New("client: image hash not allowlisted locally")
	// ErrIdentity: the listed worker ID or key is not the certificate's.
	ErrIdentity = errors.New("client: listed worker ID is not the certificate's key")
	// ErrModel: the worker does not offer the model asked for.
	ErrModel = errors.New("client: worker does not offer the model")
	// ErrPinned: the peer of a connection is not the key verified from
	// the listing (the registry pointed the endpoint elsewhere).
	ErrPinned = errors.New("client: peer key is not the verified worker's")
	// ErrNoWorker: no verified worker offers the model.
	ErrNoWorker = errors.New("client: no verified worker")
	// ErrWorker: every verified worker tried failed before answering, or
	// a worker answered 5xx.
	ErrWorker = errors.New("client: worker failed")
	// ErrRequest: a worker refused the request (4xx other than 429).
	ErrRequest = errors.New("client: worker refused the request")
	// ErrPartial: the answer broke off after part of it was delivered;
	// it is not retried.
	ErrPartial = errors.New("client: answer broke off after partial output")
)

// APIError is an OpenAI-shaped error answer of a worker,
// {"error":{"message","type","code"}}.
type APIError struct {
	Status  int
	Type    string
	Code    string
	Message string
	Worker  string // the worker's ID
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	code := ""
	if e.Code != "" {
		code = " (" + e.Code + ")"
	}
	return fmt.Sprintf("worker %s: %d %s%s", short(e.Worker), e.Status, msg, code)
}

// Unwrap sorts the status: 5xx and 429 are ErrWorker (retried on another
// worker), other statuses ErrRequest.
func (e *APIError) Unwrap() error {
	if retryableStatus(e.Status) {
		return ErrWorker
	}
	return ErrRequest
}

// retryableStatus: the worker failed or is overloaded; another may not be.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests
}

// short is the first 12 hex digits of a worker ID, for tables and messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
