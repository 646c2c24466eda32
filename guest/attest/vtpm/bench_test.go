package vtpm

import "testing"

// BenchmarkVerify verifies recorded swtpm evidence (no TPM needed): one
// signature verification, two decodes, two or three hashes.
func BenchmarkVerify(b *testing.B) {
	for _, name := range recordings {
		ev, rd, _ := loadRecording(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Verify(ev, rd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
