package deb

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func walkNames(t *testing.T, deb []byte) ([]string, error) {
	t.Helper()
	var names []string
	err := Walk(bytes.NewReader(deb), int64(len(deb)), func(name string, hdr *tar.Header, r io.Reader) error {
		names = append(names, name)
		return nil
	})
	return names, err
}

func TestWalkCompressions(t *testing.T) {
	want := []string{".", "usr", "usr/share", "usr/share/ovmf", "usr/share/ovmf/OVMF.fd", "usr/share/ovmf/odd", "usr/share/qemu/OVMF.fd"}
	for _, ext := range []string{"", ".gz", ".xz", ".zst"} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			deb := debFile(t, ext, sampleTar(t))
			got, err := walkNames(t, deb)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Walk names = %q, want %q", got, want)
			}
			files, err := Extract(bytes.NewReader(deb), int64(len(deb)), func(name string) bool {
				return strings.HasSuffix(name, "OVMF.fd")
			})
			if err != nil {
				t.Fatal(err)
			}
			// The symlink is kept by name but not resolved, so it is absent.
			if want := map[string][]byte{"usr/share/ovmf/OVMF.fd": []byte("firmware volume")}; !reflect.DeepEqual(files, want) {
				t.Errorf("Extract = %q, want %q", files, want)
			}
		})
	}
}

func TestWalkStop(t *testing.T) {
	deb := debFile(t, ".xz", sampleTar(t))
	var seen int
	err := Walk(bytes.NewReader(deb), int64(len(deb)), func(name string, hdr *tar.Header, r io.Reader) error {
		seen++
		if name == "usr/share" {
			return ErrStop
		}
		return nil
	})
	if err != nil || seen != 3 {
		t.Fatalf("Walk with ErrStop at entry 3: err = %v after %d entries, want nil after 3", err, seen)
	}
	boom := errors.New("boom")
	err = Walk(bytes.NewReader(deb), int64(len(deb)), func(string, *tar.Header, io.Reader) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Walk error = %v, want the callback's error", err)
	}
}

func TestPackageLayout(t *testing.T) {
	data := compress(t, ".gz", sampleTar(t), 0)
	control := compress(t, ".gz", tarball(t, tarEntry{name: "./control", typeflag: tar.TypeReg, body: "Package: x\n"}), 0)
	bin := arMember{"debian-binary", []byte("2.0\n")}
	ctl := arMember{"control.tar.gz", control}
	tests := []struct {
		name    string
		members []arMember
		err     error
	}{
		{"dpkg layout", []arMember{bin, ctl, {"data.tar.gz", data}}, nil},
		{"GNU ar names", []arMember{{"debian-binary/", []byte("2.0\n")}, {"control.tar.gz/", control}, {"data.tar.gz/", data}}, nil},
		{"newer minor and extra line", []arMember{{"debian-binary", []byte("2.10\nfuture\n")}, ctl, {"data.tar.gz", data}}, nil},
		{"underscore members", []arMember{bin, {"_gpgorigin", []byte("sig")}, ctl, {"_x", nil}, {"data.tar.gz", data}}, nil},
		{"trailing members", []arMember{bin, ctl, {"data.tar.gz", data}, {"extra", []byte("x")}}, nil},
		{"missing debian-binary", []arMember{ctl, {"data.tar.gz", data}}, ErrNotDeb},
		{"empty archive", nil, ErrNotDeb},
		{"version 1", []arMember{{"debian-binary", []byte("1.0\n")}, ctl, {"data.tar.gz", data}}, ErrNotDeb},
		{"version 3", []arMember{{"debian-binary", []byte("3.0\n")}, ctl, {"data.tar.gz", data}}, ErrNotDeb},
		{"version without newline", []arMember{{"debian-binary", []byte("2.0")}, ctl, {"data.tar.gz", data}}, ErrNotDeb},
		{"huge debian-binary", []arMember{{"debian-binary", bytes.Repeat([]byte("2.0\n"), 2000)}, ctl, {"data.tar.gz", data}}, ErrNotDeb},
		{"missing control", []arMember{bin, {"data.tar.gz", data}}, ErrNotDeb},
		{"unknown member first", []arMember{bin, {"evil", nil}, ctl, {"data.tar.gz", data}}, ErrNotDeb},
		{"missing data", []arMember{bin, ctl}, ErrNoData},
		{"bzip2 data", []arMember{bin, ctl, {"data.tar.bz2", data}}, ErrCompression},
		{"lzma data", []arMember{bin, ctl, {"data.tar.lzma", data}}, ErrCompression},
		{"gzip data named xz", []arMember{bin, ctl, {"data.tar.xz", data}}, ErrCorrupt},
		{"xz data named gz", []arMember{bin, ctl, {"data.tar.gz", compress(t, ".xz", sampleTar(t), 0)}}, ErrCorrupt},
		{"empty data.tar.gz", []arMember{bin, ctl, {"data.tar.gz", nil}}, ErrTruncated},
		{"empty data.tar.xz", []arMember{bin, ctl, {"data.tar.xz", nil}}, ErrTruncated},
		{"empty data.tar.zst", []arMember{bin, ctl, {"data.tar.zst", nil}}, ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := walkNames(t, arArchive(tc.members...))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Walk error = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestUnsafeNames(t *testing.T) {
	for _, name := range []string{"../etc/passwd", "./../x", "/etc/passwd", "a/../../b"} {
		deb := debFile(t, "", tarball(t, tarEntry{name: name, typeflag: tar.TypeReg, body: "x"}))
		if _, err := walkNames(t, deb); !errors.Is(err, ErrBadPath) {
			t.Errorf("Walk with entry %q: error = %v, want ErrBadPath", name, err)
		}
	}
	deb := debFile(t, "", tarball(t, tarEntry{name: "./a/./b/../c", typeflag: tar.TypeReg}))
	if got, err := walkNames(t, deb); err != nil || !reflect.DeepEqual(got, []string{"a/c"}) {
		t.Errorf("Walk = %q, %v, want [a/c]", got, err)
	}
}

// Cutting a package anywhere must fail, and say ErrTruncated, except where
// the cut falls exactly between ar members: then the archive is well formed
// but incomplete as a package.
func TestTruncatedEverywhere(t *testing.T) {
	for _, ext := range []string{"", ".gz", ".xz", ".zst"} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			deb := debFile(t, ext, sampleTar(t))
			ms, err := Members(bytes.NewReader(deb), int64(len(deb)))
			if err != nil {
				t.Fatal(err)
			}
			boundary := map[int]error{len(arMagic): ErrNotDeb}
			for _, m := range ms[:len(ms)-1] {
				boundary[int(m.Offset+m.Size+m.Size%2)] = ErrNoData
			}
			for n := 0; n < len(deb); n++ {
				want, ok := boundary[n]
				if !ok {
					want = ErrTruncated
				}
				if _, err := walkNames(t, deb[:n]); !errors.Is(err, want) {
					t.Fatalf("cut at %d of %d: error = %v, want %v", n, len(deb), err, want)
				}
			}
		})
	}
}

// A data.tar member that is complete as far as ar is concerned but holds a
// cut-off stream is also a truncated package: the compressed stream lacks its
// trailer, or the tar lacks its end-of-archive blocks, even when the cut falls
// on a tar record or xz block boundary.
func TestTruncatedStream(t *testing.T) {
	tarData := tarball(t, tarEntry{name: "./big", typeflag: tar.TypeReg, body: strings.Repeat("0123456789abcdef", 300)})
	for _, ext := range []string{"", ".gz", ".xz", ".zst"} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			full := compress(t, ext, tarData, 0)
			ctl := compress(t, ".gz", tarball(t, tarEntry{name: "./control", typeflag: tar.TypeReg}), 0)
			for n := 0; n < len(full); n++ {
				deb := arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"control.tar.gz", ctl}, arMember{"data.tar" + ext, full[:n]})
				if _, err := walkNames(t, deb); !errors.Is(err, ErrTruncated) {
					t.Fatalf("stream cut at %d of %d: error = %v, want ErrTruncated", n, len(full), err)
				}
			}
		})
	}
}
