package hostlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrFlush is returned (wrapped) by Close when messages were left unsent.
var ErrFlush = errors.New("hostlink: not flushed")

const (
	// maxBatch is how many messages go in one write: a slow host still
	// sees progress, and Close's deadline can fall between writes.
	maxBatch   = 64
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// Link is an open channel to the host. Its methods never block on the
// host: messages wait in a bounded queue that a background goroutine
// writes out. When the host is slow or gone the oldest log lines are
// dropped, and their count goes out as a log line ("hostlink: N lines
// dropped") ahead of the next ones. The latest health state has a slot of
// its own, written before the logs, so a chatty guest's heartbeats are not
// lost behind its log lines.
type Link struct {
	o Options
	t transport

	wake      chan struct{} // cap 1: something was queued
	closing   chan struct{} // closed by Close: flush, then stop
	done      chan struct{} // closed when the writer goroutine ends
	ctx       context.Context
	abandon   context.CancelFunc // Close's deadline passed: stop dialling
	closeOnce sync.Once
	closeErr  error

	mu        sync.Mutex
	closed    bool
	abandoned bool
	conn      Conn // the writer's connection, for Close to break a stuck write
	logs      []Message
	dropped   int
	health    *Message // the latest health message not yet written
	state     State    // the last Health, which the heartbeat repeats
	detail    string
	writers   []*lineWriter
}

func start(o Options, t transport, c Conn) *Link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		o: o, t: t, conn: c,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, abandon: cancel,
	}
	go l.run(c)
	go l.heartbeat()
	return l
}

// Transport names the transport in use: "vsock" or
// "virtio-serial /dev/vportNpM".
func (l *Link) Transport() string { return l.t.name }

// Log sends a log line. Line breaks split it into several messages, and so
// does length beyond MaxText.
func (l *Link) Log(line string) {
	now := l.o.Clock.Now()
	l.mu.Lock()
	if !l.closed {
		for _, s := range splitLines(line) {
			l.push(Message{V: Version, Type: TypeLog, Time: now, Line: s})
		}
	}
	l.mu.Unlock()
	l.poke()
}

// Health reports the guest's state; every Interval from then on the
// heartbeat repeats the last one. Line breaks in detail become spaces. An
// unknown state is logged instead of sent.
func (l *Link) Health(state State, detail string) {
	detail = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(detail)
	detail = detail[:runeCut(detail, MaxText)]
	m := Message{V: Version, Type: TypeHealth, Time: l.o.Clock.Now(), State: state, Detail: detail}
	if err := m.Validate(); err != nil {
		l.Log("hostlink: Health: " + err.Error())
		return
	}
	l.mu.Lock()
	if !l.closed {
		l.state, l.detail, l.health = state, detail, &m
	}
	l.mu.Unlock()
	l.poke()
}

// Writer returns a writer whose output goes to the host as log lines; an
// unfinished line waits for its newline or Close. Each call returns a new
// writer with its own unfinished line: give each source (the init, the
// worker) its own. Writes never fail and never block on the host.
func (l *Link) Writer() io.Writer {
	w := &lineWriter{l: l}
	l.mu.Lock()
	l.writers = append(l.writers, w)
	l.mu.Unlock()
	return w
}

// Close flushes what is queued, the writers' unfinished lines included,
// for at most FlushTimeout, then closes the connection. It returns an error
// wrapping ErrFlush when messages were left unsent. Log and Health do
// nothing after Close.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		ws := l.writers
		l.mu.Unlock()
		for _, w := range ws {
			w.flush()
		}
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.closing)
		select {
		case <-l.done:
		case <-l.o.Clock.After(l.o.FlushTimeout):
			l.mu.Lock()
			l.abandoned = true
			c := l.conn
			l.mu.Unlock()
			l.abandon()
			if c != nil {
				c.Close() // ends a write the host stalls
			}
			<-l.done
		}
		l.mu.Lock()
		n := l.dropped + len(l.logs)
		if l.health != nil {
			n++
		}
		l.mu.Unlock()
		if n > 0 {
			l.closeErr = fmt.Errorf("%w: %d messages not sent within %s", ErrFlush, n, l.o.FlushTimeout)
		}
	})
	return l.closeErr
}

// push queues a log message, dropping the oldest when the queue is full;
// l.mu is held.
func (l *Link) push(m Message) {
	if len(l.logs) >= l.o.QueueLen {
		l.logs[0] = Message{}
		l.logs = l.logs[1:]
		l.dropped++
	}
	l.logs = append(l.logs, m)
}

func (l *Link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Link) heartbeat() {
	for {
		select {
		case <-l.closing:
			return
		case <-l.o.Clock.After(l.o.Interval):
		}
		now := l.o.Clock.Now()
		l.mu.Lock()
		if l.state != "" && l.health == nil && !l.closed {
			l.health = &Message{V: Version, Type: TypeHealth, Time: now, State: l.state, Detail: l.detail}
		}
		l.mu.Unlock()
		l.poke()
	}
}

// batch is what one write carries.
type batch struct {
	health  *Message
	dropped int // lines dropped before these logs, reported first
	logs    []Message
}

func (b batch) empty() bool { return b.health == nil && b.dropped == 0 && len(b.logs) == 0 }

// take moves the next batch out of the queue; l.mu is held.
func (l *Link) take() batch {
	n := min(len(l.logs), maxBatch)
	// push only appends or drops from the front: the taken messages are
	// never written again, so the batch can share the array.
	b := batch{health: l.health, dropped: l.dropped, logs: l.logs[:n:n]}
	l.logs = l.logs[n:]
	if len(l.logs) == 0 {
		l.logs = nil
	}
	l.health, l.dropped = nil, 0
	return b
}

// lost puts a batch that did not get through back into the counts: its
// logs count as dropped (part of them may have reached the host), its
// health is written again unless a newer one waits.
func (l *Link) lost(b batch) {
	l.mu.Lock()
	l.dropped += b.dropped + len(b.logs)
	if b.health != nil && l.health == nil {
		l.health = b.health
	}
	l.mu.Unlock()
}

// next waits for a batch; false when the link is closing and nothing is
// left.
func (l *Link) next() (batch, bool) {
	for {
		l.mu.Lock()
		b := l.take()
		closed := l.closed
		l.mu.Unlock()
		if !b.empty() {
			return b, true
		}
		if closed {
			return b, false
		}
		select {
		case <-l.wake:
		case <-l.closing:
		}
	}
}

// run is the writer goroutine: the only one writing to the host.
func (l *Link) run(c Conn) {
	defer close(l.done)
	fresh, backoff := true, minBackoff
	for {
		b, ok := l.next()
		if !ok {
			break
		}
		if c == nil {
			if c = l.reconnect(&backoff); c == nil {
				l.lost(b)
				return
			}
			fresh = true
		}
		if err := l.write(c, b, fresh); err != nil {
			c.Close()
			c = nil
			l.mu.Lock()
			l.conn = nil
			gone := l.abandoned
			l.mu.Unlock()
			l.lost(b)
			if gone {
				return
			}
			continue
		}
		fresh, backoff = false, minBackoff
	}
	if c != nil {
		c.Close()
	}
}

// reconnect dials again after a backoff, until it connects; nil once
// Close has given up.
func (l *Link) reconnect(backoff *time.Duration) Conn {
	for {
		select {
		case <-l.o.Clock.After(*backoff):
		case <-l.ctx.Done():
			return nil
		}
		*backoff = min(*backoff*2, maxBackoff)
		ctx, cancel := context.WithTimeout(l.ctx, dialTimeout)
		c, err := l.t.dial(ctx)
		cancel()
		if err != nil {
			continue // the host may come back; nowhere to report it but the host
		}
		l.mu.Lock()
		gone := l.abandoned
		if !gone {
			l.conn = c
		}
		l.mu.Unlock()
		if gone {
			c.Close()
			return nil
		}
		return c
	}
}

// write sends a batch. A new connection starts with a newline: on
// virtio-serial the host's stream outlives the guest's connection, and a
// line a failed write cut short ends there instead of spoiling the next
// message (the decoder skips blank lines).
func (l *Link) write(c Conn, b batch, fresh bool) error {
	var buf []byte
	if fresh {
		buf = append(buf, '\n')
	}
	add := func(m Message) {
		// Every message was built valid (Log splits, Health validates).
		if line, err := m.Encode(); err == nil {
			buf = append(buf, line...)
		}
	}
	if b.health != nil {
		add(*b.health)
	}
	if b.dropped > 0 {
		add(Message{V: Version, Type: TypeLog, Time: l.o.Clock.Now(), Line: fmt.Sprintf("hostlink: %d lines dropped", b.dropped)})
	}
	for _, m := range b.logs {
		add(m)
	}
	// The deadline is the runtime poller's, hence real time. Connections
	// without deadline support are written without one.
	_ = c.SetWriteDeadline(time.Now().Add(l.o.WriteTimeout))
	_, err := c.Write(buf)
	return err
}

// splitLines cuts text into message lines: at line breaks (a trailing one
// ends the last line; a carriage return inside a line becomes a space) and
// every MaxText bytes, at a UTF-8 boundary.
func splitLines(s string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		line = strings.ReplaceAll(strings.TrimSuffix(line, "\r"), "\r", " ")
		for len(line) > MaxText {
			cut := runeCut(line, MaxText)
			out = append(out, line[:cut])
			line = line[cut:]
		}
		out = append(out, line)
	}
	return out
}

// runeCut returns where to cut s to at most n bytes without splitting a
// UTF-8 sequence (invalid text is cut at n).
func runeCut[T string | []byte](s T, n int) int {
	if len(s) <= n {
		return len(s)
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return n
}

// lineWriter turns written bytes into log lines.
type lineWriter struct {
	l   *Link
	mu  sync.Mutex
	buf []byte // the unfinished line
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := append(w.buf, p...)
	rest := all
	if i := bytes.LastIndexByte(rest, '\n'); i >= 0 {
		w.l.Log(string(rest[:i+1]))
		rest = rest[i+1:]
	}
	for len(rest) > MaxText { // an unfinished line longer than a message goes out in pieces
		cut := runeCut(rest, MaxText)
		w.l.Log(string(rest[:cut]))
		rest = rest[cut:]
	}
	if cap(all) > 4*MaxText {
		w.buf = append([]byte(nil), rest...) // one huge write must not pin its memory
	} else {
		w.buf = append(w.buf[:0], rest...)
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.l.Log(string(w.buf))
		w.buf = nil
	}
}
