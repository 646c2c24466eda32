package measured

import (
	"crypto"
	"fmt"
	"sync"

	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/register"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// Fake is an in-memory Registers for tests: registers start as Regs, the
// log is Log, and Extend applies the extend rule to the runtime register.
// Err, when set, is returned by every method that can fail.
type Fake struct {
	K    eventlog.Kind
	Regs map[int][]byte
	Log  []byte
	Err  error

	mu       sync.Mutex
	Extended []runtime.Event
}

// NewFake returns a fake of kind k with every register zero.
func NewFake(k eventlog.Kind) *Fake {
	n := 4
	if k == eventlog.TPM {
		n = 24
	}
	f := &Fake{K: k, Regs: map[int][]byte{}}
	for i := 0; i < n; i++ {
		f.Regs[i] = make([]byte, Hash(k).Size())
	}
	return f
}

// Kind implements Registers.
func (f *Fake) Kind() eventlog.Kind { return f.K }

// Read implements Registers; it returns copies.
func (f *Fake) Read() (map[int][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	out := make(map[int][]byte, len(f.Regs))
	for i, v := range f.Regs {
		out[i] = append([]byte(nil), v...)
	}
	return out, nil
}

// EventLog implements Registers.
func (f *Fake) EventLog() ([]byte, error) {
	if f.Err != nil {
		return nil, f.Err
	}
	return f.Log, nil
}

// Extend implements Registers.
func (f *Fake) Extend(e runtime.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	h, i := Hash(f.K), RuntimeIndex(f.K)
	old, ok := f.Regs[i]
	if !ok {
		return fmt.Errorf("fake: no register %d", i)
	}
	f.Regs[i] = extend(h, old, e.Digest(h))
	f.Extended = append(f.Extended, e)
	return nil
}

func extend(h crypto.Hash, old, digest []byte) []byte {
	return register.Digest(h, old, digest)
}
