package squashfs

import (
	"bytes"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// memFile is an in-memory image for writeWith.
type memFile struct{ b []byte }

func (m *memFile) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

// storeCodec never shrinks anything, so every block is stored raw.
type storeCodec struct{ gzipCodec }

func (storeCodec) compress(src []byte) ([]byte, error) { return src, nil }

func fuzzSeed(t testing.TB, tr *fstree.Tree, c codec) []byte {
	var m memFile
	if err := writeWith(&m, tr, testEpoch, 4096, c); err != nil {
		t.Fatal(err)
	}
	return m.b[:le.Uint64(m.b[40:])] // without the padding
}

func seedTree(t testing.TB) *fstree.Tree {
	var tr fstree.Tree
	for _, e := range []fstree.Entry{
		{Path: "bin", Kind: fstree.Symlink, Perm: 0o777, Target: "usr/bin"},
		{Path: "dev/console", Kind: fstree.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "dev/sda", Kind: fstree.BlockDev, Perm: 0o660, Major: 8, Minor: 300},
		{Path: "etc/hostname", Kind: fstree.File, Perm: 0o644, Data: []byte("cocoon\n")},
		{Path: "etc/empty", Kind: fstree.File, Perm: 0o644},
		{Path: "tmp", Kind: fstree.Dir, Perm: 0o1777},
		{Path: "usr/bin/su", Kind: fstree.File, Perm: 0o4755, Data: bytes.Repeat([]byte("su"), 2100)},
	} {
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return &tr
}

// FuzzRead checks that the reader never panics, never allocates beyond its
// budget, and that whatever it accepts survives a round trip: the entries
// make a Tree, which writes an image that reads back as the same entries
// and writes the same bytes again.
func FuzzRead(f *testing.F) {
	f.Add(fuzzSeed(f, seedTree(f), &storeCodec{}))
	f.Add(fuzzSeed(f, seedTree(f), &gzipCodec{}))
	z, err := newZstd()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fuzzSeed(f, seedTree(f), z))
	f.Fuzz(func(t *testing.T, in []byte) {
		es, err := readImage(bytes.NewReader(in), uint64(len(in)), 16<<20)
		if err != nil {
			return
		}
		tr, err := fstree.FromEntries(es)
		if err != nil {
			t.Fatalf("Read accepted a listing a Tree rejects: %v", err)
		}
		var w1, w2 memFile
		if err := writeWith(&w1, tr, testEpoch, 4096, &gzipCodec{}); err != nil {
			t.Fatalf("Write of accepted entries: %v", err)
		}
		es2, err := readImage(bytes.NewReader(w1.b), uint64(len(w1.b)), 1<<30)
		if err != nil {
			t.Fatalf("Read(Write(Read(in))): %v", err)
		}
		if d := fstree.FirstDifference(es, es2); d != nil {
			t.Fatalf("round trip differs: %s", d)
		}
		if err := writeWith(&w2, tr, testEpoch, 4096, &gzipCodec{}); err != nil || !bytes.Equal(w1.b, w2.b) {
			t.Fatalf("second write differs from the first (%v)", err)
		}
	})
}
