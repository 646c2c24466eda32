package qemukernel

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/authenticode"
	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
)

// observed are PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION digests read from the
// event log of real boots (2026-11) of the pinned vmlinuz-6.12.107+deb13-amd64
// (TCG, -smp 2, swtpm 0.7.1 with SHA-256 and SHA-384 banks, the initrd a
// gzip'd cpio zero-padded to the size given; TestBoot does the same boots):
//
//   - QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3) with the pinned OVMF
//     2025.02-8+deb13u1 OVMF.fd as -bios: every row;
//   - the same q35 4096 MiB boot with bookworm's OVMF 2022.11-6+deb12u2:
//     the same digests;
//   - QEMU 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1, run from an extracted
//     trixie tree) with OVMF 2022.11: the same patched digests (q35 4096 and
//     2560 MiB, pc 4096 MiB); with the pinned OVMF 2025.02: the unpatched
//     file's digests (the "etc/boot/kernel" rows).
var observed = []struct {
	name           string
	p              Params
	sha256, sha384 string
}{
	{"q35 4096 MiB typical", Params{QEMUVersion: "7.2.22", MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"f254b9ebadc98206d53f75f0f5bc3c66a39cf139fc9a9102460da6728c6b30f4",
		"a5bf06d3aedb56ee4b8dd483b2e8759eb8b894f21cc63d3d0da5376bc0bac9c424f15d97a43175788393be0a8a1a8e63"},
	{"q35 16384 MiB", Params{QEMUVersion: "7.2.22", MemoryMiB: 16384, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"f254b9ebadc98206d53f75f0f5bc3c66a39cf139fc9a9102460da6728c6b30f4",
		"a5bf06d3aedb56ee4b8dd483b2e8759eb8b894f21cc63d3d0da5376bc0bac9c424f15d97a43175788393be0a8a1a8e63"},
	{"q35 2560 MiB", Params{QEMUVersion: "7.2.22", MemoryMiB: 2560, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"d42c3c287f544d28b7482ddcb2a2ee0f5ae317720f3034da912dcbc69e934c76",
		"2291260a5bcbbcc7b367662ff7b33da9762311eb36c449a2c0411535dee2f12d02b2ffae8fa1d0121657dd9b6616d3b7"},
	{"q35 1024 MiB", Params{QEMUVersion: "7.2.22", MemoryMiB: 1024, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"24756de9a930d258e479aaff347e78ac5a89476fad1e976d24d235f65c051c18",
		"f5f777ffcec7ac5084af244cf58a1ccc7aca133157d413093c9a68099dc7c3ab4ab644b9a8202efec111b198dcb6f678"},
	{"pc 4096 MiB", Params{QEMUVersion: "7.2.22", Machine: MachinePC, MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"ca447214c04e049d8a4b15975a9d3caac09a368c44deca144bb35a9619d7f2b6",
		"4a17886245cfa4f700ed2495d565f5dff106b700adaeca2e8c8b9a3fb7a44ffd13e96572becf0377c3c1643fd2c85c06"},
	{"pc 2048 MiB", Params{QEMUVersion: "7.2.22", Machine: MachinePC, MemoryMiB: 2048, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"f254b9ebadc98206d53f75f0f5bc3c66a39cf139fc9a9102460da6728c6b30f4",
		"a5bf06d3aedb56ee4b8dd483b2e8759eb8b894f21cc63d3d0da5376bc0bac9c424f15d97a43175788393be0a8a1a8e63"},
	{"pc max-ram-below-4g 1 GiB", Params{QEMUVersion: "7.2.22", Machine: MachinePC, MemoryMiB: 4096, MaxRAMBelow4GMiB: 1024, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"24756de9a930d258e479aaff347e78ac5a89476fad1e976d24d235f65c051c18",
		"f5f777ffcec7ac5084af244cf58a1ccc7aca133157d413093c9a68099dc7c3ab4ab644b9a8202efec111b198dcb6f678"},
	{"q35 vga=0x317", Params{QEMUVersion: "7.2.22", MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: "console=ttyS0 panic=-1 vga=0x317 quiet"},
		"69895f3b9fd9861760e3606cca699123a50ceec1944bad9558326966b5be0bbd",
		"b23a910c5897a9796573cbd661bc6b6858f5e9024d53cf2502f0df6b74f57ca2339bc3f5e4a8e78d868246fc05ab6516"},
	{"q35 initrd 3 MiB + 124", Params{QEMUVersion: "7.2.22", MemoryMiB: 4096, InitrdSize: 3145852, Cmdline: typicalCmdline},
		"62f2b004457edfc53aadc04ea38300820f8bbda64e53d196ab66be63e44186e5",
		"aa87cd6368cefe3da6723f93662d5dba2ac6dd619503821effbe9126f4f16a21d6a05768d7eb8e2c266dd3c598725621"},
	{"QEMU 10.0 with OVMF 2022.11", Params{QEMUVersion: "10.0.13", LegacyFirmware: true, MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"f254b9ebadc98206d53f75f0f5bc3c66a39cf139fc9a9102460da6728c6b30f4",
		"a5bf06d3aedb56ee4b8dd483b2e8759eb8b894f21cc63d3d0da5376bc0bac9c424f15d97a43175788393be0a8a1a8e63"},
	{"QEMU 10.0 pc 4096 MiB with OVMF 2022.11", Params{QEMUVersion: "10.0.13", LegacyFirmware: true, Machine: MachinePC, MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"ca447214c04e049d8a4b15975a9d3caac09a368c44deca144bb35a9619d7f2b6",
		"4a17886245cfa4f700ed2495d565f5dff106b700adaeca2e8c8b9a3fb7a44ffd13e96572becf0377c3c1643fd2c85c06"},
	{"QEMU 10.0 q35 2560 MiB with OVMF 2022.11", Params{QEMUVersion: "10.0.13", LegacyFirmware: true, MemoryMiB: 2560, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"d42c3c287f544d28b7482ddcb2a2ee0f5ae317720f3034da912dcbc69e934c76",
		"2291260a5bcbbcc7b367662ff7b33da9762311eb36c449a2c0411535dee2f12d02b2ffae8fa1d0121657dd9b6616d3b7"},
	{"QEMU 10.0 q35 etc/boot/kernel", Params{QEMUVersion: "10.0.13", MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		"eec071b66b42a32e737d8997dd8652e4f61b5e7042d33dc9099ed89b22cdbc8d",
		"b95d47fb8bd8f409a78b01242d87ccdcbd794b7f39239a14070ba59f95ed137f37a00464ab0d5ba7af54b231f824c209"},
	{"QEMU 10.0 pc etc/boot/kernel", Params{QEMUVersion: "10.0.13", Machine: MachinePC, MemoryMiB: 4096, InitrdSize: typicalInitrd + 4096, Cmdline: "console=ttyS0 panic=-1"},
		"eec071b66b42a32e737d8997dd8652e4f61b5e7042d33dc9099ed89b22cdbc8d",
		"b95d47fb8bd8f409a78b01242d87ccdcbd794b7f39239a14070ba59f95ed137f37a00464ab0d5ba7af54b231f824c209"},
}

func digests(t *testing.T, image []byte) (sha256, sha384 []byte) {
	t.Helper()
	a, err := authenticode.Digest(image, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := authenticode.Digest(image, crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestObservedMeasurements(t *testing.T) {
	k, _ := testinputs.Kernel(t)
	for _, o := range observed {
		out, err := Patch(k, o.p)
		if err != nil {
			t.Fatal(err)
		}
		a, b := digests(t, out)
		if hex.EncodeToString(a) != o.sha256 || hex.EncodeToString(b) != o.sha384 {
			t.Errorf("%s: predicted SHA-256 %x SHA-384 %x, observed %s %s", o.name, a, b, o.sha256, o.sha384)
		}
		// Every release from 7.2.1 up, and 10.x with pre-2025.02 firmware,
		// reads the same patched blob.
		if src, _ := KernelSource(k, o.p); src != SourcePatchedSetup {
			continue
		}
		for _, v := range []string{"8.0", "8.2", "9.1", "9.2", "10.1", "10.2"} {
			p := o.p
			p.QEMUVersion, p.LegacyFirmware = v, true
			if same, err := Patch(k, p); err != nil || !bytes.Equal(same, out) {
				t.Errorf("%s: QEMU %s patches differently from %s (%v)", o.name, v, o.p.QEMUVersion, err)
			}
		}
	}
}

// TestRealKernel logs the patched fields and measured digests of the
// pinned kernel for the appliance's profile (2 vCPU, 4096 MiB, 2394624-byte
// initrd, 286-byte command line) under each QEMU behaviour, and checks that
// only setup-header fields change.
func TestRealKernel(t *testing.T) {
	k, rel := testinputs.Kernel(t)
	_, signed, err := authenticode.Embedded(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{
		{QEMUVersion: "8.2", TDX: true},
		{QEMUVersion: "9.1"},
		{QEMUVersion: "10.1", TDX: true, LegacyFirmware: true},
		{QEMUVersion: "10.1", TDX: true},
		{QEMUVersion: "10.2", TDX: true, LegacyFirmware: true},
	} {
		p.MemoryMiB, p.InitrdSize, p.Cmdline = 4096, typicalInitrd, typicalCmdline
		out, err := Patch(k, p)
		if err != nil {
			t.Fatal(err)
		}
		fields, err := Fields(k, p)
		if err != nil {
			t.Fatal(err)
		}
		src, _ := KernelSource(k, p)
		a, b := digests(t, out)
		var lines []string
		for _, f := range fields {
			if f.Offset < offSetupSects || f.Offset+f.Size > headerEnd {
				t.Errorf("%v lies outside the setup header", f)
			}
			lines = append(lines, "  "+f.String())
		}
		t.Logf("vmlinuz-%s, QEMU %s TDX=%v legacy firmware=%v: %v\n%s\n  SHA-256 %x\n  SHA-384 %x",
			rel, p.QEMUVersion, p.TDX, p.LegacyFirmware, src, strings.Join(lines, "\n"), a, b)
		if (src == SourcePatchedSetup) == bytes.Equal(a, signed) {
			t.Errorf("%v: SHA-256 %x vs the signature's %x", src, a, signed)
		}
		checkOnlyFieldsChanged(t, k, out, p)
	}
}

// TestRealKernelPesign cross-checks the patched image's SHA-256 with pesign.
func TestRealKernelPesign(t *testing.T) {
	pesign := lookTool(t, "pesign")
	k, _ := testinputs.Kernel(t)
	out, err := Patch(k, Params{QEMUVersion: "8.2", MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "patched")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(pesign, "-h", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("pesign: %v\n%s", err, b)
	}
	a, _ := digests(t, out)
	if got := strings.TrimSpace(strings.TrimPrefix(string(b), "hash:")); got != hex.EncodeToString(a) {
		t.Fatalf("pesign %s, Digest %x", got, a)
	}
}
