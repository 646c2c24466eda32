package tpm

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

func TestPredictByHand(t *testing.T) {
	k := sha256.Sum256([]byte("kernel"))
	p, err := Predict(Inputs{KernelAuthenticode: k[:], Cmdline: "ro initrd=initrd", Initrd: []byte("initrd")})
	if err != nil {
		t.Fatal(err)
	}
	ext := func(reg []byte, data []byte) []byte {
		d := sha256.Sum256(data)
		s := sha256.Sum256(append(append([]byte(nil), reg...), d[:]...))
		return s[:]
	}
	extD := func(reg []byte, d []byte) []byte {
		s := sha256.Sum256(append(append([]byte(nil), reg...), d...))
		return s[:]
	}
	pcr4 := extD(make([]byte, 32), k[:])
	pcr4 = ext(pcr4, []byte("Calling EFI Application from Boot Option"))
	pcr4 = ext(pcr4, []byte{0, 0, 0, 0})
	if !bytes.Equal(p.PCR[4], pcr4) {
		t.Fatalf("PCR4 %x, want %x", p.PCR[4], pcr4)
	}
	utf := []byte{}
	for _, c := range "ro initrd=initrd" {
		utf = append(utf, byte(c), 0)
	}
	pcr9 := ext(make([]byte, 32), append(utf, 0, 0))
	pcr9 = ext(pcr9, []byte("initrd"))
	if !bytes.Equal(p.PCR[9], pcr9) {
		t.Fatalf("PCR9 %x, want %x", p.PCR[9], pcr9)
	}
	if _, ok := p.PCR[15]; ok {
		t.Fatal("PCR15 predicted without runtime events")
	}
}

// TestOnlyTheRightPCRChanges: the kernel moves only PCR 4, the initrd and
// command line only PCR 9, runtime events only PCR 15.
func TestOnlyTheRightPCRChanges(t *testing.T) {
	k := sha256.Sum256([]byte("kernel"))
	k2 := sha256.Sum256([]byte("kernel2"))
	rt := runtime.Log{{Kind: runtime.KindBootComplete}}
	base := Inputs{KernelAuthenticode: k[:], Cmdline: "a", Initrd: []byte("i"), Runtime: rt}
	p0, _ := Predict(base)
	for name, mod := range map[string]func(*Inputs) int{
		"kernel":  func(in *Inputs) int { in.KernelAuthenticode = k2[:]; return 4 },
		"cmdline": func(in *Inputs) int { in.Cmdline = "b"; return 9 },
		"initrd":  func(in *Inputs) int { in.Initrd = []byte("j"); return 9 },
		"runtime": func(in *Inputs) int {
			in.Runtime = runtime.Log{{Kind: runtime.KindStaticConfig, Payload: []byte("x")}, {Kind: runtime.KindBootComplete}}
			return 15
		},
	} {
		in := base
		want := mod(&in)
		p, err := Predict(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{4, 9, 15} {
			if changed := !bytes.Equal(p.PCR[i], p0.PCR[i]); changed != (i == want) {
				t.Errorf("%s: PCR %d changed=%v", name, i, changed)
			}
		}
	}
}
