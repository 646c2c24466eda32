package manifest

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sample() *Manifest {
	h := strings.Repeat("ab", 32)
	return &Manifest{
		Schema: Schema, Builder: "cocoon-image/test", Toolchain: "go1.26.8 linux/amd64", SourceDateEpoch: 1700000000,
		Inputs:  []Input{{Name: "ovmf", Version: "2025.02-8+deb13u1", SHA256: h}},
		Outputs: []Output{{Name: "initrd", Size: 10, SHA256: h}, {Name: "cmdline", Size: 3, SHA256: h}},
		Kernel:  Kernel{Release: "6.12.107+deb13-amd64", Modules: []string{"dm_mod", "dm_verity"}},
		Verity: Verity{RootHash: h, Salt: "00ff", HashAlgorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 3,
			RootPartUUID: "abababab-abab-abab-abab-abababababab", HashPartUUID: "abababab-abab-abab-abab-abababababab"},
		Cmdline: "console=ttyS0",
	}
}

func TestRoundTripIsCanonical(t *testing.T) {
	b, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, sample()) {
		t.Fatalf("round trip changed the manifest")
	}
	b2, _ := m.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("marshal is not stable")
	}
	if !bytes.HasPrefix(b, []byte("{\n  \"schema\": \"cocoon-image-manifest/v1\",\n  \"builder\"")) || !bytes.HasSuffix(b, []byte("}\n")) {
		t.Fatalf("unexpected layout:\n%s", b)
	}
	if o, ok := m.Output("cmdline"); !ok || o.Size != 3 {
		t.Fatal("Output lookup")
	}
}

func TestParseBad(t *testing.T) {
	good, _ := sample().Marshal()
	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"not json", "hello"},
		{"truncated", string(good[:len(good)/2])},
		{"unknown field", strings.Replace(string(good), `"builder"`, `"extra": 1, "builder"`, 1)},
		{"trailing", string(good) + "{}"},
		{"schema", strings.Replace(string(good), "manifest/v1", "manifest/v9", 1)},
		{"upper hex", strings.Replace(string(good), strings.Repeat("ab", 32), strings.Repeat("AB", 32), 1)},
		{"huge", `{"schema":"` + strings.Repeat("x", maxSize) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(tc.text)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	dup := sample()
	dup.Outputs = append(dup.Outputs, dup.Outputs[0])
	if _, err := dup.Marshal(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate output: %v", err)
	}
}

// FuzzParse: Parse → Marshal → Parse is the identity on what Parse accepts.
func FuzzParse(f *testing.F) {
	good, _ := sample().Marshal()
	f.Add(good)
	f.Add([]byte(`{"schema":"cocoon-image-manifest/v1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("marshal of accepted manifest: %v", err)
		}
		m2, err := Parse(bytes.NewReader(out))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
