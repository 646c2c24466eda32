package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// rec encodes one newc record independently of the writer under test.
type rec struct {
	name                  string
	mode, uid, nlink, ino uint32
	rmajor, rminor        uint32
	body                  string
	namesize, filesize    *uint32 // override the true sizes
}

func (r rec) bytes() []byte {
	ns, fsz := uint32(len(r.name)+1), uint32(len(r.body))
	if r.namesize != nil {
		ns = *r.namesize
	}
	if r.filesize != nil {
		fsz = *r.filesize
	}
	nlink := r.nlink
	if nlink == 0 {
		nlink = 1
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		r.ino, r.mode, r.uid, 0, nlink, testEpoch, fsz, 0, 0, r.rmajor, r.rminor, ns, 0)
	b.WriteString(r.name + "\x00")
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.WriteString(r.body)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func archive(rs ...rec) []byte {
	var b []byte
	for _, r := range append(rs, rec{name: trailer}) {
		b = append(b, r.bytes()...)
	}
	return b
}

func u32(v uint32) *uint32 { return &v }

func TestReadHandmade(t *testing.T) {
	got, err := Read(bytes.NewReader(archive(
		rec{name: ".", mode: sIFDIR | 0o755},
		rec{name: "./etc", mode: sIFDIR | 0o755, ino: 7},
		rec{name: "/etc/a", mode: sIFREG | 0o644, body: "abc"},
		rec{name: "etc/b", mode: sIFREG | 0o600, nlink: 2, ino: 9},
		rec{name: "etc/c", mode: sIFREG | 0o600, nlink: 2, ino: 9, body: "shared"},
		rec{name: "null", mode: sIFCHR | 0o666, rmajor: 1, rminor: 3},
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := treeOf(t,
		fstree.Entry{Path: "etc", Kind: fstree.Dir, Perm: 0o755},
		fstree.Entry{Path: "etc/a", Kind: fstree.File, Perm: 0o644, Data: []byte("abc")},
		fstree.Entry{Path: "etc/b", Kind: fstree.File, Perm: 0o600, Data: []byte("shared")},
		fstree.Entry{Path: "etc/c", Kind: fstree.File, Perm: 0o600, Data: []byte("shared")},
		fstree.Entry{Path: "null", Kind: fstree.CharDev, Perm: 0o666, Major: 1, Minor: 3},
	).Entries()
	if d := fstree.FirstDifference(want, got); d != nil {
		t.Fatal(d)
	}
}

func TestReadBad(t *testing.T) {
	file := rec{name: "f", mode: sIFREG | 0o644, body: "hello"}
	good := archive(file)
	replace := func(b []byte, at int, s string) []byte {
		b = bytes.Clone(b)
		copy(b[at:], s)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"no trailer", file.bytes(), ErrTruncated},
		{"odc magic", replace(good, 0, "070707"), ErrFormat},
		{"crc magic", replace(good, 0, "070702"), ErrFormat},
		{"bad hex in mode", replace(good, 6+8, "0000g1A4"), ErrFormat},
		{"sign in hex", replace(good, 6+8, "+00081A4"), ErrFormat},
		{"namesize 0", archive(rec{name: "f", mode: sIFREG, namesize: u32(0)}), ErrFormat},
		{"namesize past PATH_MAX", archive(rec{name: "f", mode: sIFREG, namesize: u32(pathMax + 1)}), ErrFormat},
		{"namesize huge", archive(rec{name: "f", mode: sIFREG, namesize: u32(0xffffffff)}), ErrFormat},
		{"namesize past input", rec{name: "f", mode: sIFREG, namesize: u32(4000)}.bytes(), ErrTruncated},
		{"filesize huge", archive(rec{name: "f", mode: sIFREG, filesize: u32(0xffffffff)}), ErrTruncated},
		{"filesize past input", archive(rec{name: "f", mode: sIFREG, body: "ab", filesize: u32(1000)}), ErrTruncated},
		{"name without NUL", replace(good, headerLen+1, "x"), ErrFormat},
		{"NUL inside name", archive(rec{name: "a\x00b", mode: sIFREG}), ErrFormat},
		{"fifo", archive(rec{name: "p", mode: 0o010644}), ErrFormat},
		{"socket", archive(rec{name: "s", mode: 0o140644}), ErrFormat},
		{"mode above 16 bits", archive(rec{name: "f", mode: 0o1100644}), ErrFormat},
		{"data after trailer", append(bytes.Clone(good), 'x', 0, 0, 0), ErrFormat},
		{"second archive", append(bytes.Clone(good), good...), ErrFormat},
		{"owner", archive(rec{name: "f", mode: sIFREG | 0o644, uid: 1000}), ErrUnsupported},
		{"dir with body", archive(rec{name: "d", mode: sIFDIR | 0o755, body: "x"}), ErrFormat},
		{"device with body", archive(rec{name: "c", mode: sIFCHR | 0o600, body: "x"}), ErrFormat},
		{"empty symlink", archive(rec{name: "l", mode: sIFLNK | 0o777}), ErrFormat},
		{"NUL in symlink", archive(rec{name: "l", mode: sIFLNK | 0o777, body: "a\x00"}), ErrFormat},
		{"missing parent", archive(rec{name: "a/b", mode: sIFREG}), ErrFormat},
		{"parent is a file", archive(rec{name: "a", mode: sIFREG}, rec{name: "a/b", mode: sIFREG}), ErrFormat},
		{"parent after child", archive(rec{name: "a/b", mode: sIFREG}, rec{name: "a", mode: sIFDIR | 0o755}), ErrFormat},
		{"duplicate", archive(file, file), ErrFormat},
		{"dot-dot", archive(rec{name: "../etc", mode: sIFDIR | 0o755}), ErrFormat},
		{"unclean", archive(rec{name: "a//b", mode: sIFREG}), ErrFormat},
		{"root is a file", archive(rec{name: ".", mode: sIFREG | 0o644}), ErrFormat},
		{"hard links disagree", archive(
			rec{name: "a", mode: sIFREG, nlink: 2, ino: 5, body: "x"},
			rec{name: "b", mode: sIFREG, nlink: 2, ino: 5, body: "y"}), ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := Read(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read = %d entries, %v; want %v", len(es), err, tc.want)
			}
			if tc.want != ErrTruncated && errors.Is(err, ErrTruncated) {
				t.Fatalf("Read = %v, want a format error that is not truncation", err)
			}
			if !strings.HasPrefix(err.Error(), "cpio: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestReadTruncatedEverywhere cuts a real archive at every offset before the
// end of its trailer record; each cut must be ErrTruncated. Cuts inside the
// zero padding after the trailer leave a valid archive.
func TestReadTruncatedEverywhere(t *testing.T) {
	b := write(t, treeOf(t,
		fstree.Entry{Path: "dev/console", Kind: fstree.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		fstree.Entry{Path: "init", Kind: fstree.File, Perm: 0o755, Data: []byte("#!/bin/sh\n")},
		fstree.Entry{Path: "bin", Kind: fstree.Symlink, Perm: 0o777, Target: "usr/bin"},
	), testEpoch)
	end := bytes.Index(b, []byte(trailer+"\x00")) + len(trailer) + 1
	end = int(align4(uint64(end)))
	for n := 0; n < len(b); n++ {
		_, err := Read(bytes.NewReader(b[:n]))
		switch {
		case n < end && !errors.Is(err, ErrTruncated):
			t.Fatalf("cut at %d of %d: %v, want ErrTruncated", n, len(b), err)
		case n >= end && err != nil:
			t.Fatalf("cut at %d (inside the trailing padding): %v", n, err)
		}
	}
}
