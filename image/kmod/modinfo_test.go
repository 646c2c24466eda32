package kmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/deb"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Written by testdata/gen.sh from testdata/modinfo.c.
var wantDemo = Info{
	Name:        "dm_demo",
	Depends:     []string{"dm-mod", "dm-bufio"},
	SoftdepPre:  []string{"crc32c", "sha256-ssse3"},
	SoftdepPost: []string{"dm-verity"},
	Vermagic:    "6.12.107+deb13-amd64 SMP preempt mod_unload modversions ",
	// gcc lays the strings out in reverse order of definition.
	Aliases: []string{"dm-target-demo", "devname:demo"},
}

func TestParseModinfo(t *testing.T) {
	for _, name := range []string{"dm_demo.ko", "dm_demo.ko.xz", "dm_demo.ko.zst", "dm_demo.ko.gz"} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseModinfo(readTestdata(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, wantDemo) {
				t.Errorf("ParseModinfo = %+v, want %+v", got, wantDemo)
			}
		})
	}
}

func TestParseModinfoErrors(t *testing.T) {
	ko := readTestdata(t, "dm_demo.ko")
	xz := readTestdata(t, "dm_demo.ko.xz")
	exec := bytes.Clone(ko)
	binary.LittleEndian.PutUint16(exec[16:], 2) // e_type = ET_EXEC
	tests := []struct {
		name string
		in   []byte
		errs []error
	}{
		{"empty", nil, []error{ErrNotModule}},
		{"text", []byte("#!/bin/sh\necho hi\n"), []error{ErrNotModule}},
		{"truncated ELF", ko[:100], []error{ErrNotModule}},
		{"executable, not relocatable", exec, []error{ErrNotModule}},
		{"no .modinfo", readTestdata(t, "nomodinfo.o"), []error{ErrNoModinfo}},
		{"truncated xz", xz[:len(xz)/2], []error{ErrNotModule, deb.ErrTruncated}},
		{"xz without footer", xz[:len(xz)-12], []error{ErrNotModule, deb.ErrTruncated}},
		{"corrupt xz", func() []byte { b := bytes.Clone(xz); b[100] ^= 1; return b }(), []error{ErrNotModule, deb.ErrCorrupt}},
		{"xz magic only", xz[:6], []error{ErrNotModule}},
		{"truncated zstd", readTestdata(t, "dm_demo.ko.zst")[:300], []error{ErrNotModule}},
		{"truncated gzip", readTestdata(t, "dm_demo.ko.gz")[:300], []error{ErrNotModule}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseModinfo(tc.in)
			for _, want := range tc.errs {
				if !errors.Is(err, want) {
					t.Errorf("ParseModinfo error = %v, want %v", err, want)
				}
			}
		})
	}
}

func TestParseSection(t *testing.T) {
	sec := "\x00\x00depends=\x00softdep=a pre: b  c post: e\x00softdep=pre: f\x00=x\x00alias=\x00name=x-y\x00"
	got := parseSection([]byte(sec))
	want := Info{Name: "x-y", SoftdepPre: []string{"b", "c", "f"}, SoftdepPost: []string{"e"}, Aliases: []string{""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSection(%q) = %+v, want %+v", sec, got, want)
	}
}

// The decompressed size limit holds against a module that inflates.
func TestDecompressLimit(t *testing.T) {
	xz := readTestdata(t, "dm_demo.ko.xz")
	if _, err := parseModinfo(xz, 1000); !errors.Is(err, ErrNotModule) {
		t.Errorf("parseModinfo with a 1000-byte limit on a %d-byte module: error = %v, want ErrNotModule", len(readTestdata(t, "dm_demo.ko")), err)
	}
}
