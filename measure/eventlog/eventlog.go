// Package eventlog reads the firmware's measurement log — the CC event log
// (CCEL, TDX: ACPI table "CCEL", /sys/firmware/acpi/tables/data/CCEL) or a
// TCG2 crypto-agile TPM log (/sys/kernel/security/tpm0/binary_bios_measurements)
// — replays it, compares the result with quoted registers, and with a
// predicted log event by event to name the first event that differs.
//
// Parsing is go-eventlog's (github.com/google/go-eventlog/tcg); replay and
// comparison are ours, on measure/register events.
package eventlog

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"

	elreg "github.com/google/go-eventlog/register"
	"github.com/google/go-eventlog/tcg"

	"github.com/cocoon-appliance/cocoon/measure/register"
)

// Errors.
var (
	ErrParse    = errors.New("eventlog: malformed log")
	ErrMismatch = errors.New("eventlog: replay does not match")
)

// Kind of log.
type Kind int

// Kinds.
const (
	// CCEL is a TDX log: SHA-384, MR index 0 is MRTD (never extended by
	// events), 1-4 are RTMR0-3 (UEFI 2.10 §38.4.1 EFI_CC_MEASUREMENT_PROTOCOL).
	CCEL Kind = iota
	// TPM is a TCG2 crypto-agile log, replayed in its SHA-256 bank.
	TPM
)

// Event is a logged event with its data.
type Event struct {
	register.Event
	Data []byte
}

// maxLog bounds what Parse accepts (CCEL areas are 64-256 KiB; TPM logs
// rarely exceed 1 MiB).
const maxLog = 16 << 20

// Parse returns the log's events, with Index meaning RTMR0-3 for a CCEL and
// the PCR for a TPM log. Trailing padding (CCELs are fixed-size areas) is
// accepted.
func Parse(raw []byte, kind Kind) (events []Event, err error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrParse)
	}
	if len(raw) > maxLog {
		return nil, fmt.Errorf("%w: %d bytes, max %d", ErrParse, len(raw), maxLog)
	}
	defer func() {
		// A parser library must not take the verifier down with it.
		if r := recover(); r != nil {
			events, err = nil, fmt.Errorf("%w: parser panic: %v", ErrParse, r)
		}
	}()
	el, err := tcg.ParseEventLog(raw, tcg.ParseOpts{AllowPadding: kind == CCEL})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrParse, err)
	}
	alg, h := elreg.HashSHA384, crypto.SHA384
	switch kind {
	case CCEL:
		alg = elreg.HashSHA384
	case TPM:
		alg, h = elreg.HashSHA256, crypto.SHA256
	}
	for _, e := range el.Events(alg) {
		idx := e.Index
		if kind == CCEL {
			if idx == 0 {
				continue // MRTD is built by the TDX module, not extended
			}
			idx--
			if idx > 3 {
				return nil, fmt.Errorf("%w: CC MR index %d beyond RTMR3", ErrParse, e.Index)
			}
		}
		if len(e.Digest) != h.Size() {
			return nil, fmt.Errorf("%w: event %d has a %d-byte digest, want %d", ErrParse, len(events), len(e.Digest), h.Size())
		}
		events = append(events, Event{
			Event: register.Event{Index: idx, Type: uint32(e.Type), Digest: e.Digest, Description: describe(e)},
			Data:  e.Data,
		})
	}
	return events, nil
}

// describe summarizes an event's data for printing: printable ASCII is shown
// (actions, tags), everything else as its length.
func describe(e tcg.Event) string {
	d := e.Data
	if len(d) > 0 && len(d) <= 80 && printable(d) {
		return fmt.Sprintf("%q", bytes.TrimRight(d, "\x00"))
	}
	return fmt.Sprintf("%d bytes of event data", len(d))
}

func printable(b []byte) bool {
	for _, c := range bytes.TrimRight(b, "\x00") {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// Replay extends n fresh registers with the events.
func Replay(kind Kind, events []Event) (*register.Bank, error) {
	h, n := crypto.SHA384, 4
	if kind == TPM {
		h, n = crypto.SHA256, 24
	}
	b := register.NewBank(h, n)
	for _, e := range events {
		if err := b.Extend(e.Event); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Check replays the log and compares every register given in want (by
// index; nil entries are skipped) with the replayed value.
func Check(kind Kind, events []Event, want map[int][]byte) error {
	b, err := Replay(kind, events)
	if err != nil {
		return err
	}
	var errs []error
	for i := 0; i < len(b.Regs); i++ {
		w, ok := want[i]
		if !ok || w == nil {
			continue
		}
		if !bytes.Equal(b.Regs[i], w) {
			n := 0
			for _, e := range events {
				if e.Index == i {
					n++
				}
			}
			errs = append(errs, fmt.Errorf("%w: register %d replays to %x over %d events, quoted %x", ErrMismatch, i, b.Regs[i], n, w))
		}
	}
	return errors.Join(errs...)
}

// Difference is the first event of one register where a log and a
// prediction disagree.
type Difference struct {
	Index     int
	Position  int // 0-based position among that register's events
	Predicted *register.Event
	Logged    *Event
}

func (d Difference) String() string {
	p, l := "none", "none"
	if d.Predicted != nil {
		p = d.Predicted.String()
	}
	if d.Logged != nil {
		l = d.Logged.Event.String()
	}
	return fmt.Sprintf("register %d, event %d:\n  predicted %s\n  logged    %s", d.Index, d.Position, p, l)
}

// Diff compares a log with a prediction register by register and returns
// the first differing event of each register that differs.
func Diff(predicted []register.Event, logged []Event) []Difference {
	byP := map[int][]register.Event{}
	byL := map[int][]Event{}
	maxIdx := 0
	for _, e := range predicted {
		byP[e.Index] = append(byP[e.Index], e)
		maxIdx = max(maxIdx, e.Index)
	}
	for _, e := range logged {
		byL[e.Index] = append(byL[e.Index], e)
		maxIdx = max(maxIdx, e.Index)
	}
	var out []Difference
	for i := 0; i <= maxIdx; i++ {
		ps, ls := byP[i], byL[i]
		for j := 0; j < max(len(ps), len(ls)); j++ {
			d := Difference{Index: i, Position: j}
			if j < len(ps) {
				d.Predicted = &ps[j]
			}
			if j < len(ls) {
				d.Logged = &ls[j]
			}
			if d.Predicted == nil || d.Logged == nil || !bytes.Equal(d.Predicted.Digest, d.Logged.Digest) {
				out = append(out, d)
				break
			}
		}
	}
	return out
}
