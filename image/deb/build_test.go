package deb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Builders for synthetic packages. They write the formats the way dpkg-deb
// does, so tests need no tool and no file from the build machine.

type arMember struct {
	name string // written as is, so tests can use "name/" or bad names
	data []byte
}

// arArchive writes an ar archive with 60-byte headers and '\n' padding.
func arArchive(members ...arMember) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 1700000000, 0, 0, "100644", len(m.data))
		b.Write(m.data)
		if len(m.data)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

type tarEntry struct {
	name     string
	typeflag byte
	body     string
	link     string
}

func tarball(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link, Format: tar.FormatGNU}
		if e.typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body[:hdr.Size])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// compress returns data compressed for the member suffix ext ("", ".gz",
// ".xz", ".zst"). xzBlock > 0 makes a multi-block xz stream.
func compress(t testing.TB, ext string, data []byte, xzBlock int64) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch ext {
	case "":
		return data
	case ".gz":
		w := gzip.NewWriter(&b)
		_, err = w.Write(data)
		err = firstErr(err, w.Close())
	case ".xz":
		var w *xz.Writer
		if w, err = (xz.WriterConfig{BlockSize: xzBlock, DictCap: 1 << 16}).NewWriter(&b); err == nil {
			_, err = w.Write(data)
			err = firstErr(err, w.Close())
		}
	case ".zst":
		var w *zstd.Encoder
		if w, err = zstd.NewWriter(&b); err == nil {
			_, err = w.Write(data)
			err = firstErr(err, w.Close())
		}
	default:
		t.Fatalf("no compressor for %q", ext)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// sampleTar is a small data.tar as dpkg-deb lays it out: "./" first,
// directories before their contents, a symlink.
func sampleTar(t testing.TB) []byte {
	return tarball(t,
		tarEntry{name: "./", typeflag: tar.TypeDir},
		tarEntry{name: "./usr/", typeflag: tar.TypeDir},
		tarEntry{name: "./usr/share/", typeflag: tar.TypeDir},
		tarEntry{name: "./usr/share/ovmf/", typeflag: tar.TypeDir},
		tarEntry{name: "./usr/share/ovmf/OVMF.fd", typeflag: tar.TypeReg, body: "firmware volume"},
		tarEntry{name: "./usr/share/ovmf/odd", typeflag: tar.TypeReg, body: "odd"},
		tarEntry{name: "./usr/share/qemu/OVMF.fd", typeflag: tar.TypeSymlink, link: "../ovmf/OVMF.fd"},
	)
}

// debFile builds a .deb whose data member is data.tar+ext holding tarData.
func debFile(t testing.TB, ext string, tarData []byte) []byte {
	t.Helper()
	control := compress(t, ".gz", tarball(t,
		tarEntry{name: "./", typeflag: tar.TypeDir},
		tarEntry{name: "./control", typeflag: tar.TypeReg, body: "Package: sample\nVersion: 1\n"}), 0)
	return arArchive(
		arMember{"debian-binary", []byte("2.0\n")},
		arMember{"control.tar.gz", control},
		arMember{"data.tar" + ext, compress(t, ext, tarData, 0)},
	)
}
