package build

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/deb"
	"github.com/cocoon-appliance/cocoon/image/fetch"
	"github.com/cocoon-appliance/cocoon/image/lock"
)

// ErrUnpack is returned when the unpacked copy of a package is missing a
// file or no longer matches what was unpacked.
var ErrUnpack = errors.New("build: unpacked package")

// unpackVersion names the layout of the unpack cache; bump it when
// unpacking changes so stale trees are not reused.
const unpackVersion = "v1"

// contentsName lists, in an unpacked tree, every regular file with its size
// and sha256, written last: a tree without it is incomplete and ignored.
const contentsName = ".contents"

// Unpacked is the regular files of one verified .deb, extracted once into
// <cache>/unpacked/<deb sha256>-v1/ so warm builds skip decompression (the
// kernel's data.tar.xz takes seconds to inflate). Every file read through
// ReadFile is checked against the digest recorded when it was extracted from
// the verified package, so a tampered cache is detected, not used.
type Unpacked struct {
	Pkg   lock.Package
	Dir   string
	files map[string]fileSum
}

type fileSum struct {
	size   int64
	sha256 string
}

// Files lists the paths of the unpacked regular files, sorted.
func (u *Unpacked) Files() []string {
	out := make([]string, 0, len(u.files))
	for p := range u.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Has says whether the package holds the regular file p.
func (u *Unpacked) Has(p string) bool { _, ok := u.files[p]; return ok }

// ReadFile returns the content of p after checking it against the digest
// recorded at extraction.
func (u *Unpacked) ReadFile(p string) ([]byte, error) {
	sum, ok := u.files[p]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no file %s", ErrUnpack, u.Pkg, p)
	}
	b, err := os.ReadFile(filepath.Join(u.Dir, filepath.FromSlash(p)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnpack, u.Pkg, err)
	}
	h := sha256.Sum256(b)
	if int64(len(b)) != sum.size || hex.EncodeToString(h[:]) != sum.sha256 {
		return nil, fmt.Errorf("%w: %s: %s in %s changed since it was unpacked (sha256 %x, want %s); delete that directory to unpack again", ErrUnpack, u.Pkg, p, u.Dir, h, sum.sha256)
	}
	return b, nil
}

// unpack returns the unpacked tree of p, extracting the cached .deb when
// there is no complete tree yet. The .deb is verified against the lock
// first either way.
func unpack(cache string, p lock.Package) (*Unpacked, bool, error) {
	debPath := fetch.Path(cache, p)
	if err := fetch.Verify(debPath, p); err != nil {
		return nil, false, err
	}
	dir := filepath.Join(cache, "unpacked", p.SHA256+"-"+unpackVersion)
	if u, err := loadUnpacked(dir, p); err == nil {
		return u, false, nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, false, err
	}
	tmp, err := os.MkdirTemp(parent, ".unpack-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmp) // gone after the rename below, or a failed try
	if err := extract(debPath, p, tmp); err != nil {
		return nil, false, err
	}
	os.RemoveAll(dir) // an incomplete tree from a crash
	if err := os.Rename(tmp, dir); err != nil {
		return nil, false, err
	}
	u, err := loadUnpacked(dir, p)
	return u, true, err
}

func extract(debPath string, p lock.Package, dir string) error {
	f, err := os.Open(debPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var lines []string
	err = deb.Walk(f, st.Size(), func(name string, hdr *tar.Header, r io.Reader) error {
		if hdr.Typeflag != tar.TypeReg {
			return nil // directories are implied; symlinks are not used from packages
		}
		if name == contentsName || strings.HasPrefix(name, "../") || path.IsAbs(name) {
			return fmt.Errorf("%w: %s: unsafe path %q", ErrUnpack, p, name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(out, h), r)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%x %d %s", h.Sum(nil), n, name))
		return nil
	})
	if err != nil {
		return fmt.Errorf("unpacking %s: %w", p, err)
	}
	sort.Strings(lines)
	return os.WriteFile(filepath.Join(dir, contentsName), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func loadUnpacked(dir string, p lock.Package) (*Unpacked, error) {
	f, err := os.Open(filepath.Join(dir, contentsName))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &Unpacked{Pkg: p, Dir: dir, files: map[string]fileSum{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("%w: %s: bad line %q", ErrUnpack, dir, sc.Text())
		}
		n, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: bad line %q", ErrUnpack, dir, sc.Text())
		}
		u.files[parts[2]] = fileSum{size: n, sha256: parts[0]}
	}
	return u, sc.Err()
}

// Unpack returns the verified, unpacked contents of a pinned package from
// the cache (unpacking it on first use). Other packages' tests use it to
// read the real firmware and kernel.
func Unpack(cache string, p lock.Package) (*Unpacked, error) {
	u, _, err := unpack(cache, p)
	return u, err
}

// KernelImage returns the kernel release and the path of vmlinuz inside an
// unpacked kernel package.
func KernelImage(u *Unpacked) (release, vmlinuz string, err error) {
	k, err := findKernel(u)
	return k.release, k.vmlinuz, err
}
