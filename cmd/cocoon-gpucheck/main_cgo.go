//go:build cgo && linux

package main

import (
	"context"
	"crypto/rand"
	"os"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
	"github.com/cocoon-appliance/cocoon/guest/gpu/nvml"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], env{
		open: func() (gpu.NVML, func() error, error) {
			lib, err := nvml.Open()
			if err != nil {
				return nil, nil, err
			}
			return lib, lib.Close, nil
		},
		rand:   rand.Reader,
		now:    time.Now,
		stdout: os.Stdout,
		stderr: os.Stderr,
	}))
}
