package testinputs

import "testing"

func TestInputs(t *testing.T) {
	if fw := Firmware(t); len(fw) != 4<<20 {
		t.Fatalf("OVMF.fd is %d bytes, want 4 MiB", len(fw))
	}
	k, rel := Kernel(t)
	if len(k) < 1<<20 || string(k[0x202:0x206]) != "HdrS" || rel == "" {
		t.Fatalf("vmlinuz %d bytes, release %q", len(k), rel)
	}
}
