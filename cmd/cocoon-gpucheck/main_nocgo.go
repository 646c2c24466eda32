//go:build !cgo || !linux

package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// errNoCgo is not gpu.ErrNoDriver: a build without cgo is a packaging
// mistake, never a reason to run without GPUs.
var errNoCgo = errors.New("built without cgo: NVML cannot be loaded (build with CGO_ENABLED=1 on linux)")

func main() {
	os.Exit(run(context.Background(), os.Args[1:], env{
		open:   func() (gpu.NVML, func() error, error) { return nil, nil, errNoCgo },
		now:    time.Now,
		stdout: os.Stdout,
		stderr: os.Stderr,
	}))
}
