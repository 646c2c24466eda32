package deb

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Tests against real Debian packages. They are not committed (100+ MB); the
// build fetches them. Point COCOON_DEB_DIR at the directory holding them.
const (
	ovmfDeb   = "ovmf_2025.02-8+deb13u1_all.deb"
	kernelDeb = "linux-image-6.12.107+deb13-amd64_6.12.107-1_amd64.deb"
	kernelVer = "6.12.107+deb13-amd64"
)

func openDeb(tb testing.TB, name string) (*os.File, int64) {
	tb.Helper()
	dir := os.Getenv("COCOON_DEB_DIR")
	if dir == "" {
		dir = "/tmp/trixie/archives"
	}
	f, err := os.Open(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		tb.Skipf("%s not in %s (set COCOON_DEB_DIR)", name, dir)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	return f, st.Size()
}

func TestRealOVMF(t *testing.T) {
	f, size := openDeb(t, ovmfDeb)
	var got int64 = -1
	err := Walk(f, size, func(name string, hdr *tar.Header, r io.Reader) error {
		if name != "usr/share/ovmf/OVMF.fd" {
			return nil
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return err
		}
		if n != hdr.Size {
			t.Errorf("OVMF.fd: read %d bytes, header says %d", n, hdr.Size)
		}
		got = n
		return ErrStop
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != 4194304 {
		t.Errorf("usr/share/ovmf/OVMF.fd has %d bytes, want 4194304", got)
	}
}

func TestRealKernelVmlinuz(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses 110 MB")
	}
	f, size := openDeb(t, kernelDeb)
	name := "boot/vmlinuz-" + kernelVer
	files, err := Extract(f, size, func(n string) bool { return n == name })
	if err != nil {
		t.Fatal(err)
	}
	k := files[name]
	// A bzImage: PE/COFF stub "MZ", and the boot protocol's "HdrS" at 0x202
	// (Documentation/arch/x86/boot.rst).
	if len(k) < 1<<20 || !bytes.HasPrefix(k, []byte("MZ")) || string(k[0x202:0x206]) != "HdrS" {
		t.Fatalf("%s: %d bytes, want a bzImage of several MB starting MZ with HdrS at 0x202", name, len(k))
	}
	t.Logf("%s: %d bytes", name, len(k))
}

// BenchmarkKernelXZ measures decoding the kernel package's data.tar.xz
// (five 24 MiB xz blocks). MB/s is of decompressed output.
//
//	go test -run=NONE -bench=KernelXZ -benchtime=3x ./image/deb/
func BenchmarkKernelXZ(b *testing.B) {
	f, size := openDeb(b, kernelDeb)
	data, err := dataMember(f, size)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		workers int
	}{{"sequential", 1}, {"parallel", defaultLimits.xzWorkers}} {
		b.Run(bc.name, func(b *testing.B) {
			lim := defaultLimits
			lim.xzWorkers = bc.workers
			for b.Loop() {
				dec, err := decompress(io.NewSectionReader(f, data.Offset, data.Size), data.Name, lim)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, dec)
				dec.Close()
				if err != errStreamEnd {
					b.Fatal(err)
				}
				b.SetBytes(n)
			}
		})
	}
}
