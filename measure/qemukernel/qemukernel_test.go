package qemukernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// fakeKernel is a bzImage-shaped file: a setup header at 0x1f1 and a
// pattern everywhere else, so any stray write shows.
type fakeKernel struct {
	protocol      uint16
	loadflags     byte
	xloadflags    uint16
	initrdAddrMax uint32
	setupSects    byte
	size          int
}

var bzImage = fakeKernel{protocol: 0x020f, loadflags: 0x01, xloadflags: 0x7f, initrdAddrMax: 0x7fffffff, setupSects: 39, size: 0x6000}

func (f fakeKernel) build() []byte {
	k := make([]byte, f.size)
	for i := range k {
		k[i] = byte(i*31 + 7)
	}
	k[offSetupSects] = f.setupSects
	copy(k[offHeader:], "HdrS")
	binary.LittleEndian.PutUint16(k[offVersion:], f.protocol)
	k[offLoadflags] = f.loadflags
	binary.LittleEndian.PutUint16(k[offXloadflags:], f.xloadflags)
	binary.LittleEndian.PutUint32(k[offInitrdMax:], f.initrdAddrMax)
	return k
}

// typicalCmdline is 286 bytes, like the appliance's.
var typicalCmdline = "console=ttyS0 panic=-1 rdinit=/init cocoon.pad=" + strings.Repeat("x", 286-47)

const typicalInitrd = 2394624 // 0x248a00

// The expected values below are worked out by hand from the rules in
// doc.go: initrd_max = min(0xffffffff or initrd_addr_max,
// below_4g - 0x28000 - 1), ramdisk_image = (initrd_max - size) &^ 0xfff.
func TestPatchFields(t *testing.T) {
	noXLF := bzImage
	noXLF.xloadflags = 0x01 // 64-bit kernel, but not XLF_CAN_BE_LOADED_ABOVE_4G
	oldProto := noXLF
	oldProto.protocol, oldProto.xloadflags = 0x020b, 0x02 // xloadflags ignored before 2.12
	low := bzImage
	low.loadflags = 0x00 // zImage: real mode at 0x90000, cmdline below 0x9a000
	for _, tc := range []struct {
		name   string
		kernel fakeKernel
		p      Params
		want   map[string]uint64
	}{
		{"q35 4096 MiB typical", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
			// below_4g 2 GiB: initrd_max 0x7ffd7fff; 0x7ffd7fff-0x248a00 = 0x7fd8f5ff
			map[string]uint64{"ramdisk_image": 0x7fd8f000, "ramdisk_size": 0x248a00, "type_of_loader": 0xb0, "loadflags": 0x81, "heap_end_ptr": 0xfe00, "cmd_line_ptr": 0x20000}},
		{"q35 2048 MiB", bzImage, Params{QEMUVersion: "9.1", MemoryMiB: 2048, InitrdSize: typicalInitrd},
			// RAM below 0xb0000000: below_4g = RAM = 2 GiB, same as above
			map[string]uint64{"ramdisk_image": 0x7fd8f000, "ramdisk_size": 0x248a00}},
		{"q35 16 GiB", bzImage, Params{QEMUVersion: "10.1", LegacyFirmware: true, MemoryMiB: 16384, InitrdSize: typicalInitrd},
			map[string]uint64{"ramdisk_image": 0x7fd8f000, "ramdisk_size": 0x248a00}},
		{"q35 2560 MiB", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 2560, InitrdSize: typicalInitrd},
			// below_4g 0xa0000000: initrd_max 0x9ffd7fff
			map[string]uint64{"ramdisk_image": 0x9fd8f000}},
		{"q35 2815 MiB", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 2815, InitrdSize: typicalInitrd},
			// 0xaff00000 < 0xb0000000: below_4g = RAM; 0xaff00000-0x28001 = 0xafed7fff
			map[string]uint64{"ramdisk_image": 0xafc8f000}},
		{"q35 2816 MiB", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 2816, InitrdSize: typicalInitrd},
			// RAM = 0xb0000000: lowmem drops to 2 GiB
			map[string]uint64{"ramdisk_image": 0x7fd8f000}},
		{"q35 2560 MiB without XLF_CAN_BE_LOADED_ABOVE_4G", noXLF, Params{QEMUVersion: "8.2", MemoryMiB: 2560, InitrdSize: typicalInitrd},
			// initrd_addr_max 0x7fffffff < 0x9ffd8000 stays: 0x7fffffff-0x248a00 = 0x7fdb75ff
			map[string]uint64{"ramdisk_image": 0x7fdb7000}},
		{"protocol 2.11 ignores xloadflags", oldProto, Params{QEMUVersion: "8.2", MemoryMiB: 2560, InitrdSize: typicalInitrd},
			map[string]uint64{"ramdisk_image": 0x7fdb7000}},
		{"q35 1024 MiB", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 1024, InitrdSize: typicalInitrd},
			// below_4g 1 GiB: initrd_max 0x3ffd7fff
			map[string]uint64{"ramdisk_image": 0x3fd8f000}},
		{"q35 max-ram-below-4g 1 GiB", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, MaxRAMBelow4GMiB: 1024, InitrdSize: typicalInitrd},
			map[string]uint64{"ramdisk_image": 0x3fd8f000}},
		{"pc 4096 MiB", bzImage, Params{QEMUVersion: "8.2", Machine: MachinePC, MemoryMiB: 4096, InitrdSize: typicalInitrd},
			// RAM >= 3.5 GiB: lowmem 3 GiB (gigabyte_align); initrd_max 0xbffd7fff
			map[string]uint64{"ramdisk_image": 0xbfd8f000}},
		{"pc 3072 MiB", bzImage, Params{QEMUVersion: "8.2", Machine: "pc-i440fx-8.2", MemoryMiB: 3072, InitrdSize: typicalInitrd},
			// RAM < 3.5 GiB: below_4g = RAM = 3 GiB
			map[string]uint64{"ramdisk_image": 0xbfd8f000}},
		{"pc 4096 MiB without XLF", noXLF, Params{QEMUVersion: "8.2", Machine: MachinePC, MemoryMiB: 4096, InitrdSize: typicalInitrd},
			map[string]uint64{"ramdisk_image": 0x7fdb7000}},
		{"1 MiB + 1 initrd", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, InitrdSize: 0x100001},
			// 0x7ffd7fff - 0x100001 = 0x7fed7ffe
			map[string]uint64{"ramdisk_image": 0x7fed7000, "ramdisk_size": 0x100001}},
		{"3 MiB + 124 initrd", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, InitrdSize: 3145852},
			map[string]uint64{"ramdisk_image": 0x7fcd7000, "ramdisk_size": 3145852}},
		{"no initrd", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096},
			// ramdisk fields keep the file's pattern bytes
			map[string]uint64{"heap_end_ptr": 0xfe00, "cmd_line_ptr": 0x20000}},
		{"zImage: cmdline length moves cmd_line_ptr", low, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: typicalCmdline},
			// cmdline_size = (286+16) &^ 15 = 0x120; 0x9a000-0x120 = 0x99ee0;
			// heap_end_ptr = 0x99ee0 - 0x90000 - 0x200 = 0x9ce0
			map[string]uint64{"cmd_line_ptr": 0x99ee0, "heap_end_ptr": 0x9ce0, "loadflags": 0x80}},
		{"vga=normal", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "quiet vga=normal"},
			map[string]uint64{"vid_mode": 0xffff}},
		{"vga=ext", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "vga=ext"}, map[string]uint64{"vid_mode": 0xfffe}},
		{"vga=ask", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "vga=ask"}, map[string]uint64{"vid_mode": 0xfffd}},
		{"vga hex", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "console=ttyS0 vga=0x317 quiet"}, map[string]uint64{"vid_mode": 0x317}},
		{"vga zero", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "vga=0"}, map[string]uint64{"vid_mode": 0}},
		{"vga uppercase hex", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "vga=0X31a"}, map[string]uint64{"vid_mode": 0x31a}},
		{"vga decimal", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "vga=791"}, map[string]uint64{"vid_mode": 0x317}},
		{"vga octal", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "vga=0317"}, map[string]uint64{"vid_mode": 0xcf}},
		{"vga= inside another word (strstr)", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "novga=5"}, map[string]uint64{"vid_mode": 5}},
		{"vga wider than 16 bits", bzImage, Params{QEMUVersion: "8.2", MemoryMiB: 4096, Cmdline: "vga=0x12345"}, map[string]uint64{"vid_mode": 0x2345}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.kernel.build()
			out, err := Patch(k, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				w := fieldByName(t, name)
				if got := get(out[w.off : w.off+w.size]); got != want {
					t.Errorf("%s = %#x, want %#x", name, got, want)
				}
			}
			checkOnlyFieldsChanged(t, k, out, tc.p)
		})
	}
}

var fieldLayout = map[string]write{
	"vid_mode":       {"vid_mode", offVidMode, 2, 0},
	"type_of_loader": {"type_of_loader", offTypeOfLoader, 1, 0},
	"loadflags":      {"loadflags", offLoadflags, 1, 0},
	"ramdisk_image":  {"ramdisk_image", offRamdiskImage, 4, 0},
	"ramdisk_size":   {"ramdisk_size", offRamdiskSize, 4, 0},
	"heap_end_ptr":   {"heap_end_ptr", offHeapEndPtr, 2, 0},
	"cmd_line_ptr":   {"cmd_line_ptr", offCmdLinePtr, 4, 0},
}

func fieldByName(t *testing.T, name string) write {
	t.Helper()
	w, ok := fieldLayout[name]
	if !ok {
		t.Fatalf("no field %q", name)
	}
	return w
}

// checkOnlyFieldsChanged: every byte that differs lies in a field Fields
// reports, Fields' old and new values match the bytes, and the length is
// unchanged.
func checkOnlyFieldsChanged(t *testing.T, k, out []byte, p Params) {
	t.Helper()
	if len(out) != len(k) {
		t.Fatalf("Patch changed the length: %d -> %d", len(k), len(out))
	}
	fields, err := Fields(k, p)
	if err != nil {
		t.Fatal(err)
	}
	owner := map[int]Field{}
	for _, f := range fields {
		if got := get(k[f.Offset : f.Offset+f.Size]); got != f.Old {
			t.Errorf("%v: file holds %#x", f, got)
		}
		if got := get(out[f.Offset : f.Offset+f.Size]); got != f.New {
			t.Errorf("%v: patched image holds %#x", f, got)
		}
		for i := f.Offset; i < f.Offset+f.Size; i++ {
			owner[i] = f
		}
	}
	for i := range k {
		if k[i] == out[i] {
			continue
		}
		if _, ok := owner[i]; !ok {
			t.Errorf("byte %#x changed (%#x -> %#x) outside every reported field", i, k[i], out[i])
		}
	}
}

func TestKernelSource(t *testing.T) {
	k := bzImage.build()
	for _, tc := range []struct {
		p    Params
		want Source
	}{
		{Params{QEMUVersion: "7.2"}, SourcePatchedSetup},
		{Params{QEMUVersion: "7.2.22", TDX: true}, SourcePatchedSetup},
		{Params{QEMUVersion: "8.2", TDX: true}, SourcePatchedSetup},
		{Params{QEMUVersion: "9.2.4"}, SourcePatchedSetup},
		{Params{QEMUVersion: "10.0"}, SourceEtcBootKernel},
		{Params{QEMUVersion: "10.0", LegacyFirmware: true}, SourcePatchedSetup},
		{Params{QEMUVersion: "10.1", TDX: true}, SourceEtcBootKernel},
		{Params{QEMUVersion: "10.1", TDX: true, LegacyFirmware: true}, SourcePatchedSetup},
		{Params{QEMUVersion: "10.2", TDX: true, LegacyFirmware: true}, SourceUnpatchedSetup},
		{Params{QEMUVersion: "10.2", LegacyFirmware: true}, SourcePatchedSetup},
		{Params{QEMUVersion: "10.2", TDX: true}, SourceEtcBootKernel},
	} {
		tc.p.MemoryMiB = 4096
		tc.p.InitrdSize = typicalInitrd
		got, err := KernelSource(k, tc.p)
		if err != nil {
			t.Fatalf("%+v: %v", tc.p, err)
		}
		if got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.p, got, tc.want)
		}
		out, err := Patch(k, tc.p)
		if err != nil {
			t.Fatal(err)
		}
		fields, _ := Fields(k, tc.p)
		if patched := !bytes.Equal(out, k); patched != (tc.want == SourcePatchedSetup) || patched != (len(fields) > 0) {
			t.Errorf("%+v: patched=%v, %d fields, source %v", tc.p, patched, len(fields), got)
		}
	}
}

func TestPatchErrors(t *testing.T) {
	good := Params{QEMUVersion: "8.2", MemoryMiB: 4096, InitrdSize: typicalInitrd}
	mod := func(f func(*fakeKernel)) []byte { k := bzImage; f(&k); return k.build() }
	with := func(f func(*Params)) Params { p := good; f(&p); return p }
	for _, tc := range []struct {
		name   string
		kernel []byte
		p      Params
		want   error
		msg    string
	}{
		{"empty kernel", nil, good, ErrUnsupported, "0-byte kernel"},
		{"no HdrS", func() []byte { k := bzImage.build(); copy(k[offHeader:], "MZ\x00\x00"); return k }(), good, ErrUnsupported, `no "HdrS" at 0x202`},
		{"protocol 2.05", mod(func(k *fakeKernel) { k.protocol = 0x0205 }), good, ErrUnsupported, "boot protocol 2.05, want 2.06 or later"},
		{"setup beyond file", mod(func(k *fakeKernel) { k.setupSects = 200 }), good, ErrUnsupported, "setup_sects 200 means 102912 setup bytes, kernel is 24576 bytes"},
		{"QEMU 7.2.0", bzImage.build(), with(func(p *Params) { p.QEMUVersion = "7.2.0" }), ErrUnsupported, "before 7.2.1"},
		{"QEMU 6.2", bzImage.build(), with(func(p *Params) { p.QEMUVersion = "6.2" }), ErrUnsupported, "before 7.2.1"},
		{"QEMU 11.0", bzImage.build(), with(func(p *Params) { p.QEMUVersion = "11.0" }), ErrUnsupported, "reviewed up to 10.x"},
		{"bad version", bzImage.build(), with(func(p *Params) { p.QEMUVersion = "v8" }), ErrParams, `QEMU version "v8"`},
		{"no version", bzImage.build(), with(func(p *Params) { p.QEMUVersion = "" }), ErrParams, "MAJOR.MINOR"},
		{"no memory", bzImage.build(), with(func(p *Params) { p.MemoryMiB = 0 }), ErrParams, "MemoryMiB 0, want 1..4294967296"},
		{"too much memory", bzImage.build(), with(func(p *Params) { p.MemoryMiB = 1 << 40 }), ErrParams, "MemoryMiB 1099511627776"},
		{"max-ram-below-4g too big", bzImage.build(), with(func(p *Params) { p.MaxRAMBelow4GMiB = 5000 }), ErrParams, "at most 4096"},
		{"unknown machine", bzImage.build(), with(func(p *Params) { p.Machine = "microvm" }), ErrParams, `machine "microvm"`},
		{"tdx on pc", bzImage.build(), with(func(p *Params) { p.Machine, p.TDX = MachinePC, true }), ErrParams, "TDX needs the q35 machine"},
		{"NUL in cmdline", bzImage.build(), with(func(p *Params) { p.Cmdline = "a\x00b" }), ErrParams, "NUL"},
		{"initrd too large", bzImage.build(), with(func(p *Params) { p.InitrdSize = 0x7ffd7fff }), ErrParams, "initrd of 2147319807 bytes, QEMU wants less than initrd_max 2147319807"},
		{"vga word", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=foo" }), ErrParams, `vga="foo"`},
		{"vga trailing junk", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=12abc x" }), ErrParams, `vga="12abc"`},
		{"vga signed", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=-1" }), ErrUnsupported, `vga="-1": strtoull's leading blanks and signs`},
		{"vga blank", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga= 5" }), ErrUnsupported, `vga=" 5"`},
		{"vga empty", bzImage.build(), with(func(p *Params) { p.Cmdline = "quiet vga=" }), ErrParams, `vga="": QEMU exits`},
		{"vga bad octal", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=08" }), ErrParams, `vga="08"`},
		{"vga tab", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=5\tquiet" }), ErrParams, `vga="5\tquiet"`},
		{"vga 0x alone", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=0x" }), ErrParams, `vga="0x"`},
		{"vga go-only syntax", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=0b101" }), ErrParams, `vga="0b101"`},
		{"vga go underscore", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=1_000" }), ErrParams, `vga="1_000"`},
		{"vga beyond 32 bits", bzImage.build(), with(func(p *Params) { p.Cmdline = "vga=4294967296" }), ErrParams, `vga="4294967296"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Patch(tc.kernel, tc.p)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Patch error %v, want %v saying %q", err, tc.want, tc.msg)
			}
			if _, err := Fields(tc.kernel, tc.p); !errors.Is(err, tc.want) {
				t.Errorf("Fields error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPatchDoesNotModifyInput(t *testing.T) {
	k := bzImage.build()
	orig := bytes.Clone(k)
	if _, err := Patch(k, Params{QEMUVersion: "8.2", MemoryMiB: 4096, InitrdSize: typicalInitrd}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k, orig) {
		t.Fatal("Patch modified its input")
	}
}

func ramdiskImage(t *testing.T, k []byte, p Params) uint64 {
	t.Helper()
	out, err := Patch(k, p)
	if err != nil {
		t.Fatal(err)
	}
	return get(out[offRamdiskImage : offRamdiskImage+4])
}

// Memory moves the initrd only while below_4g_mem_size follows RAM: on q35
// below 2816 MiB (0xb0000000).
func TestMemoryThreshold(t *testing.T) {
	k := bzImage.build()
	at := func(mib uint64) uint64 {
		return ramdiskImage(t, k, Params{QEMUVersion: "9.1", MemoryMiB: mib, InitrdSize: typicalInitrd})
	}
	if at(2815) == at(2816) {
		t.Error("2815 and 2816 MiB place the initrd alike; the q35 split moves at 0xb0000000")
	}
	if at(2048) == at(2049) {
		t.Error("2048 and 2049 MiB place the initrd alike; below 2816 MiB RAM itself is the limit")
	}
	for _, mib := range []uint64{2048, 2816, 4096, 16384, 1 << 20} {
		if at(mib) != at(4096) {
			t.Errorf("%d MiB places the initrd at %#x, 4096 MiB at %#x", mib, at(mib), at(4096))
		}
	}
}

func TestInitrdSizeMovesRamdisk(t *testing.T) {
	k := bzImage.build()
	p := Params{QEMUVersion: "8.2", MemoryMiB: 4096, InitrdSize: typicalInitrd}
	a, err := Fields(k, p)
	if err != nil {
		t.Fatal(err)
	}
	p.InitrdSize += 4096
	b, err := Fields(k, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("fields %v vs %v", a, b)
	}
	for i := range a {
		changed := a[i].New != b[i].New
		if want := a[i].Name == "ramdisk_image" || a[i].Name == "ramdisk_size"; changed != want {
			t.Errorf("%s: changed=%v with the initrd size (%#x -> %#x)", a[i].Name, changed, a[i].New, b[i].New)
		}
	}
}

func TestLoadOptions(t *testing.T) {
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{Cmdline: "console=ttyS0", InitrdSize: 1}, "console=ttyS0 initrd=initrd"},
		{Params{Cmdline: "console=ttyS0"}, "console=ttyS0"},
		{Params{InitrdSize: 1}, " initrd=initrd"},
	} {
		if got := LoadOptions(tc.p); got != tc.want {
			t.Errorf("LoadOptions(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
