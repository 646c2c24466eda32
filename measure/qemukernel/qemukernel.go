package qemukernel

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

var (
	// ErrUnsupported: a kernel or QEMU version whose loading this package does
	// not model (no "HdrS", boot protocol before 2.06, QEMU before 7.2.1 or
	// after the last reviewed release).
	ErrUnsupported = errors.New("qemukernel: unsupported")
	// ErrParams: a configuration QEMU itself refuses (it exits at start-up),
	// or one that cannot be expressed on its command line.
	ErrParams = errors.New("qemukernel: invalid parameters")
)

// Machine names the QEMU machine family; the RAM split below 4 GiB, and so
// the initrd address, depends on it.
type Machine string

const (
	MachineQ35 Machine = "q35" // the zero value means q35; TDX requires it
	MachinePC  Machine = "pc"  // i440FX, qemu-system-x86_64's default
)

// Params is the QEMU invocation, as far as it reaches the setup header and
// the kernel blob OVMF reads.
type Params struct {
	// QEMUVersion is MAJOR.MINOR or MAJOR.MINOR.MICRO ("8.2", "10.1.2";
	// "7.2" means 7.2.1 or later, e.g. Debian bookworm's 7.2.x).
	QEMUVersion string
	// Machine is "q35" (also ""), "pc", or a versioned "pc-q35-*" /
	// "pc-i440fx-*" type.
	Machine Machine
	// MemoryMiB is -m in MiB.
	MemoryMiB uint64
	// MaxRAMBelow4GMiB is -machine max-ram-below-4g in MiB; 0 keeps QEMU's
	// default (4096 for q35, 3584 for pc).
	MaxRAMBelow4GMiB uint64
	// InitrdSize is the size of the -initrd file in bytes; 0 means no
	// -initrd (an empty initrd file is not modeled).
	InitrdSize uint64
	// Cmdline is -append.
	Cmdline string
	// TDX: -machine confidential-guest-support pointing at a tdx-guest
	// object. QEMU 10.2 and later leave the setup header alone for
	// confidential guests.
	TDX bool
	// LegacyFirmware: the firmware predates edk2-stable202502 and ignores
	// fw_cfg's etc/boot/* files (e.g. bookworm's OVMF 2022.11). The pinned
	// Debian trixie OVMF 2025.02 reads them: leave this false for it.
	LegacyFirmware bool
}

// Source says which fw_cfg items OVMF assembles its "kernel" file from.
type Source int

const (
	// SourcePatchedSetup: FW_CFG_SETUP_DATA, the setup sectors with QEMU's
	// header patches, followed by FW_CFG_KERNEL_DATA.
	SourcePatchedSetup Source = iota
	// SourceUnpatchedSetup: the same items, but QEMU (10.2+, confidential
	// guest) copied the setup sectors without its patches.
	SourceUnpatchedSetup
	// SourceEtcBootKernel: the fw_cfg file etc/boot/kernel, the -kernel
	// file as given (QEMU 10.0+ with edk2-stable202502+ firmware).
	SourceEtcBootKernel
)

func (s Source) String() string {
	switch s {
	case SourcePatchedSetup:
		return "setup+kernel blobs, setup header patched by QEMU"
	case SourceUnpatchedSetup:
		return "setup+kernel blobs, setup header not patched (QEMU >= 10.2, confidential guest)"
	case SourceEtcBootKernel:
		return "fw_cfg file etc/boot/kernel (unpatched)"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// Field is one setup-header field as boot.rst names it, at its file offset.
type Field struct {
	Name     string
	Offset   int
	Size     int // bytes, little-endian
	Old, New uint64
}

func (f Field) String() string {
	return fmt.Sprintf("%s@%#x: %#x -> %#x", f.Name, f.Offset, f.Old, f.New)
}

// Setup header offsets (Documentation/arch/x86/boot.rst, "The Real-Mode
// Kernel Header").
const (
	offSetupSects   = 0x1f1
	offVidMode      = 0x1fa
	offHeader       = 0x202 // "HdrS"
	offVersion      = 0x206
	offTypeOfLoader = 0x210
	offLoadflags    = 0x211
	offRamdiskImage = 0x218
	offRamdiskSize  = 0x21c
	offHeapEndPtr   = 0x224
	offCmdLinePtr   = 0x228
	offInitrdMax    = 0x22c
	offXloadflags   = 0x236
	headerEnd       = 0x26c // end of the 2.15 header (after kernel_info_offset)

	loadedHigh              = 0x01 // loadflags LOADED_HIGH
	canUseHeap              = 0x80 // loadflags CAN_USE_HEAP
	xlfCanBeLoadedAbove4G   = 1 << 1
	minProtocol             = 0x206
	qemuLoaderType          = 0xb0 // "High nybble = B reserved for QEMU"
	pcFWData                = 0x20000 + 0x8000
	q35MaxRAMBelow4GDefault = 4 << 30
	pcMaxRAMBelow4GDefault  = 0xe0000000
	maxMemoryMiB            = 1 << 32 // 4 PiB, keeps RAM sizes in uint64 bytes
)

type version struct{ major, minor, micro int }

func (v version) atLeast(major, minor int) bool {
	return v.major > major || v.major == major && v.minor >= minor
}

func parseVersion(s string) (version, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return version{}, fmt.Errorf("%w: QEMU version %q, want MAJOR.MINOR[.MICRO]", ErrParams, s)
	}
	var n [3]int
	n[2] = -1 // micro not given
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return version{}, fmt.Errorf("%w: QEMU version %q, want MAJOR.MINOR[.MICRO]", ErrParams, s)
		}
		n[i] = v
	}
	v := version{n[0], n[1], n[2]}
	switch {
	case !v.atLeast(7, 2) || v.major == 7 && v.minor == 2 && v.micro == 0:
		// 7.1 and 7.2.0 append an RNG seed as setup_data and point
		// setup_data (0x250) at it; reverted in 8.0 and 7.2.1.
		return version{}, fmt.Errorf("%w: QEMU %s: loaders before 7.2.1 (RNG seed setup_data) are not modeled", ErrUnsupported, s)
	case v.atLeast(11, 0):
		return version{}, fmt.Errorf("%w: QEMU %s: x86_load_linux reviewed up to 10.x only", ErrUnsupported, s)
	}
	return v, nil
}

// below4G is x86ms->below_4g_mem_size: pc_q35_init (hw/i386/pc_q35.c) and
// pc_init1 (hw/i386/pc_piix.c), unchanged from 7.2 to 10.x.
func below4G(p Params) (uint64, error) {
	if p.MemoryMiB == 0 || p.MemoryMiB > maxMemoryMiB {
		return 0, fmt.Errorf("%w: MemoryMiB %d, want 1..%d", ErrParams, p.MemoryMiB, maxMemoryMiB)
	}
	if p.MaxRAMBelow4GMiB > 4096 {
		return 0, fmt.Errorf("%w: max-ram-below-4g %d MiB, QEMU allows at most 4096", ErrParams, p.MaxRAMBelow4GMiB)
	}
	ram := p.MemoryMiB << 20
	max := p.MaxRAMBelow4GMiB << 20
	var lowmem uint64
	switch {
	case p.Machine == "" || p.Machine == MachineQ35 || strings.HasPrefix(string(p.Machine), "pc-q35-"):
		lowmem = 0xb0000000
		if ram >= 0xb0000000 {
			lowmem = 0x80000000
		}
		if max == 0 {
			max = q35MaxRAMBelow4GDefault
		}
		lowmem = min(lowmem, max)
	case p.Machine == MachinePC || strings.HasPrefix(string(p.Machine), "pc-i440fx-"):
		if p.TDX {
			return 0, fmt.Errorf("%w: TDX needs the q35 machine, not %q", ErrParams, p.Machine)
		}
		if max == 0 {
			max = pcMaxRAMBelow4GDefault
		}
		lowmem = max
		if ram >= max { // gigabyte_align, true for every machine type since pc-i440fx-2.0
			lowmem = min(lowmem, 0xc0000000)
		}
	default:
		return 0, fmt.Errorf("%w: machine %q, want q35 or pc", ErrParams, p.Machine)
	}
	return min(ram, lowmem), nil
}

// write is one store x86_load_linux makes into the header copy.
type write struct {
	name      string
	off, size int
	value     uint64
}

// plan returns QEMU's header writes, in x86_load_linux's order, and the
// source OVMF reads its kernel from. It checks everything QEMU checks
// before it starts the guest.
func plan(kernel []byte, p Params) ([]write, Source, error) {
	v, err := parseVersion(p.QEMUVersion)
	if err != nil {
		return nil, 0, err
	}
	if len(kernel) < headerEnd {
		return nil, 0, fmt.Errorf("%w: %d-byte kernel, shorter than a setup header (%#x bytes)", ErrUnsupported, len(kernel), headerEnd)
	}
	if !bytes.Equal(kernel[offHeader:offHeader+4], []byte("HdrS")) {
		return nil, 0, fmt.Errorf("%w: no \"HdrS\" at %#x (found %q): not a Linux bzImage", ErrUnsupported, offHeader, kernel[offHeader:offHeader+4])
	}
	protocol := binary.LittleEndian.Uint16(kernel[offVersion:])
	if protocol < minProtocol {
		return nil, 0, fmt.Errorf("%w: boot protocol %d.%02d, want 2.06 or later", ErrUnsupported, protocol>>8, protocol&0xff)
	}
	setupSects := int(kernel[offSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	if setupSize := (setupSects + 1) * 512; setupSize > len(kernel) {
		// QEMU: "qemu: invalid kernel header"
		return nil, 0, fmt.Errorf("%w: setup_sects %d means %d setup bytes, kernel is %d bytes", ErrUnsupported, kernel[offSetupSects], setupSize, len(kernel))
	}
	if strings.IndexByte(p.Cmdline, 0) >= 0 {
		return nil, 0, fmt.Errorf("%w: command line contains NUL", ErrParams)
	}
	low, err := below4G(p)
	if err != nil {
		return nil, 0, err
	}

	// Where the real-mode code and the command line go. Only kernels
	// without LOADED_HIGH (zImage) see the command line's length.
	realAddr, cmdlineAddr := uint64(0x10000), uint64(0x20000)
	if kernel[offLoadflags]&loadedHigh == 0 {
		cmdlineSize := uint64(len(p.Cmdline)+16) &^ 15
		realAddr, cmdlineAddr = 0x90000, 0x9a000-cmdlineSize
	}

	initrdMax := uint64(binary.LittleEndian.Uint32(kernel[offInitrdMax:]))
	if protocol >= 0x20c && binary.LittleEndian.Uint16(kernel[offXloadflags:])&xlfCanBeLoadedAbove4G != 0 {
		initrdMax = 0xffffffff
	}
	if low <= pcFWData {
		return nil, 0, fmt.Errorf("%w: %d bytes of RAM below 4 GiB, less than the %#x QEMU reserves for firmware data", ErrParams, low, pcFWData)
	}
	if initrdMax >= low-pcFWData {
		initrdMax = low - pcFWData - 1
	}

	w := []write{{name: "cmd_line_ptr", off: offCmdLinePtr, size: 4, value: cmdlineAddr}}
	if vga := strings.Index(p.Cmdline, "vga="); vga >= 0 {
		mode, err := vgaMode(p.Cmdline[vga+4:])
		if err != nil {
			return nil, 0, err
		}
		w = append(w, write{"vid_mode", offVidMode, 2, mode})
	}
	w = append(w,
		write{"type_of_loader", offTypeOfLoader, 1, qemuLoaderType},
		write{"loadflags", offLoadflags, 1, uint64(kernel[offLoadflags] | canUseHeap)},
		write{"heap_end_ptr", offHeapEndPtr, 2, (cmdlineAddr - realAddr - 0x200) & 0xffff},
	)
	if p.InitrdSize > 0 {
		if p.InitrdSize >= initrdMax {
			return nil, 0, fmt.Errorf("%w: initrd of %d bytes, QEMU wants less than initrd_max %d (this kernel, this memory)", ErrParams, p.InitrdSize, initrdMax)
		}
		addr := (initrdMax - p.InitrdSize) &^ 4095
		w = append(w,
			write{"ramdisk_image", offRamdiskImage, 4, addr},
			write{"ramdisk_size", offRamdiskSize, 4, p.InitrdSize},
		)
	}

	src := SourcePatchedSetup
	switch {
	case v.atLeast(10, 0) && !p.LegacyFirmware:
		src = SourceEtcBootKernel
	case v.atLeast(10, 2) && p.TDX:
		src = SourceUnpatchedSetup
	}
	return w, src, nil
}

// vgaMode parses the value after "vga=" as x86_load_linux does: "normal",
// "ext", "ask", or qemu_strtoui(base 0) of an unsigned number ending the
// string or followed by a space; anything else makes QEMU exit ("invalid
// 'vga=' kernel parameter"). strtoull also skips leading blanks and takes a
// sign; those spellings are refused as not modeled.
func vgaMode(s string) (uint64, error) {
	switch {
	case strings.HasPrefix(s, "normal"):
		return 0xffff, nil
	case strings.HasPrefix(s, "ext"):
		return 0xfffe, nil
	case strings.HasPrefix(s, "ask"):
		return 0xfffd, nil
	}
	if s != "" && strings.IndexByte(" \t\n\v\f\r+-", s[0]) >= 0 {
		return 0, fmt.Errorf("%w: vga=%q: strtoull's leading blanks and signs are not modeled", ErrUnsupported, s)
	}
	value := s
	if end := strings.IndexByte(s, ' '); end >= 0 {
		value = s[:end]
	}
	digits, base := value, 10
	switch {
	case len(value) > 1 && value[0] == '0' && (value[1] == 'x' || value[1] == 'X'):
		digits, base = value[2:], 16
	case len(value) > 1 && value[0] == '0':
		digits, base = value[1:], 8
	}
	n, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: vga=%q: QEMU exits (invalid 'vga=' kernel parameter)", ErrParams, value)
	}
	return n & 0xffff, nil // stw_le_p keeps the low 16 bits
}

// KernelSource says where OVMF's kernel file comes from for p.
func KernelSource(kernel []byte, p Params) (Source, error) {
	_, src, err := plan(kernel, p)
	return src, err
}

// Patch returns the kernel image bytes as OVMF sees them: the -kernel file
// with x86_load_linux's setup-header patches when OVMF assembles it from
// the patched setup blob, the file unchanged otherwise. The result is a new
// slice; kernel is not modified.
func Patch(kernel []byte, p Params) ([]byte, error) {
	w, src, err := plan(kernel, p)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(kernel)
	if src != SourcePatchedSetup {
		return out, nil
	}
	for _, x := range w {
		put(out[x.off:x.off+x.size], x.value)
	}
	return out, nil
}

// Fields lists every setup-header field whose bytes differ between kernel
// and Patch(kernel, p), in file order. It is empty when OVMF reads the
// kernel unpatched.
func Fields(kernel []byte, p Params) ([]Field, error) {
	w, src, err := plan(kernel, p)
	if err != nil || src != SourcePatchedSetup {
		return nil, err
	}
	var f []Field
	for _, x := range w {
		old := get(kernel[x.off : x.off+x.size])
		if old != x.value {
			f = append(f, Field{Name: x.name, Offset: x.off, Size: x.size, Old: old, New: x.value})
		}
	}
	slices.SortFunc(f, func(a, b Field) int { return cmp.Compare(a.Offset, b.Offset) })
	return f, nil
}

func put(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

func get(b []byte) uint64 {
	var v uint64
	for i := range b {
		v |= uint64(b[i]) << (8 * i)
	}
	return v
}

// LoadOptions returns the command line the kernel's EFI stub receives, and
// measures (PCR 9 / RTMR2, UTF-16LE with a terminating NUL): OVMF's
// X86QemuLoadImageLib (QemuLoadKernelImage) appends " initrd=initrd" when
// QEMU passes an initrd. QEMU itself passes -append unchanged
// (FW_CFG_CMDLINE_DATA, strlen+1 bytes).
func LoadOptions(p Params) string {
	if p.InitrdSize > 0 {
		return p.Cmdline + " initrd=initrd"
	}
	return p.Cmdline
}
