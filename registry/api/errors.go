package api

import (
	"fmt"

	"github.com/cocoon-appliance/cocoon/registry/wire"
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
	errs := []error{wire.Sentinel(e.status)}
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
