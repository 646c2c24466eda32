// Package nvml implements gpu.NVML with NVIDIA's go-nvml, which loads
// libnvidia-ml.so.1 at run time through cgo. It builds only with cgo on
// Linux (the rest of the project builds with CGO_ENABLED=0; there the
// package is empty). Without the driver, Open fails with gpu.ErrNoDriver.
package nvml
