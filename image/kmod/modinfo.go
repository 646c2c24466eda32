// Package kmod resolves, at image build time, which kernel modules the guest
// needs and in which order to load them.
//
// depmod would normally write modules.dep for this, but Debian's kernel
// package ships no modules.dep (the postinst runs depmod), and the image is
// built without running anything from the package. So the dependency data is
// read where depmod reads it: the .modinfo section of each module.
package kmod

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/deb"
	"github.com/klauspost/compress/zstd"
)

// Errors returned (wrapped) by this package; test them with errors.Is.
var (
	// ErrNotModule: the bytes are not an ELF relocatable object, plain or
	// compressed with xz, zstd or gzip.
	ErrNotModule = errors.New("not a kernel module")
	// ErrNoModinfo: the object has no .modinfo section.
	ErrNoModinfo = errors.New("no .modinfo section")
	// ErrUnknownModule: a wanted module or a hard dependency is neither a
	// module file nor built into the kernel.
	ErrUnknownModule = errors.New("unknown module")
	// ErrCycle: modules depend on each other in a loop, so no load order
	// exists.
	ErrCycle = errors.New("module dependency cycle")
)

// maxModuleSize bounds the decompressed size of one module. The largest
// module in Debian's 6.12 kernel (amdgpu) is about 20 MB.
const maxModuleSize = 256 << 20

// Info is what modinfo says about one module. Names are as written in the
// module ("dm-mod"); use Normalize to compare them.
type Info struct {
	Name        string   // name=, added by modpost; empty in objects without it
	Depends     []string // depends=, modpost's comma list of modules whose symbols it uses
	SoftdepPre  []string // softdep= "pre:" modules, to load before this one
	SoftdepPost []string // softdep= "post:" modules, to load after it
	Vermagic    string   // vermagic=, the kernel release and build options
	Aliases     []string // alias=, for device and name matching
}

// ParseModinfo reads the .modinfo section of a module, given as raw ELF
// bytes or compressed as the kernel's modules_install writes them (.ko.xz,
// .ko.zst, .ko.gz, told apart by their magic bytes).
func ParseModinfo(data []byte) (Info, error) {
	return parseModinfo(data, maxModuleSize)
}

func parseModinfo(data []byte, limit int64) (Info, error) {
	raw, err := decompress(data, limit)
	if err != nil {
		return Info{}, err
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrNotModule, err)
	}
	defer f.Close()
	if f.Type != elf.ET_REL {
		return Info{}, fmt.Errorf("ELF type %v, want ET_REL (a .ko is a relocatable object): %w", f.Type, ErrNotModule)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return Info{}, ErrNoModinfo
	}
	if sec.Type != elf.SHT_PROGBITS {
		return Info{}, fmt.Errorf(".modinfo has type %v, want SHT_PROGBITS: %w", sec.Type, ErrNotModule)
	}
	if sec.Size > uint64(len(raw)) {
		return Info{}, fmt.Errorf(".modinfo claims %d bytes in a %d-byte file: %w", sec.Size, len(raw), ErrNotModule)
	}
	b, err := sec.Data()
	if err != nil {
		return Info{}, fmt.Errorf("reading .modinfo: %w: %w", ErrNotModule, err)
	}
	return parseSection(b), nil
}

// parseSection splits .modinfo into its "tag=value" strings. MODULE_INFO
// (include/linux/moduleparam.h) emits each as a NUL-terminated string,
// byte-aligned, so strings follow each other with one NUL between them;
// empty strings (from alignment) and strings without '=' are skipped, as
// the kernel's get_next_modinfo does.
func parseSection(b []byte) Info {
	var info Info
	for _, s := range strings.Split(string(b), "\x00") {
		tag, val, ok := strings.Cut(s, "=")
		if !ok {
			continue
		}
		switch tag {
		case "name":
			info.Name = val
		case "depends":
			// scripts/mod/modpost.c add_depends: "depends=a,b", possibly empty.
			for _, d := range strings.Split(val, ",") {
				if d != "" {
					info.Depends = append(info.Depends, d)
				}
			}
		case "softdep":
			pre, post := parseSoftdep(val)
			info.SoftdepPre = append(info.SoftdepPre, pre...)
			info.SoftdepPost = append(info.SoftdepPost, post...)
		case "vermagic":
			info.Vermagic = val
		case "alias":
			info.Aliases = append(info.Aliases, val)
		}
	}
	return info
}

// parseSoftdep reads MODULE_SOFTDEP's "pre: a b post: c" (include/linux/
// module.h), the syntax of modprobe.d's softdep. Names before any "pre:" or
// "post:" are ignored, as libkmod does.
func parseSoftdep(s string) (pre, post []string) {
	var into *[]string
	for _, tok := range strings.Fields(s) {
		switch tok {
		case "pre:":
			into = &pre
		case "post:":
			into = &post
		default:
			if into != nil {
				*into = append(*into, tok)
			}
		}
	}
	return pre, post
}

// decompress returns the ELF bytes of a module, reading at most limit bytes.
func decompress(data []byte, limit int64) ([]byte, error) {
	var r io.Reader
	switch {
	case bytes.HasPrefix(data, []byte("\xfd7zXZ\x00")):
		xr, err := deb.NewXZReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("xz: %w: %w", ErrNotModule, err)
		}
		defer xr.Close()
		r = xr
	case bytes.HasPrefix(data, []byte{0x28, 0xB5, 0x2F, 0xFD}):
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(16<<20), zstd.WithDecoderMaxMemory(uint64(limit)))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w: %w", ErrNotModule, err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(data, []byte{0x1F, 0x8B}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w: %w", ErrNotModule, err)
		}
		r = zr
	default:
		return data, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing module: %w: %w", ErrNotModule, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("module decompresses to more than %d bytes: %w", limit, ErrNotModule)
	}
	return raw, nil
}
