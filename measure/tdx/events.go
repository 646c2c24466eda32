package tdx

import (
	"crypto"
	"encoding/binary"
	"fmt"
	"unicode/utf16"

	"github.com/cocoon-appliance/cocoon/measure/platform"
	"github.com/cocoon-appliance/cocoon/measure/register"
)

// UEFI variable GUIDs (UEFI 2.10 §3.3 EFI_GLOBAL_VARIABLE, §32.6.1
// EFI_IMAGE_SECURITY_DATABASE_GUID).
var (
	efiGlobalVariable    = guid(0x8be4df61, 0x93ca, 0x11d2, [8]byte{0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c})
	efiImageSecurityData = guid(0xd719b2cb, 0x3d3a, 0x4596, [8]byte{0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f})
)

// guid encodes an EFI_GUID as it lies in memory: the first three fields
// little endian, the last eight bytes as given.
func guid(a uint32, b, c uint16, d [8]byte) [16]byte {
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], a)
	binary.LittleEndian.PutUint16(g[4:], b)
	binary.LittleEndian.PutUint16(g[6:], c)
	copy(g[8:], d[:])
	return g
}

// UTF16LE encodes s without a terminator.
func UTF16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// variableData is UEFI_VARIABLE_DATA (TCG PC Client PFP §10.2.6): the
// vendor GUID, the name length in CHAR16s, the data length, the UTF-16 name
// without terminator, then the data. Secure-boot configuration variables are
// measured as the digest of this whole structure.
func variableData(vendor [16]byte, name string, data []byte) []byte {
	n := UTF16LE(name)
	b := make([]byte, 32, 32+len(n)+len(data))
	copy(b, vendor[:])
	binary.LittleEndian.PutUint64(b[16:], uint64(len(n)/2))
	binary.LittleEndian.PutUint64(b[24:], uint64(len(data)))
	b = append(b, n...)
	return append(b, data...)
}

// separator is EV_SEPARATOR's data: a 32-bit zero (PFP §10.4.1; OVMF logs
// the non-error separator).
var separator = []byte{0, 0, 0, 0}

// EFI action strings (PFP §10.4.4), measured as their ASCII bytes.
const (
	actionCallingEFIApp  = "Calling EFI Application from Boot Option"
	actionExitBS         = "Exit Boot Services Invocation"
	actionExitBSReturned = "Exit Boot Services Returned with Success"
)

func ev(h crypto.Hash, idx int, typ uint32, desc string, data ...[]byte) register.Event {
	return register.Event{Index: idx, Type: typ, Digest: register.Digest(h, data...), Description: desc}
}

// RTMR0Events are the firmware's configuration measurements under TDX, in
// the order TDVF extends them: the TD HOB and the configuration firmware
// volume (SEC phase, OvmfPkg TdxHelperLib), the secure-boot variables
// SecureBoot, PK, KEK, db, dbx (empty: our OVMF has no keys enrolled), the
// separator, QEMU's ACPI blobs as the ACPI loader installs them (OvmfPkg
// AcpiPlatformDxe), then BootOrder and each existing Boot#### in its order,
// logged as EV_EFI_VARIABLE_BOOT and measured as the digest of the
// variable's data alone. Order, types and both digest rules are checked
// against a real TDVF log in events_test.go.
func RTMR0Events(hob, cfv []byte, capture *platform.Capture) []register.Event {
	const idx = 0
	h := crypto.SHA384
	es := []register.Event{
		ev(h, idx, register.EvEFIHandoffTables2, fmt.Sprintf("TD HOB (%d bytes, built by QEMU tdvf-hob.c)", len(hob)), hob),
		ev(h, idx, register.EvEFIPlatformFirmwareBlob2, fmt.Sprintf("configuration firmware volume, TDVF CFV section (%d bytes)", len(cfv)), cfv),
	}
	for _, v := range []struct {
		vendor [16]byte
		name   string
	}{{efiGlobalVariable, "SecureBoot"}, {efiGlobalVariable, "PK"}, {efiGlobalVariable, "KEK"}, {efiImageSecurityData, "db"}, {efiImageSecurityData, "dbx"}} {
		es = append(es, ev(h, idx, register.EvEFIVariableDriverConfig, "UEFI variable "+v.name+" (empty)", variableData(v.vendor, v.name, nil)))
	}
	es = append(es, ev(h, idx, register.EvSeparator, "separator", separator))
	for _, f := range platform.ACPIFiles {
		es = append(es, ev(h, idx, register.EvPlatformConfigFlags, fmt.Sprintf("QEMU fw_cfg %s (%d bytes, from the platform capture)", f, len(capture.FwCfg[f])), capture.FwCfg[f]))
	}
	capture = capture.EffectiveBootVariables()
	if order, ok := capture.Variable("BootOrder"); ok {
		es = append(es, ev(h, idx, register.EvEFIVariableBoot, "UEFI variable BootOrder (from the platform capture)", order))
		for _, v := range capture.BootOrder() {
			es = append(es, ev(h, idx, register.EvEFIVariableBoot, "UEFI variable "+v.Name+" (from the platform capture)", v.Data))
		}
	}
	return es
}

// KernelLoadEvents are the events of a direct kernel boot up to
// ReadyToBoot, for any bank: the kernel image's Authenticode digest when
// OVMF loads it (as QEMU patched it), then at ReadyToBoot the "Calling EFI
// Application" action and the separator (OvmfPkg PlatformBootManagerLib
// TryRunningQemuKernel loads the image before signalling ReadyToBoot;
// SecurityPkg Tcg2Dxe / OvmfPkg TdTcg2Dxe log the rest). Under TDX they go
// to RTMR1, under a TPM to PCR 4.
func KernelLoadEvents(h crypto.Hash, idx int, kernelAuthenticode []byte, what string) []register.Event {
	return []register.Event{
		{Index: idx, Type: register.EvEFIBootServicesApp, Digest: kernelAuthenticode, Description: "kernel image, Authenticode " + what},
		ev(h, idx, register.EvEFIAction, actionCallingEFIApp, []byte(actionCallingEFIApp)),
		ev(h, idx, register.EvSeparator, "separator", separator),
	}
}

// RTMR1Events are KernelLoadEvents followed by the two ExitBootServices
// actions, which under TDX also land in RTMR1 (PCR 5 maps to RTMR1).
func RTMR1Events(kernelAuthenticode []byte, what string) []register.Event {
	const idx = 1
	h := crypto.SHA384
	return append(KernelLoadEvents(h, idx, kernelAuthenticode, "SHA-384 "+what),
		ev(h, idx, register.EvEFIAction, actionExitBS, []byte(actionExitBS)),
		ev(h, idx, register.EvEFIAction, actionExitBSReturned, []byte(actionExitBSReturned)),
	)
}

// CmdlineDigestData is what the Linux EFI stub measures for the command
// line ("LOADED_IMAGE::LoadOptions", drivers/firmware/efi/libstub): the
// load options as UTF-16LE including the terminating NUL. For a direct boot
// the load options are qemukernel.LoadOptions (OVMF appends
// " initrd=initrd"); checked against a real boot in measure/qemukernel.
func CmdlineDigestData(cmdline string) []byte {
	return append(UTF16LE(cmdline), 0, 0)
}

// RTMR2Events are what the kernel's EFI stub measures (into PCR 9, RTMR2
// under TDX): the command line it was given, then the initrd it loaded.
func RTMR2Events(h crypto.Hash, idx int, cmdline string, initrd []byte) []register.Event {
	return []register.Event{
		ev(h, idx, register.EvEventTag, fmt.Sprintf("kernel command line, UTF-16LE with NUL (%d characters)", len(cmdline)), CmdlineDigestData(cmdline)),
		ev(h, idx, register.EvEventTag, fmt.Sprintf("initrd (%d bytes)", len(initrd)), initrd),
	}
}
