package tdx

import (
	"bytes"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
	"github.com/cocoon-appliance/cocoon/measure/platform"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/measure/tdvf"
)

func fakeCapture(cpus int, mib uint64) *platform.Capture {
	return &platform.Capture{Schema: platform.Schema, CPUs: cpus, MemoryMiB: mib,
		FwCfg:         map[string][]byte{platform.TableLoader: []byte("loader"), platform.RSDP: []byte("RSD PTR 01234567890"), platform.Tables: []byte("DSDT")},
		BootVariables: []platform.Variable{{Name: "BootOrder", Data: []byte{0, 0}}, {Name: "Boot0000", Data: []byte("UiApp")}}}
}

func realInputs(t *testing.T, profile string) Inputs {
	t.Helper()
	fw := testinputs.Firmware(t)
	k, _ := testinputs.Kernel(t)
	prof, err := LookupProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	initrd := bytes.Repeat([]byte("initrd"), 400000)
	return Inputs{Firmware: fw, Kernel: k, Initrd: initrd, Cmdline: "console=ttyS0 ro", CPUs: 2, MemoryMiB: 4096,
		Profile: prof, Platform: fakeCapture(2, 4096), Runtime: runtime.Log{{Kind: runtime.KindBootComplete}}}
}

func regs(p *Prediction) [5][]byte {
	return [5][]byte{p.MRTD, p.RTMR[0], p.RTMR[1], p.RTMR[2], p.RTMR[3]}
}

// TestOneByteChangesOnlyItsRegisters flips one byte of each input and
// checks exactly the registers that should change do: the firmware code
// (BFV) → MRTD; the variable store (CFV) → RTMR0; an ACPI table → RTMR0;
// the kernel → RTMR1; the initrd and the command line → RTMR2; a runtime
// event → RTMR3.
func TestOneByteChangesOnlyItsRegisters(t *testing.T) {
	for _, profile := range []string{"qemu-10.1-tdx", "qemu-8.2-tdx"} {
		t.Run(profile, func(t *testing.T) {
			base := realInputs(t, profile)
			p0, err := Predict(base)
			if err != nil {
				t.Fatal(err)
			}
			md, err := tdvf.Parse(base.Firmware)
			if err != nil {
				t.Fatal(err)
			}
			var bfv, cfv tdvf.Section
			for _, s := range md.Sections {
				switch s.Type {
				case tdvf.BFV:
					bfv = s
				case tdvf.CFV:
					cfv = s
				}
			}
			flip := func(b []byte, at int) []byte {
				c := append([]byte(nil), b...)
				c[at] ^= 0x01
				return c
			}
			cases := []struct {
				name string
				mod  func(in *Inputs)
				want int // index into regs(): 0 MRTD, 1-4 RTMR0-3
			}{
				{"firmware BFV", func(in *Inputs) { in.Firmware = flip(in.Firmware, int(bfv.DataOffset)+0x1000) }, 0},
				{"firmware CFV", func(in *Inputs) { in.Firmware = flip(in.Firmware, int(cfv.DataOffset)+0x100) }, 1},
				{"ACPI tables", func(in *Inputs) {
					c := fakeCapture(2, 4096)
					c.FwCfg[platform.Tables] = []byte("DSDT2")
					in.Platform = c
				}, 1},
				{"kernel", func(in *Inputs) { in.Kernel = flip(in.Kernel, len(in.Kernel)/2) }, 2},
				{"initrd", func(in *Inputs) { in.Initrd = flip(in.Initrd, 1000) }, 3},
				{"cmdline", func(in *Inputs) { in.Cmdline = "console=ttyS1 ro" }, 3},
				{"runtime", func(in *Inputs) {
					in.Runtime = runtime.Log{{Kind: runtime.KindStaticConfig, Payload: []byte("{}")}, {Kind: runtime.KindBootComplete}}
				}, 4},
			}
			names := []string{"MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3"}
			for _, tc := range cases {
				in := base
				tc.mod(&in)
				p, err := Predict(in)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				r0, r := regs(p0), regs(p)
				for i := range r {
					if changed := !bytes.Equal(r0[i], r[i]); changed != (i == tc.want) {
						t.Errorf("%s: %s changed=%v, want changed only in %s", tc.name, names[i], changed, names[tc.want])
					}
				}
			}
			t.Logf("%s: MRTD %x\nRTMR1 %x\nRTMR2 %x\nkernel from %s, load options %q", profile, p0.MRTD, p0.RTMR[1], p0.RTMR[2], p0.KernelSource, p0.LoadOptions)
		})
	}
}

func TestWithoutCaptureRTMR0IsUnknown(t *testing.T) {
	in := realInputs(t, DefaultProfile)
	in.Platform = nil
	p, err := Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	if p.Known[0] || p.RTMR[0] != nil || !p.Known[1] || p.MRTD == nil {
		t.Fatalf("known %v", p.Known)
	}
	in.Platform = fakeCapture(4, 4096)
	if _, err := Predict(in); err == nil {
		t.Fatal("a capture for 4 vCPUs was accepted for 2")
	}
	if _, err := LookupProfile("qemu-1.0"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
