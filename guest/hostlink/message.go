package hostlink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the wire format version every message carries as "v".
const Version = 1

// Port is the vsock port the host launcher listens on (host CID 2).
const Port uint32 = 1024

// PortName is the virtio-serial port's name (QEMU virtserialport name=).
const PortName = "org.cocoon.host.0"

// Limits. JSON escaping makes a byte at most six (\u00XX), so a message
// whose text is within MaxText always encodes within MaxMessage.
const (
	MaxMessage = 64 << 10 // one encoded message, newline included
	MaxText    = 8 << 10  // Line and Detail, in bytes
)

// Type is a message's kind.
type Type string

// Message types.
const (
	TypeLog    Type = "log"
	TypeHealth Type = "health"
)

// State is the guest's health as it reports it.
type State string

// Health states.
const (
	Booting State = "booting"
	Ready   State = "ready"
	Failed  State = "failed"
)

// ErrBadMessage is returned (wrapped) for a message that breaks the wire
// format; the Decoder goes on with the next line.
var ErrBadMessage = errors.New("hostlink: bad message")

// Message is one line of the wire format:
//
//	{"v":1,"type":"log","time":"2026-11-02T10:00:00.5Z","line":"worker: listening on :8080"}
//	{"v":1,"type":"health","time":"2026-11-02T10:00:05Z","state":"ready"}
//
// Time is the guest's clock, for reading logs only: the host times
// heartbeats with its own clock.
type Message struct {
	V      int       `json:"v"`
	Type   Type      `json:"type"`
	Time   time.Time `json:"time"`
	Line   string    `json:"line,omitempty"`   // log
	State  State     `json:"state,omitempty"`  // health
	Detail string    `json:"detail,omitempty"` // health: why, in a few words
}

// Validate checks m against the wire format.
func (m Message) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, a...))
	}
	if m.V != Version {
		return bad("version %d, want %d", m.V, Version)
	}
	if m.Time.IsZero() {
		return bad("no time")
	}
	switch m.Type {
	case TypeLog:
		if m.State != "" || m.Detail != "" {
			return bad("log message with a state or detail")
		}
		return checkText("line", m.Line)
	case TypeHealth:
		if m.Line != "" {
			return bad("health message with a log line")
		}
		switch m.State {
		case Booting, Ready, Failed:
		default:
			return bad("state %q, want %s, %s or %s", m.State, Booting, Ready, Failed)
		}
		return checkText("detail", m.Detail)
	default:
		return bad("type %q, want %s or %s", m.Type, TypeLog, TypeHealth)
	}
}

func checkText(name, s string) error {
	if len(s) > MaxText {
		return fmt.Errorf("%w: %s of %d bytes, want at most %d", ErrBadMessage, name, len(s), MaxText)
	}
	if strings.ContainsAny(s, "\n\r") {
		return fmt.Errorf("%w: %s holds a line break", ErrBadMessage, name)
	}
	return nil
}

// Encode returns m as one line of the wire format, newline included.
func (m Message) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // log lines stay readable; the host escapes for its terminal
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if b.Len() > MaxMessage {
		return nil, fmt.Errorf("%w: %d bytes encoded, want at most %d", ErrBadMessage, b.Len(), MaxMessage)
	}
	return b.Bytes(), nil
}
