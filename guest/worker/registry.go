package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gateway"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// Timing of the registry loop.
const (
	// retryMin and retryMax bound the backoff after a registry that did
	// not answer (network error, 5xx); each wait is jittered.
	retryMin = time.Second
	retryMax = time.Minute
	// refusedRetry is the wait after a registry refused the worker (4xx):
	// an operator has to act (allowlist the image, price the model), so
	// asking often only fills its event log.
	refusedRetry = 5 * time.Minute
	// defaultHeartbeat is the interval until the registry names one.
	defaultHeartbeat = 30 * time.Second
	// flushTimeout bounds the receipt flush at shutdown.
	flushTimeout = 5 * time.Second
	// maxLatencySamples bounds the latencies kept between heartbeats; the
	// median is over the first ones of a busy interval.
	maxLatencySamples = 4096
)

// join keeps the worker in the registry until ctx ends: it registers the
// current certificate (again after every renewal, and when a heartbeat
// finds the registry forgot the worker), sends a heartbeat at once after
// the first registration and then every interval, and, once registered,
// runs the receipt sender. A refusal is logged and asked again slowly; the
// worker serves throughout. When ctx ends it waits for drained (the last
// requests journalled) and flushes the receipts once.
func (w *Worker) join(ctx context.Context, drained <-chan struct{}) {
	log := w.deps.Logger.With("registry", w.cfg.Registry.URL)
	cl := &wire.Client{BaseURL: w.cfg.Registry.URL, HTTP: w.deps.HTTP, Now: w.deps.Now}
	sender := &receipt.Sender{Store: w.store, Submit: &routedSubmitter{cl: cl, self: w.PublicKey(), log: log},
		Clock: afterFunc(w.deps.After), Log: log, Interval: time.Duration(w.cfg.Registry.ReceiptsEveryS) * time.Second}
	var (
		senderDone chan struct{} // nil until the sender runs
		registered *tls.Certificate
		regWait    <-chan time.Time // set while waiting to retry
		beatWait   <-chan time.Time // set once registered
		backoff    = retryMin
		interval   = defaultHeartbeat
	)
	if s := w.cfg.Registry.HeartbeatS; s > 0 {
		interval = time.Duration(s) * time.Second
	}
	// New's first certificate left a signal: the loop registers it anyway.
	select {
	case <-w.certChanged:
	default:
	}
	for {
		if cert := w.Certificate(); cert != registered && regWait == nil {
			wait, ok := w.register(ctx, log, cl, cert, &backoff)
			switch {
			case ok:
				registered, backoff = cert, retryMin
				if senderDone == nil {
					// The first heartbeat goes out now: it tells the
					// registry the interval it wants.
					senderDone = make(chan struct{})
					go func() { defer close(senderDone); sender.Run(ctx) }()
					w.registeredOnce.Do(func() { close(w.registered) })
					beatWait = w.deps.After(0)
				}
			case ctx.Err() == nil:
				regWait = w.deps.After(wait)
			}
		}
		select {
		case <-ctx.Done():
			w.leave(log, sender, senderDone, drained)
			return
		case <-regWait:
			regWait = nil
		case <-w.certChanged:
			// A renewal: register the new certificate now, whatever
			// backoff the previous one was in.
			regWait, backoff = nil, retryMin
		case <-beatWait:
			var forgotten bool
			interval, forgotten = w.heartbeat(ctx, log, cl, interval)
			if forgotten {
				registered, regWait = nil, nil
			}
			beatWait = w.deps.After(interval)
		}
	}
}

// register asks the registry to list the worker with cert. On failure it
// says how long to wait before asking again, and advances backoff.
func (w *Worker) register(ctx context.Context, log *slog.Logger, cl *wire.Client, cert *tls.Certificate, backoff *time.Duration) (time.Duration, bool) {
	r := w.cfg.Registry
	info, err := cl.RegisterTLS(ctx, *cert, wire.Registration{
		Payout: r.Payout, Endpoint: w.cfg.Endpoint(), Models: []string{w.cfg.Model.ID},
		Price: r.Price, MinPayout: r.MinPayout, PayoutEveryS: r.PayoutEveryS,
	})
	if err == nil {
		log.Info("registered", "worker", info.ID, "status", info.Status, "endpoint", info.Endpoint,
			"cert_expires", info.CertExpires)
		return 0, true
	}
	if ctx.Err() != nil {
		return 0, false
	}
	if ae := (*wire.Error)(nil); errors.As(err, &ae) && refusal(ae.Status) {
		wait := w.jitter(refusedRetry)
		log.Error("the registry refused this worker; serving anyway, will ask again",
			"status", ae.Status, "code", ae.Code, "reason", ae.Message, "retry_in", wait)
		return wait, false
	}
	wait := w.jitter(*backoff)
	*backoff = min(*backoff*2, retryMax)
	log.Warn("registry unreachable; will retry", "err", err, "retry_in", wait)
	return wait, false
}

// refusal is a status that asking again soon will not change: a 4xx other
// than "too slow" and "too many".
func refusal(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// heartbeat sends the counts since the last accepted heartbeat and returns
// the next interval, and whether the registry no longer knows the worker
// (its books were reset): it must register again.
func (w *Worker) heartbeat(ctx context.Context, log *slog.Logger, cl *wire.Client, interval time.Duration) (time.Duration, bool) {
	b := w.beats.take()
	resp, err := cl.Heartbeat(ctx, w.key, wire.Heartbeat{Served: b.served, Failed: b.failed, LatencyMS: b.median()})
	if err != nil {
		// Counted again next time: served and failed are "since the
		// previous heartbeat the registry accepted".
		w.beats.restore(b)
		if ctx.Err() != nil {
			return interval, false
		}
		ae := (*wire.Error)(nil)
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			log.Warn("the registry does not know this worker any more; registering again", "code", ae.Code)
			return interval, true
		}
		log.Warn("heartbeat not delivered", "err", err)
		return interval, false
	}
	if w.cfg.Registry.HeartbeatS == 0 && resp.IntervalS > 0 {
		// A registry's answer is bounded: a bad one must neither flood it
		// nor silence the worker for days.
		interval = min(max(time.Duration(resp.IntervalS)*time.Second, time.Second), time.Hour)
	}
	return interval, false
}

// leave ends the sender and flushes the receipts once the server is
// drained: receipts of the last requests reach the registry before the
// process exits, unless it takes longer than flushTimeout.
func (w *Worker) leave(log *slog.Logger, sender *receipt.Sender, senderDone <-chan struct{}, drained <-chan struct{}) {
	<-drained
	if senderDone == nil {
		if n := w.store.Len(); n > 0 {
			log.Warn("never registered: receipts stay in the journal", "pending", n)
		}
		return
	}
	<-senderDone
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := sender.Flush(ctx); err != nil {
		log.Warn("receipts not flushed at shutdown; they stay in the journal", "err", err, "pending", w.store.Len())
	}
}

// jitter spreads d over [d/2, d) with deps.Rand, so that workers a registry
// outage stopped together do not come back together.
func (w *Worker) jitter(d time.Duration) time.Duration {
	half := d / 2
	var b [8]byte
	if half <= 0 {
		return d
	}
	if _, err := io.ReadFull(w.deps.Rand, b[:]); err != nil {
		return d
	}
	return half + time.Duration(binary.LittleEndian.Uint64(b[:])%uint64(half))
}

// beatStats counts the gateway's records between heartbeats.
type beatStats struct {
	mu sync.Mutex
	beatCounts
}

type beatCounts struct {
	served, failed int64
	latencies      []float64 // ms, of served requests
}

// add counts a record: a 200 is served (also when the client left midway:
// the worker did its part), a 5xx or 429 (overloaded) failed; other
// refusals (bad requests, clients gone before an answer) are the client's
// and count as neither.
func (s *beatStats) add(r gateway.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Status == http.StatusOK:
		s.served++
		if len(s.latencies) < maxLatencySamples {
			s.latencies = append(s.latencies, float64(r.End.Sub(r.Start))/float64(time.Millisecond))
		}
	case r.Status >= 500 || r.Status == http.StatusTooManyRequests:
		s.failed++
	}
}

// take returns the counts and starts new ones.
func (s *beatStats) take() beatCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.beatCounts
	s.beatCounts = beatCounts{}
	return c
}

// restore adds back counts a heartbeat failed to deliver.
func (s *beatStats) restore(c beatCounts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served += c.served
	s.failed += c.failed
	s.latencies = append(c.latencies, s.latencies...)
	s.latencies = s.latencies[:min(len(s.latencies), maxLatencySamples)]
}

// median is the median latency in ms; 0 when nothing was served.
func (c beatCounts) median() float64 {
	n := len(c.latencies)
	if n == 0 {
		return 0
	}
	l := slices.Clone(c.latencies)
	slices.Sort(l)
	if n%2 == 1 {
		return l[n/2]
	}
	return (l[n/2-1] + l[n/2]) / 2
}

// routedSubmitter submits each receipt to the worker that signed it. The
// journal outlives the process but the key does not: after a restart it
// may still hold receipts of the previous key, which the registry takes
// only under that key's worker ID (receipts authenticate themselves).
type routedSubmitter struct {
	cl   *wire.Client
	self ed25519.PublicKey
	log  *slog.Logger
}

// Submit sends the batch's first run of receipts of one key. Receipts of
// an earlier key that the registry refuses outright (4xx: that worker was
// never registered, or its certificate ended) can never be delivered, by
// anyone: they are acknowledged and dropped, with a warning, so that they
// do not hold back this key's receipts forever. This key's refused
// receipts stay and are retried (the next registration may fix them).
func (s *routedSubmitter) Submit(ctx context.Context, batch []receipt.Signed) (uint64, error) {
	key := batch[0].Receipt.Worker
	n := 1
	for n < len(batch) && batch[n].Receipt.Worker == key {
		n++
	}
	run := batch[:n]
	pub, err := hex.DecodeString(key)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return 0, errors.New("worker: journalled receipt with a malformed worker key")
	}
	through, err := s.cl.Submitter(pub).Submit(ctx, run)
	ae := (*wire.Error)(nil)
	if err != nil && !slices.Equal(pub, s.self) && errors.As(err, &ae) && refusal(ae.Status) {
		last := run[len(run)-1].Receipt.Seq
		s.log.Warn("dropping receipts of a previous worker key that the registry refuses",
			"worker", wire.WorkerID(pub), "count", len(run), "through", last, "code", ae.Code, "reason", ae.Message)
		return last, nil
	}
	return through, err
}

// afterFunc adapts Deps.After to receipt.Clock.
type afterFunc func(time.Duration) <-chan time.Time

func (f afterFunc) After(d time.Duration) <-chan time.Time { return f(d) }

// nowFunc adapts Deps.Now to gateway.Clock.
type nowFunc func() time.Time

func (f nowFunc) Now() time.Time { return f() }
