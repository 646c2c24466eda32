// Command cocoon-gpucheck is the GPU gate as a program: the guest init (a
// static binary without cgo) runs it before starting the worker and
// measures its output into RTMR3 as the "gpu-attestation" runtime event.
//
// It checks that every NVIDIA GPU is in confidential-computing mode
// (production, devtools off) and that its attestation report verifies
// against the pinned NVIDIA root (guest/gpu.Gate), then sets the GPUs'
// ready state.
//
// Output contract:
//
//   - stdout carries exactly the canonical result (guest/gpu.Result, JSON,
//     no trailing newline) when, and only when, the exit status is 0: the
//     init measures those bytes as they are;
//   - stderr carries one human-readable line;
//   - exit status 0: GPUs attested and ready; 1: refused (CC off, devtools,
//     bad evidence, NVML failure, or a build without cgo); 2: usage;
//     3: no NVIDIA driver or no GPU, which the init may accept only where
//     its policy runs without GPUs.
//
// It takes no arguments. NVML needs cgo: built with CGO_ENABLED=0 it always
// exits 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// Exit statuses.
const (
	exitReady   = 0
	exitRefused = 1
	exitUsage   = 2
	exitNoGPU   = 3
)

// env is the outside world of one run.
type env struct {
	// open returns an initialised NVML and the function that shuts it down.
	open           func() (gpu.NVML, func() error, error)
	rand           io.Reader
	now            func() time.Time
	stdout, stderr io.Writer
}

func run(ctx context.Context, args []string, e env) int {
	if len(args) != 0 {
		fmt.Fprintln(e.stderr, "usage: cocoon-gpucheck (no arguments)")
		return exitUsage
	}
	res, err := check(ctx, e)
	if err != nil {
		fmt.Fprintln(e.stderr, "cocoon-gpucheck: GPU gate refused:", err)
		if errors.Is(err, gpu.ErrNoDriver) || errors.Is(err, gpu.ErrNoGPU) {
			return exitNoGPU
		}
		return exitRefused
	}
	if _, err := e.stdout.Write(res); err != nil {
		fmt.Fprintln(e.stderr, "cocoon-gpucheck: writing the result:", err)
		return exitRefused
	}
	fmt.Fprintln(e.stderr, "cocoon-gpucheck: GPUs attested, ready state set")
	return exitReady
}

// check runs the gate and returns the canonical result.
func check(ctx context.Context, e env) (out []byte, err error) {
	nv, closeNVML, err := e.open()
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := closeNVML(); cerr != nil && err == nil {
			out, err = nil, cerr
		}
	}()
	res, err := gpu.Gate(ctx, nv, e.rand, nil, e.now())
	if err != nil {
		return nil, err
	}
	return res.Canonical()
}
