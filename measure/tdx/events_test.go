package tdx

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"os"
	"testing"
	"unicode/utf16"

	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/platform"
	"github.com/cocoon-appliance/cocoon/measure/register"
)

func realLog(t *testing.T) []eventlog.Event {
	raw, err := os.ReadFile("../eventlog/testdata/gce-tdx-cos113.ccel")
	if err != nil {
		t.Fatal(err)
	}
	es, err := eventlog.Parse(raw, eventlog.CCEL)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestEncodersAgainstRealLog checks our event encodings against a real
// TDVF log (GCE TDX, see ../eventlog/testdata/README.md): every separator
// and every EFI action string we predict has exactly the digest TDVF logged,
// and re-encoding each logged UEFI_VARIABLE_DATA from its parsed fields with
// variableData gives the logged bytes and digest.
func TestEncodersAgainstRealLog(t *testing.T) {
	sep := RTMR1Events(make([]byte, 48), "")[2]
	actions := map[string][]byte{}
	for _, e := range RTMR1Events(make([]byte, 48), "") {
		if e.Type == register.EvEFIAction {
			actions[e.Description] = e.Digest
		}
	}
	var seps, acts, vars, boots int
	for _, e := range realLog(t) {
		switch e.Type {
		case register.EvSeparator:
			if !bytes.Equal(e.Digest, sep.Digest) {
				t.Errorf("separator in RTMR%d: logged %x, we predict %x", e.Index, e.Digest, sep.Digest)
			}
			seps++
		case register.EvEFIAction:
			if d, ok := actions[string(e.Data)]; ok {
				if !bytes.Equal(e.Digest, d) {
					t.Errorf("action %q: logged %x, we predict %x", e.Data, e.Digest, d)
				}
				acts++
			}
		case register.EvEFIVariableBoot:
			// Boot variables: the digest covers the variable's data only.
			d := e.Data
			n := binary.LittleEndian.Uint64(d[16:])
			l := binary.LittleEndian.Uint64(d[24:])
			data := d[32+2*n : 32+2*n+l]
			if !bytes.Equal(register.Digest(crypto.SHA384, data), e.Digest) {
				t.Errorf("boot variable: logged digest is not SHA-384 of the data alone")
			}
			boots++
		case register.EvEFIVariableDriverConfig:
			d := e.Data
			if len(d) < 32 {
				t.Fatalf("short UEFI_VARIABLE_DATA")
			}
			var vendor [16]byte
			copy(vendor[:], d)
			nameLen := binary.LittleEndian.Uint64(d[16:])
			dataLen := binary.LittleEndian.Uint64(d[24:])
			u := make([]uint16, nameLen)
			for i := range u {
				u[i] = binary.LittleEndian.Uint16(d[32+2*i:])
			}
			name := string(utf16.Decode(u))
			data := d[32+2*nameLen : 32+2*nameLen+dataLen]
			again := variableData(vendor, name, data)
			if !bytes.Equal(again, d) || !bytes.Equal(register.Digest(crypto.SHA384, again), e.Digest) {
				t.Errorf("variable %s: re-encoding differs from the logged event", name)
			}
			vars++
		}
	}
	if seps < 2 || acts < 3 || vars < 5 || boots < 3 {
		t.Fatalf("checked %d separators, %d actions, %d variables, %d boot variables; the log should have more", seps, acts, vars, boots)
	}
	t.Logf("matched %d separators, %d EFI actions, %d UEFI variables, %d boot variables against the real log", seps, acts, vars, boots)
}

// TestSecureBootVariableGUIDs: the five secure-boot variables use the GUIDs
// the real log uses for them.
func TestSecureBootVariableGUIDs(t *testing.T) {
	logged := map[string][16]byte{}
	for _, e := range realLog(t) {
		if e.Type != register.EvEFIVariableDriverConfig {
			continue
		}
		n := binary.LittleEndian.Uint64(e.Data[16:])
		u := make([]uint16, n)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(e.Data[32+2*i:])
		}
		var g [16]byte
		copy(g[:], e.Data)
		logged[string(utf16.Decode(u))] = g
	}
	for name, want := range map[string][16]byte{"SecureBoot": efiGlobalVariable, "PK": efiGlobalVariable, "KEK": efiGlobalVariable, "db": efiImageSecurityData, "dbx": efiImageSecurityData} {
		if got, ok := logged[name]; !ok || got != want {
			t.Errorf("%s: logged GUID % x, ours % x", name, got, want)
		}
	}
}

func TestCmdlineEncoding(t *testing.T) {
	got := CmdlineDigestData("ro a=b")
	want := []byte{'r', 0, 'o', 0, ' ', 0, 'a', 0, '=', 0, 'b', 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("% x", got)
	}
}

func TestRTMR0EventsOrder(t *testing.T) {
	c := &platform.Capture{FwCfg: map[string][]byte{platform.TableLoader: {1}, platform.RSDP: {2}, platform.Tables: {3}},
		BootVariables: []platform.Variable{{Name: "BootOrder", Data: []byte{0, 0}}, {Name: "Boot0000", Data: []byte("b")}}}
	es := RTMR0Events([]byte("hob"), []byte("cfv"), c)
	var types []uint32
	for _, e := range es {
		if e.Index != 0 || len(e.Digest) != 48 {
			t.Fatalf("event %v", e)
		}
		types = append(types, e.Type)
	}
	want := []uint32{register.EvEFIHandoffTables2, register.EvEFIPlatformFirmwareBlob2,
		register.EvEFIVariableDriverConfig, register.EvEFIVariableDriverConfig, register.EvEFIVariableDriverConfig, register.EvEFIVariableDriverConfig, register.EvEFIVariableDriverConfig,
		register.EvSeparator, register.EvPlatformConfigFlags, register.EvPlatformConfigFlags, register.EvPlatformConfigFlags,
		register.EvEFIVariableBoot, register.EvEFIVariableBoot}
	if len(types) != len(want) {
		t.Fatalf("%d events, want %d", len(types), len(want))
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("event %d is %s, want %s", i, register.TypeName(types[i]), register.TypeName(want[i]))
		}
	}
}
