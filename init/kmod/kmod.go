// Package kmod loads the initrd's kernel modules in the order the image
// builder resolved (lib/modules/<release>/modules.load; Debian ships no
// modules.dep, so dependencies are resolved at build time).
package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ModulesLoad is the load-order file in the release's module directory.
const ModulesLoad = "modules.load"

// initCompressedFile is MODULE_INIT_COMPRESSED_FILE (include/uapi/linux/module.h,
// Linux >= 6.5): the kernel decompresses the .ko.xz itself
// (CONFIG_MODULE_DECOMPRESS=y in Debian's 6.12).
const initCompressedFile = 4

// Loader loads one module file.
type Loader interface {
	Load(path string) error
}

// Finit is the real Loader: finit_module(2) with MODULE_INIT_COMPRESSED_FILE.
type Finit struct{}

// Load opens the file and hands its descriptor to the kernel.
func (Finit) Load(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), "", initCompressedFile)
}

// Dir is the module directory of a kernel release.
func Dir(release string) string { return "/lib/modules/" + release }

// Result counts what LoadAll did.
type Result struct {
	Loaded, Present int
	// Absent lists modules whose init returned ENODEV: their hardware is
	// not there (tdx-guest outside a TD). Whether that hardware is required
	// is for the measurement and attestation steps to decide, not this one.
	Absent []string
}

// LoadAll reads dir/modules.load and loads each listed file in order.
// EEXIST (already loaded or built in) and ENODEV (no such hardware) are not
// errors; anything else stops
// the load, naming the module.
func LoadAll(readFile func(string) ([]byte, error), ld Loader, dir string) (Result, error) {
	var r Result
	list, err := readFile(path.Join(dir, ModulesLoad))
	if err != nil {
		return r, err
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || strings.HasPrefix(rel, "#") {
			continue
		}
		if path.IsAbs(rel) || strings.Contains(rel, "..") {
			return r, fmt.Errorf("%s: module path %q, want a path inside %s", ModulesLoad, rel, dir)
		}
		switch err := ld.Load(path.Join(dir, rel)); {
		case err == nil:
			r.Loaded++
		case errors.Is(err, unix.EEXIST):
			r.Present++
		case errors.Is(err, unix.ENODEV):
			r.Absent = append(r.Absent, rel)
		default:
			return r, fmt.Errorf("insmod %s: %w", rel, err)
		}
	}
	return r, sc.Err()
}
