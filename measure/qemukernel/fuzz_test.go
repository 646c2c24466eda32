package qemukernel

import (
	"testing"
)

var fuzzVersions = []string{"7.2", "8.2", "9.2", "10.0", "10.1", "10.2"}

// FuzzPatch: Patch never panics on arbitrary files and parameters, and when
// it succeeds it changes only the setup-header fields Fields reports.
func FuzzPatch(f *testing.F) {
	// Small seeds (setup_sects 4: 2560 bytes) keep mutation and
	// minimization fast.
	small := bzImage
	small.setupSects, small.size = 4, 0xa00
	low := small
	low.loadflags = 0
	old := small
	old.protocol, old.setupSects = 0x0206, 0
	for _, k := range []fakeKernel{small, low, old} {
		f.Add(k.build(), uint64(4096), uint64(typicalInitrd), typicalCmdline, uint8(1), uint8(0))
	}
	f.Add(small.build(), uint64(2560), uint64(0), "vga=0x317", uint8(4), uint8(7))
	f.Add([]byte("HdrS"), uint64(1), uint64(1), "", uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, kernel []byte, mib, initrd uint64, cmdline string, version, flags uint8) {
		p := Params{
			QEMUVersion:    fuzzVersions[int(version)%len(fuzzVersions)],
			MemoryMiB:      mib,
			InitrdSize:     initrd,
			Cmdline:        cmdline,
			TDX:            flags&1 != 0,
			LegacyFirmware: flags&2 != 0,
		}
		if flags&4 != 0 {
			p.Machine = MachinePC
		}
		if flags&8 != 0 {
			p.MaxRAMBelow4GMiB = uint64(flags) << 4
		}
		out, err := Patch(kernel, p)
		if err != nil {
			return
		}
		checkOnlyFieldsChanged(t, kernel, out, p)
	})
}
