//go:build cgo && linux

package nvml

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// TestRealGPU runs the gate on this machine's GPUs through the real NVML
// and the pinned NVIDIA root. It needs an H100/H200 in CC mode inside a
// confidential VM, and root (the ready state is set). Enable with
// COCOON_GPU_TEST=1.
func TestRealGPU(t *testing.T) {
	if os.Getenv("COCOON_GPU_TEST") != "1" {
		t.Skip("set COCOON_GPU_TEST=1 to attest this machine's GPUs")
	}
	lib, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	state, err := lib.CCState()
	t.Logf("CC state %+v (environment %s), err %v", state, state.Environment, err)
	if v, err := lib.DriverVersion(); err == nil {
		t.Logf("driver %s", v)
	}
	n, _ := lib.DeviceCount()
	for i := range n {
		d, err := lib.Device(i)
		if err != nil {
			t.Logf("device %d: %v", i, err)
			continue
		}
		uuid, _ := d.UUID()
		name, _ := d.Name()
		bus, _ := d.PCIBusID()
		vbios, _ := d.VBIOSVersion()
		t.Logf("device %d: %s %s %s VBIOS %s", i, uuid, name, bus, vbios)
	}
	res, err := gpu.Gate(context.Background(), lib, rand.Reader, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := res.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", b)
}
