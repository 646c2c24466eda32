package authenticode

import (
	"bytes"
	"crypto"
	"testing"
)

// FuzzDigest: Digest and Embedded never panic, every hashed range lies in
// the file, and the bytes the hash skips (CheckSum, certificate table) do
// not change the digest. Committed seeds (testdata/fuzz/FuzzDigest) include
// the first 4 KiB of the pinned Debian vmlinuz (its DOS, PE and setup
// headers and section table).
func FuzzDigest(f *testing.F) {
	for _, s := range []synth{
		{numDirs: 16, sections: [][]byte{fill(0x40, 1), fill(0x30, 2)}, trailing: fill(8, 3), cert: fill(16, 4)},
		{pe32: true, numDirs: 6, sections: [][]byte{fill(0x10, 1)}},
		{numDirs: 4, sections: [][]byte{fill(0x10, 1), {}, fill(0x20, 2)}, unordered: true},
	} {
		f.Add(s.build())
	}
	f.Fuzz(func(t *testing.T, image []byte) {
		d, err := Digest(image, crypto.SHA256)
		Embedded(image)
		if err != nil {
			return
		}
		l, err := parse(image)
		if err != nil {
			t.Fatalf("Digest succeeded, parse failed: %v", err)
		}
		r, err := l.ranges()
		if err != nil {
			t.Fatalf("Digest succeeded, ranges failed: %v", err)
		}
		for _, x := range r {
			if x[0] >= x[1] || x[1] > uint64(len(image)) {
				t.Fatalf("range [%#x, %#x) outside file of %#x bytes", x[0], x[1], len(image))
			}
		}
		mut := bytes.Clone(image)
		for i := l.checksum; i < l.checksum+4; i++ {
			mut[i] ^= 0xff
		}
		for i := l.certOff; i < l.certOff+l.certSize; i++ {
			mut[i] ^= 0xff
		}
		d2, err := Digest(mut, crypto.SHA256)
		if err != nil || !bytes.Equal(d, d2) {
			t.Fatalf("changing skipped bytes changed the digest: %x -> %x (%v)", d, d2, err)
		}
	})
}
