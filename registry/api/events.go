package api

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/store"
)

// Refusals become store events for the dashboard's "recent errors", at
// most eventBurst at once and one per eventEvery after that: a worker
// retrying a bad batch in a loop must not fill the books.
const (
	eventBurst   = 20
	eventEvery   = 3 * time.Second
	maxEventText = 500
	eventTimeout = 2 * time.Second
)

type eventLimiter struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	started    bool
	suppressed int
}

// take reports whether an event may be written at now, and how many were
// suppressed since the last one written.
func (l *eventLimiter) take(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		l.tokens, l.last, l.started = eventBurst, now, true
	}
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(eventBurst, l.tokens+float64(d)/float64(eventEvery))
		l.last = now
	}
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// event records a refusal (rate-limited). Its failure is logged, never
// returned: the request's answer does not depend on the audit trail.
func (s *Server) event(ctx context.Context, now time.Time, level, worker, msg string) {
	ok, suppressed := s.events.take(now)
	if !ok {
		return
	}
	msg = truncate(msg, maxEventText)
	if suppressed > 0 {
		msg += " (" + itoa(suppressed) + " earlier events suppressed)"
	}
	// The caller's request may be over (client gone); the event is not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
	defer cancel()
	if err := s.Store.AddEvent(ctx, store.Event{At: now, Level: level, Worker: worker, Message: msg}); err != nil {
		s.log().Error("event not recorded", "err", err)
	}
}

func itoa(i int) string    { return strconv.Itoa(i) }
func utoa(u uint64) string { return strconv.FormatUint(u, 10) }
