// Package boot runs the guest init's boot sequence. The sequence is data: a
// list of steps, each of which reads like the shell command it replaces, run
// in order with one console line each. The first failure stops the boot
// (the caller powers off: fail closed).
package boot

import (
	"context"
	"fmt"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"io"
	"time"

	"github.com/cocoon-appliance/cocoon/image/bootparams"
	"github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/init/verity"
)

// Step is one stage of the boot.
type Step interface {
	// String reads like the shell command the step replaces.
	String() string
	Run(ctx context.Context, s *State) error
}

// State is what the steps learn and hand on to later steps.
type State struct {
	Cmdline bootparams.Params // parsed /proc/cmdline
	Release string            // uname -r
	DataDev string            // /dev/vdXN holding the squashfs
	HashDev string            // /dev/vdXN holding the verity hash tree
	RootDev string            // /dev/dm-N, the verified root
	Mapper  verity.Mapper     // device-mapper control, once opened
	Config  *config.Config    // runtime config from the config disk
	// StaticConfig is the config's static part as received: what the
	// measurement step extends into RTMR3 / PCR 15.
	StaticConfig []byte
	// Registers is the measurement device once CheckMeasured opened it
	// (nil in an unmeasured development boot).
	Registers measured.Registers
	// GPUAttestation is the GPU gate's canonical result, measured as a
	// gpu-attestation runtime event (nil: no GPU checked).
	GPUAttestation []byte
	// Host is the channel to the host launcher once HostLink opened it
	// (nil without one).
	Host Channel
	Log  io.Writer        // console, for steps that report more than ok
	Now  func() time.Time // nil: time.Now
}

func (s *State) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Run runs the steps in order, printing
//
//	cocoon-init: [3/12] insmod … ok (12ms)
//
// per step, and on the first failure
//
//	cocoon-init: FATAL: <step>: <error>
//
// returning that error.
func Run(ctx context.Context, steps []Step, s *State, console io.Writer) error {
	if s.Log == nil {
		s.Log = console
	}
	for i, st := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
		t0 := s.now()
		if err := st.Run(ctx, s); err != nil {
			err = fmt.Errorf("%s: %w", st, err)
			fmt.Fprintf(console, "cocoon-init: FATAL: %v\n", err)
			return err
		}
		fmt.Fprintf(console, "cocoon-init: [%d/%d] %s ok (%dms)\n", i+1, len(steps), st, s.now().Sub(t0).Milliseconds())
	}
	return nil
}
