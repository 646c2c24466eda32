// Package measured is the guest side of measured boot: it checks that the
// firmware's event log replays to the live measurement registers (RTMRs on
// TDX, PCRs on the vTPM development path) and extends the runtime events of
// measure/runtime into RTMR3 / PCR 15, appending each to a runtime log a
// verifier can replay.
//
// The device sits behind Registers, with a TPM implementation (go-tpm), a
// TDX implementation (Linux sysfs) and a Fake for tests.
package measured

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/register"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// Errors.
var (
	// ErrNotSupported: the device or the kernel interface is absent.
	ErrNotSupported = errors.New("measured: not supported on this machine")
	// ErrMismatch: the firmware log does not replay to the live registers.
	ErrMismatch = errors.New("measured: event log does not match the live registers")
	// ErrUnexpected: a live register differs from what the config expects.
	ErrUnexpected = errors.New("measured: boot registers differ from the expected measurements")
)

// RuntimeLogPath is where the init appends the runtime events it extends
// (JSON lines of measure/runtime), for the agent to hand to a verifier.
const RuntimeLogPath = "/run/cocoon/runtime.log"

// Registers is the measured-state device.
type Registers interface {
	// Kind is eventlog.CCEL (TDX) or eventlog.TPM.
	Kind() eventlog.Kind
	// Read returns the live RTMR0-3 (TDX) or PCRs 0-23 of the SHA-256 bank (TPM).
	Read() (map[int][]byte, error)
	// EventLog returns the raw firmware log.
	EventLog() ([]byte, error)
	// Extend extends RTMR3 (TDX) or PCR 15 (TPM) with the event's digest
	// as measure/runtime defines it.
	Extend(e runtime.Event) error
}

// Hash is the bank a kind of device extends: SHA-384 RTMRs or SHA-256 PCRs.
func Hash(k eventlog.Kind) crypto.Hash {
	if k == eventlog.TPM {
		return crypto.SHA256
	}
	return crypto.SHA384
}

// RuntimeIndex is the register runtime events go to: RTMR3 or PCR 15.
func RuntimeIndex(k eventlog.Kind) int {
	if k == eventlog.TPM {
		return runtime.PCR
	}
	return runtime.RTMR
}

// Name names register i of a kind of device ("RTMR1", "PCR7").
func Name(k eventlog.Kind, i int) string {
	if k == eventlog.TPM {
		return fmt.Sprintf("PCR%d", i)
	}
	return fmt.Sprintf("RTMR%d", i)
}

// Check replays the firmware log and compares every register the log
// touches, except the runtime register (the init extends it after the
// check), with the live value.
func Check(r Registers) error { return CheckPrediction(r, nil) }

// CheckPrediction is Check; on a mismatch, when predicted is not nil, the
// error also names the first event of the mismatching register where the
// log and the prediction differ (eventlog.Diff).
func CheckPrediction(r Registers, predicted []register.Event) error {
	k := r.Kind()
	raw, err := r.EventLog()
	if err != nil {
		return fmt.Errorf("measured: reading the event log: %w", err)
	}
	events, err := eventlog.Parse(raw, k)
	if err != nil {
		return fmt.Errorf("measured: %w", err)
	}
	bank, err := eventlog.Replay(k, events)
	if err != nil {
		return fmt.Errorf("measured: replaying the event log: %w", err)
	}
	live, err := r.Read()
	if err != nil {
		return fmt.Errorf("measured: reading the registers: %w", err)
	}
	touched := map[int]bool{}
	for _, e := range events {
		touched[e.Index] = true
	}
	delete(touched, RuntimeIndex(k))
	idx := make([]int, 0, len(touched))
	for i := range touched {
		idx = append(idx, i)
	}
	sort.Ints(idx)

	var diffs map[int]eventlog.Difference
	if predicted != nil {
		diffs = map[int]eventlog.Difference{}
		for _, d := range eventlog.Diff(predicted, events) {
			diffs[d.Index] = d
		}
	}
	var msgs []string
	for _, i := range idx {
		got, ok := live[i]
		if !ok {
			msgs = append(msgs, fmt.Sprintf("%s: no live value (the log extends it %d times)", Name(k, i), count(events, i)))
			continue
		}
		if bytes.Equal(got, bank.Regs[i]) {
			continue
		}
		m := fmt.Sprintf("%s = %x, log replays to %x over %d events", Name(k, i), got, bank.Regs[i], count(events, i))
		if d, ok := diffs[i]; ok {
			m += "; first difference from the prediction: " + d.String()
		}
		msgs = append(msgs, m)
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %s", ErrMismatch, strings.Join(msgs, "; "))
	}
	return nil
}

// CheckExpected compares live registers with expected values (index →
// digest, of r's kind). Unlike Check it catches a boot whose log is honest
// but whose measured inputs are not the image the deployment was made for:
// a changed kernel, initrd or command line changes RTMR1/2 or PCR 4/9 and
// the log replays to the changed value all the same.
func CheckExpected(r Registers, want map[int][]byte) error {
	if len(want) == 0 {
		return nil
	}
	live, err := r.Read()
	if err != nil {
		return fmt.Errorf("measured: reading the registers: %w", err)
	}
	k := r.Kind()
	idx := make([]int, 0, len(want))
	for i := range want {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var msgs []string
	for _, i := range idx {
		got, ok := live[i]
		switch {
		case !ok:
			msgs = append(msgs, fmt.Sprintf("%s: no live value, expected %x", Name(k, i), want[i]))
		case !bytes.Equal(got, want[i]):
			msgs = append(msgs, fmt.Sprintf("%s = %x, expected %x", Name(k, i), got, want[i]))
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %s", ErrUnexpected, strings.Join(msgs, "; "))
	}
	return nil
}

func count(events []eventlog.Event, i int) int {
	n := 0
	for _, e := range events {
		if e.Index == i {
			n++
		}
	}
	return n
}

// Measure extends each event in order and appends it to log (one JSON line
// of measure/runtime per event). Each line is written after its extend
// succeeded, so the log never claims an extend that did not happen. If an
// extend fails the register holds exactly the events the log lists; if a
// write fails it holds one more, and the caller must stop (fail closed).
func Measure(r Registers, events runtime.Log, log io.Writer) error {
	if err := events.Validate(); err != nil {
		return fmt.Errorf("measured: %w", err)
	}
	for i, e := range events {
		line, err := runtime.Log{e}.Marshal()
		if err != nil {
			return fmt.Errorf("measured: event %d: %w", i, err)
		}
		if err := r.Extend(e); err != nil {
			return fmt.Errorf("measured: extending %s with event %d (%s): %w", Name(r.Kind(), RuntimeIndex(r.Kind())), i, e.Kind, err)
		}
		if _, err := log.Write(line); err != nil {
			return fmt.Errorf("measured: writing event %d (%s) to the runtime log: %w", i, e.Kind, err)
		}
	}
	return nil
}
