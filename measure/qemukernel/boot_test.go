package qemukernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/cocoon-appliance/cocoon/measure/authenticode"
	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
)

// TestBoot boots the pinned kernel with the pinned OVMF under the installed
// QEMU and swtpm (TCG, no KVM needed), reads the firmware's event log from
// inside the guest, and checks that PCR 4's EV_EFI_BOOT_SERVICES_APPLICATION
// digests (SHA-256 and SHA-384 banks) are the Authenticode digests of
// Patch(kernel, p), and that PCR 9's LoadOptions event hashes LoadOptions(p).
// About 10 s per boot; skipped with -short or without the tools.
func TestBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU")
	}
	qemu := lookTool(t, "qemu-system-x86_64")
	lookTool(t, "swtpm")
	lookTool(t, "swtpm_setup")
	version := qemuVersion(t, qemu)
	k, rel := testinputs.Kernel(t)
	fw := testinputs.Firmware(t)
	dir := t.TempDir()
	kernelPath, fwPath := filepath.Join(dir, "vmlinuz-"+rel), filepath.Join(dir, "OVMF.fd")
	writeFile(t, kernelPath, k)
	writeFile(t, fwPath, fw)
	guestInit := buildGuestInit(t, dir)

	for _, p := range []Params{
		{QEMUVersion: version, Machine: MachineQ35, MemoryMiB: 4096, InitrdSize: typicalInitrd, Cmdline: typicalCmdline},
		{QEMUVersion: version, Machine: MachinePC, MemoryMiB: 4096, InitrdSize: typicalInitrd + 4096, Cmdline: "console=ttyS0 panic=-1"},
	} {
		t.Run(fmt.Sprintf("%s-%dMiB-initrd%d", p.Machine, p.MemoryMiB, p.InitrdSize), func(t *testing.T) {
			if _, err := KernelSource(k, p); errors.Is(err, ErrUnsupported) {
				t.Skipf("installed QEMU: %v", err)
			}
			patched, err := Patch(k, p)
			if err != nil {
				t.Fatal(err)
			}
			initrdPath := filepath.Join(t.TempDir(), "initrd")
			writeFile(t, initrdPath, buildInitrd(t, guestInit, int(p.InitrdSize)))
			events := boot(t, qemu, fwPath, kernelPath, initrdPath, p)

			var apps, opts []tcgEvent
			for _, e := range events {
				switch {
				case e.pcr == 4 && e.typ == evEFIBootServicesApplication:
					apps = append(apps, e)
				case e.pcr == 9 && e.typ == evEventTag && bytes.Contains(e.data, []byte("LOADED_IMAGE::LoadOptions")):
					opts = append(opts, e)
				}
			}
			if len(apps) != 1 || len(opts) != 1 {
				t.Fatalf("event log has %d PCR 4 application events and %d LoadOptions events, want 1 and 1", len(apps), len(opts))
			}
			u := utf16.Encode([]rune(LoadOptions(p) + "\x00"))
			loadOptions := make([]byte, 2*len(u))
			for i, c := range u {
				binary.LittleEndian.PutUint16(loadOptions[2*i:], c)
			}
			for alg, h := range map[uint16]crypto.Hash{tpmAlgSHA256: crypto.SHA256, tpmAlgSHA384: crypto.SHA384} {
				want, err := authenticode.Digest(patched, h)
				if err != nil {
					t.Fatal(err)
				}
				if got := apps[0].digests[alg]; !bytes.Equal(got, want) {
					t.Errorf("PCR 4 kernel %v = %x, predicted %x", h, got, want)
				}
				w := h.New()
				w.Write(loadOptions)
				if got := opts[0].digests[alg]; !bytes.Equal(got, w.Sum(nil)) {
					t.Errorf("PCR 9 LoadOptions %v = %x, want %v of %q", h, got, h, LoadOptions(p))
				}
			}
			// The whole of PCR 4 and PCR 9 is the sequence measure/tpm and
			// measure/tdx predict: kernel, "Calling EFI Application",
			// separator; then LoadOptions and the initrd.
			var pcr4, pcr9 []tcgEvent
			for _, e := range events {
				switch e.pcr {
				case 4:
					pcr4 = append(pcr4, e)
				case 9:
					pcr9 = append(pcr9, e)
				}
			}
			const evEFIAction, evSeparator = 0x80000007, 0x00000004
			if len(pcr4) != 3 || pcr4[0].typ != evEFIBootServicesApplication ||
				pcr4[1].typ != evEFIAction || string(pcr4[1].data) != "Calling EFI Application from Boot Option" ||
				pcr4[2].typ != evSeparator {
				for _, e := range pcr4 {
					t.Logf("PCR 4 event type %#x data %q", e.typ, e.data)
				}
				t.Errorf("PCR 4 holds %d events, want kernel, action, separator", len(pcr4))
			}
			if len(pcr9) != 2 || !bytes.Contains(pcr9[0].data, []byte("LOADED_IMAGE::LoadOptions")) {
				for _, e := range pcr9 {
					t.Logf("PCR 9 event type %#x, %d bytes of data", e.typ, len(e.data))
				}
				t.Errorf("PCR 9 holds %d events, want LoadOptions then the initrd", len(pcr9))
			} else {
				initrd, err := os.ReadFile(initrdPath)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(initrd)
				if got := pcr9[1].digests[tpmAlgSHA256]; !bytes.Equal(got, sum[:]) {
					t.Errorf("PCR 9 initrd event %x, want sha256 of the initrd %x", got, sum)
				}
			}
			src, _ := KernelSource(k, p)
			t.Logf("QEMU %s %s: kernel from %v, SHA-384 %x", version, p.Machine, src, apps[0].digests[tpmAlgSHA384])
		})
	}
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

var qemuVersionRE = regexp.MustCompile(`QEMU emulator version (\d+\.\d+\.\d+)`)

func qemuVersion(t *testing.T, qemu string) string {
	t.Helper()
	out, err := exec.Command(qemu, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", qemu, err)
	}
	m := qemuVersionRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("cannot read the version in %q", out)
	}
	return string(m[1])
}

// buildGuestInit compiles testdata/tpmlog as a static binary.
func buildGuestInit(t *testing.T, dir string) []byte {
	t.Helper()
	out := filepath.Join(dir, "tpmlog")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/tpmlog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build tpmlog: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildInitrd returns a gzip'd newc archive with /dev/console and /init,
// padded with zeros (which the kernel's unpacker skips) to exactly size
// bytes, so the test controls the initrd size QEMU patches in.
func buildInitrd(t *testing.T, guestInit []byte, size int) []byte {
	t.Helper()
	var a []byte
	entry := func(ino uint32, name string, mode uint32, data []byte, rmajor, rminor uint32) {
		a = append(a, "070701"...)
		for _, v := range []uint32{ino, mode, 0, 0, 1, 0, uint32(len(data)), 0, 0, rmajor, rminor, uint32(len(name) + 1), 0} {
			a = append(a, fmt.Sprintf("%08X", v)...)
		}
		a = append(a, name...)
		a = append(a, 0)
		a = append(a, make([]byte, (4-len(a)%4)%4)...)
		a = append(a, data...)
		a = append(a, make([]byte, (4-len(a)%4)%4)...)
	}
	entry(1, "dev", 0o040755, nil, 0, 0)
	entry(2, "dev/console", 0o020600, nil, 5, 1)
	entry(3, "init", 0o100755, guestInit, 0, 0)
	entry(0, "TRAILER!!!", 0, nil, 0, 0)
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	w.Write(a)
	w.Close()
	if z.Len() > size {
		t.Fatalf("initrd needs %d bytes, the test wants %d", z.Len(), size)
	}
	return append(z.Bytes(), make([]byte, size-z.Len())...)
}

var hexLine = regexp.MustCompile(`TPMLOG-HEX ([0-9a-f]+)`)

// boot runs one guest with a fresh swtpm (SHA-256 and SHA-384 banks) and
// returns the firmware event log the guest printed.
func boot(t *testing.T, qemu, fw, kernel, initrd string, p Params) []tcgEvent {
	t.Helper()
	dir := t.TempDir()
	state, sock, serial := filepath.Join(dir, "tpm"), filepath.Join(dir, "tpm.sock"), filepath.Join(dir, "serial.log")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", state, "--pcr-banks", "sha256,sha384", "--overwrite").CombinedOutput(); err != nil {
		t.Fatalf("swtpm_setup: %v\n%s", err, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	swtpm := exec.CommandContext(ctx, "swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state, "--ctrl", "type=unixio,path="+sock)
	if err := swtpm.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		swtpm.Process.Kill()
		swtpm.Wait()
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("swtpm did not create %s", sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	machine := string(p.Machine)
	if p.MaxRAMBelow4GMiB != 0 {
		machine += fmt.Sprintf(",max-ram-below-4g=%dM", p.MaxRAMBelow4GMiB)
	}
	cmd := exec.CommandContext(ctx, qemu, "-machine", machine, "-m", fmt.Sprint(p.MemoryMiB), "-smp", "2",
		"-bios", fw, "-kernel", kernel, "-initrd", initrd, "-append", p.Cmdline,
		"-chardev", "socket,id=chrtpm,path="+sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0",
		"-display", "none", "-serial", "file:"+serial, "-no-reboot", "-net", "none")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu: %v\n%s", err, b)
	}
	out, err := os.ReadFile(serial)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("TPMLOG-END")) {
		t.Fatalf("guest did not finish; serial console:\n%s", out)
	}
	var h strings.Builder
	for _, m := range hexLine.FindAllSubmatch(out, -1) {
		h.Write(m[1])
	}
	log, err := hex.DecodeString(h.String())
	if err != nil {
		t.Fatal(err)
	}
	events, err := parseTCG2Log(log)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// TCG PC Client Platform Firmware Profile, 10.2 "Event Log Format".
const (
	evEventTag                   = 0x00000006
	evEFIBootServicesApplication = 0x80000003
	tpmAlgSHA256                 = 0x000b
	tpmAlgSHA384                 = 0x000c
)

type tcgEvent struct {
	pcr, typ uint32
	digests  map[uint16][]byte
	data     []byte
}

// parseTCG2Log reads a crypto-agile log: a TCG_PCR_EVENT carrying the
// TCG_EfiSpecIdEvent (digest sizes), then TCG_PCR_EVENT2 records.
func parseTCG2Log(b []byte) ([]tcgEvent, error) {
	r := bytes.NewReader(b)
	var head struct {
		PCR, Type uint32
		SHA1      [20]byte
		Size      uint32
	}
	if err := binary.Read(r, binary.LittleEndian, &head); err != nil {
		return nil, fmt.Errorf("event log header: %w", err)
	}
	spec := make([]byte, head.Size)
	if _, err := r.Read(spec); err != nil || len(spec) < 28 || !bytes.HasPrefix(spec, []byte("Spec ID Event03")) {
		return nil, fmt.Errorf("no Spec ID Event03 at the start of the event log")
	}
	n := binary.LittleEndian.Uint32(spec[24:])
	sizes := map[uint16]int{}
	for i := 0; i < int(n) && 28+4*i+4 <= len(spec); i++ {
		sizes[binary.LittleEndian.Uint16(spec[28+4*i:])] = int(binary.LittleEndian.Uint16(spec[30+4*i:]))
	}
	var events []tcgEvent
	for r.Len() > 0 {
		var hdr struct{ PCR, Type, Count uint32 }
		if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil {
			return nil, err
		}
		e := tcgEvent{pcr: hdr.PCR, typ: hdr.Type, digests: map[uint16][]byte{}}
		for range hdr.Count {
			var alg uint16
			if err := binary.Read(r, binary.LittleEndian, &alg); err != nil {
				return nil, err
			}
			size, ok := sizes[alg]
			if !ok {
				return nil, fmt.Errorf("digest algorithm %#x not in the Spec ID event", alg)
			}
			d := make([]byte, size)
			if _, err := r.Read(d); err != nil {
				return nil, err
			}
			e.digests[alg] = d
		}
		var size uint32
		if err := binary.Read(r, binary.LittleEndian, &size); err != nil {
			return nil, err
		}
		if int(size) > r.Len() {
			return nil, fmt.Errorf("event of %d bytes, %d left", size, r.Len())
		}
		e.data = make([]byte, size)
		r.Read(e.data)
		events = append(events, e)
	}
	return events, nil
}
