package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// Record is the accounting of one completion request: every request to a
// completion endpoint produces exactly one, whether it was served, refused
// or cut short. Receipts (guest/receipt) are made from it.
type Record struct {
	// ID is the gateway's request ID, sent to the client in X-Request-Id
	// and, from the built-in engine, as the response's "id".
	ID       string
	Endpoint string // "/v1/chat/completions" or "/v1/completions"
	// Model is the served model the request named; "" when it named none
	// that is served (the name is client input and is not kept).
	Model string
	// Usage is what the engine counted. From an upstream it is the
	// upstream's own usage object, never an estimate of ours. For a
	// cancelled request it is the tokens actually generated before the
	// engine stopped (the built-in engine always knows; an upstream only
	// reports it in a usage chunk it may never send).
	Usage engine.Usage
	// Unaccounted is set when a response was served but its token counts
	// are unknown: the upstream sent no (or an unusable) usage object.
	// Usage is then zero, and a warning was logged.
	Unaccounted bool
	Start, End  time.Time
	// Status is the HTTP status sent; 499 (nginx's "client closed
	// request") when the client left before any was.
	Status int
	// Cancelled is set when the client went away before the response was
	// complete.
	Cancelled bool
	// RequestHash commits to the request body without revealing it:
	// HMAC-SHA256 under the worker's secret key (Options.HashKey). Zero
	// when the body was not read in full (refused before, or too large).
	//
	// A plain SHA-256 would not hide the body. Prompts are low-entropy:
	// "hi", a templated question with a name in it, a known document plus
	// a short instruction. Anyone who sees the hash (the registry, anyone
	// reading receipts) could hash candidate prompts until one matches: a
	// dictionary attack that needs no secret. Under a key held only inside
	// the attested worker, a guess can be tested only by the worker; the
	// client can still recognise its own receipt when the worker tells it
	// the commitment for its request (X-Request-Hash), and the worker can
	// open one to an auditor by revealing body and MAC for that request.
	RequestHash [32]byte
}

// Recorder receives Records. The gateway calls Record synchronously, once
// per completion request, after the response's last byte has been flushed
// to the client, after the request's concurrency slot is released, and
// before ServeHTTP returns: the client already holds its answer, but a
// slow Record still delays the end of a chunked stream (the terminating
// empty chunk goes out when ServeHTTP returns) and the next request on
// the same keep-alive connection. An implementation that does slow work
// (fsync, network) should queue and batch it (group commit) and return in
// microseconds. It must be safe for concurrent use.
type Recorder interface {
	Record(Record)
}

// RecorderFunc adapts a function to a Recorder.
type RecorderFunc func(Record)

// Record calls f(r).
func (f RecorderFunc) Record(r Record) { f(r) }

// MinHashKey is the shortest Options.HashKey accepted: the MAC is only as
// unguessable as its key.
const MinHashKey = 32

// hasher computes RequestHash. HMAC states are pooled: setting one up
// costs two SHA-256 blocks and some allocations, per request otherwise.
type hasher struct {
	pool sync.Pool
}

func newHasher(key []byte) *hasher {
	k := append([]byte(nil), key...)
	h := &hasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, k) }
	return h
}

func (h *hasher) sum(body []byte) (out [32]byte) {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write(body)
	m.Sum(out[:0])
	h.pool.Put(m)
	return out
}
