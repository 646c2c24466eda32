package qemukernel

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"unicode/utf16"

	"github.com/ulikunitz/xz/lzma"

	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
)

// lzmaSectionGUID is EDK2's LZMA custom decompress GUID
// (EE4E5898-3914-4259-9D6E-DC7BD79403CF) as it appears on disk.
var lzmaSectionGUID = []byte{0x98, 0x58, 0x4e, 0xee, 0x14, 0x39, 0x59, 0x42, 0x9d, 0x6e, 0xdc, 0x7b, 0xd7, 0x94, 0x03, 0xcf}

// TestPinnedFirmwareReadsNamedBlobs backs the default LegacyFirmware=false:
// the pinned OVMF.fd's compressed DXE volume holds QemuKernelLoaderFsDxe
// with the "etc/boot/" prefix QemuKernelFetchNamedBlobs matches fw_cfg file
// names against (edk2-stable202502), so with QEMU 10.0+ it measures
// etc/boot/kernel.
func TestPinnedFirmwareReadsNamedBlobs(t *testing.T) {
	fw := testinputs.Firmware(t)
	name := utf16.Encode([]rune("QemuKernelLoaderFsDxe\x00"))
	uiName := make([]byte, 2*len(name))
	for i, c := range name {
		binary.LittleEndian.PutUint16(uiName[2*i:], c)
	}
	var sawDriver, sawPrefix bool
	for off := 0; ; {
		i := bytes.Index(fw[off:], lzmaSectionGUID)
		if i < 0 {
			break
		}
		g := off + i
		off = g + len(lzmaSectionGUID)
		// EFI_GUID_DEFINED_SECTION: 3-byte size, type, GUID, DataOffset.
		if g < 4 || g+20 > len(fw) {
			continue
		}
		start := g - 4
		size := int(fw[start]) | int(fw[start+1])<<8 | int(fw[start+2])<<16
		dataOff := int(binary.LittleEndian.Uint16(fw[g+16:]))
		if fw[start+3] != 0x02 || dataOff < 24 || dataOff > size || start+size > len(fw) {
			continue
		}
		r, err := lzma.NewReader(bytes.NewReader(fw[start+dataOff : start+size]))
		if err != nil {
			t.Fatalf("LZMA section at %#x: %v", start, err)
		}
		fv, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("LZMA section at %#x: %v", start, err)
		}
		sawDriver = sawDriver || bytes.Contains(fv, uiName)
		sawPrefix = sawPrefix || bytes.Contains(fv, []byte("etc/boot/\x00"))
	}
	if !sawDriver {
		t.Fatal("no QemuKernelLoaderFsDxe in the firmware's compressed volumes")
	}
	if !sawPrefix {
		t.Fatal(`QemuKernelLoaderFsDxe without "etc/boot/": the firmware predates named blobs; set LegacyFirmware`)
	}
}
