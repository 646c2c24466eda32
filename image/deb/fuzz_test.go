package deb

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Seed corpora live in testdata/fuzz/<Target>/ and are written by
// TestWriteFuzzSeeds (COCOON_UPDATE_SEEDS=1), from the same builders the
// table tests use.

func FuzzMembers(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := Members(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrNotDeb) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("Members error %v wraps neither ErrNotDeb nor ErrTruncated", err)
			}
			return
		}
		// Accepted: members lie within the file, in order, without overlap.
		end := int64(len(arMagic))
		var rebuilt []arMember
		for _, m := range ms {
			if m.Offset < end+arHeaderSize || m.Size < 0 || m.Offset+m.Size > int64(len(data)) {
				t.Fatalf("member %+v outside [%d, %d)", m, end+arHeaderSize, len(data))
			}
			end = m.Offset + m.Size
			rebuilt = append(rebuilt, arMember{m.Name, data[m.Offset:end]})
		}
		// Round trip: writing the members again reads back the same.
		again := arArchive(rebuilt...)
		ms2, err := Members(bytes.NewReader(again), int64(len(again)))
		if err != nil || len(ms2) != len(ms) {
			t.Fatalf("rebuilt archive: %d members, %v; want %d", len(ms2), err, len(ms))
		}
		for i := range ms {
			if ms[i].Name != ms2[i].Name || ms[i].Size != ms2[i].Size {
				t.Fatalf("rebuilt member %d = %+v, want %+v", i, ms2[i], ms[i])
			}
		}
	})
}

// fuzzLimits keep each input cheap: small dictionaries and windows, and at
// most 4 MiB of decompressed data, so no input can hang the fuzzer.
var fuzzLimits = limits{xzDict: 1 << 20, zstdWindow: 1 << 20, xzWorkers: 2, maxOut: 4 << 20}

func FuzzWalk(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := 0
		err := walk(bytes.NewReader(data), int64(len(data)), fuzzLimits, func(name string, hdr *tar.Header, r io.Reader) error {
			if name != path.Clean(name) || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
				t.Fatalf("Walk passed unclean name %q (from %q)", name, hdr.Name)
			}
			if entries++; entries > 1000 {
				return ErrStop
			}
			_, err := io.Copy(io.Discard, r)
			return err
		})
		if err == nil {
			return
		}
		for _, sentinel := range []error{ErrNotDeb, ErrTruncated, ErrNoData, ErrCompression, ErrCorrupt, ErrBadPath, errOutputLimit} {
			if errors.Is(err, sentinel) {
				return
			}
		}
		t.Fatalf("Walk error %v wraps none of the package's sentinels", err)
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("COCOON_UPDATE_SEEDS") == "" {
		t.Skip("set COCOON_UPDATE_SEEDS=1 to rewrite testdata/fuzz")
	}
	valid := arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"odd/", []byte("abc")}, arMember{"data.tar", nil})
	writeSeeds(t, "FuzzMembers", map[string][]byte{
		"valid":        valid,
		"magic-only":   []byte(arMagic),
		"cut-header":   valid[:100],
		"cut-member":   valid[:135],
		"bad-size":     bytes.Replace(valid, []byte("3         `"), []byte("-3        `"), 1),
		"bad-end-mark": bytes.Replace(valid, []byte("4         `\n"), []byte("4         \n\n"), 1),
	})
	small := tarball(t,
		tarEntry{name: "./", typeflag: tar.TypeDir},
		tarEntry{name: "./boot/vmlinuz", typeflag: tar.TypeReg, body: strings.Repeat("kernel", 40)},
		tarEntry{name: "./usr/lib/x", typeflag: tar.TypeSymlink, link: "../../boot/vmlinuz"})
	seeds := map[string][]byte{
		"plain":    arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"control.tar", nil}, arMember{"data.tar", small[:512]}),
		"gz":       debFile(t, ".gz", small),
		"xz":       debFile(t, ".xz", small),
		"zst":      debFile(t, ".zst", small),
		"no-data":  arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"control.tar", nil}),
		"dotdot":   debFile(t, ".gz", tarball(t, tarEntry{name: "../x", typeflag: tar.TypeReg})),
		"bz2":      arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"control.tar", nil}, arMember{"data.tar.bz2", nil}),
		"xz-multi": xzDeb(t, compress(t, ".xz", small, 512)),
	}
	writeSeeds(t, "FuzzWalk", seeds)
}

// writeSeeds writes corpus files in the format of "go test fuzz v1".
func writeSeeds(t *testing.T, target string, seeds map[string][]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
