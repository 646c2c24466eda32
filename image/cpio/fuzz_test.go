package cpio

import (
	"bytes"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// FuzzRead checks that Read never panics and that whatever it accepts
// survives a write-read round trip: the entries can be put in a Tree, written,
// read back unchanged, and writing them again gives the same bytes.
func FuzzRead(f *testing.F) {
	f.Add([]byte{})
	f.Add(archive(
		rec{name: ".", mode: sIFDIR | 0o755},
		rec{name: "etc", mode: sIFDIR | 0o755},
		rec{name: "etc/a", mode: sIFREG | 0o4755, body: "abc"},
		rec{name: "etc/b", mode: sIFREG | 0o600, nlink: 2, ino: 9},
		rec{name: "etc/c", mode: sIFREG | 0o600, nlink: 2, ino: 9, body: "shared"},
		rec{name: "etc/l", mode: sIFLNK | 0o777, body: "a"},
		rec{name: "b", mode: sIFBLK | 0o600, rmajor: 8, rminor: 1},
	))
	f.Add(write(f, treeOf(f,
		fstree.Entry{Path: "dev/console", Kind: fstree.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		fstree.Entry{Path: "init", Kind: fstree.File, Perm: 0o755, Data: []byte("#!/bin/sh\n")},
		fstree.Entry{Path: "bin", Kind: fstree.Symlink, Perm: 0o777, Target: "usr/bin"},
	), testEpoch))
	f.Fuzz(func(t *testing.T, in []byte) {
		es, err := Read(bytes.NewReader(in))
		if err != nil {
			return
		}
		tr, err := fstree.FromEntries(es)
		if err != nil {
			t.Fatalf("Read accepted a listing a Tree rejects: %v", err)
		}
		var w1 bytes.Buffer
		if err := Write(&w1, tr, testEpoch); err != nil {
			t.Fatalf("Write of accepted entries: %v", err)
		}
		es2, err := Read(bytes.NewReader(w1.Bytes()))
		if err != nil {
			t.Fatalf("Read(Write(Read(in))): %v", err)
		}
		if d := fstree.FirstDifference(es, es2); d != nil {
			t.Fatalf("round trip differs: %s", d)
		}
		var w2 bytes.Buffer
		var tr2 fstree.Tree
		for _, e := range es2 {
			if err := tr2.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := Write(&w2, &tr2, testEpoch); err != nil || !bytes.Equal(w1.Bytes(), w2.Bytes()) {
			t.Fatalf("second write differs from the first (%v)", err)
		}
	})
}
