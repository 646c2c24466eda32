package kmod

import (
	"path"
	"strings"
)

// Normalize returns the canonical form of a module name. The kernel treats
// '-' and '_' in module names as the same character (kernel/params.c
// parameq, and modpost writes KBUILD_MODNAME with '_'), so "dm-mod",
// "dm_mod" and the file dm-mod.ko.xz all name module dm_mod.
func Normalize(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// moduleName returns the module name of a file path such as
// "kernel/drivers/md/dm-mod.ko.xz", or "" if the path is not a module.
func moduleName(p string) string {
	base := path.Base(p)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if name, ok := strings.CutSuffix(base, ext); ok && name != "" {
			return Normalize(name)
		}
	}
	return ""
}

// Index knows every module of one kernel: the file of each loadable module
// and the set of modules built into the image.
type Index struct {
	modules map[string]string // normalized name -> path relative to the modules dir
	builtin map[string]bool   // normalized names from modules.builtin
}

// NewIndex builds the index from every module file path relative to the
// modules directory (e.g. "kernel/drivers/md/dm-verity.ko.xz") and the
// contents of modules.builtin (one path per line, such as
// "kernel/drivers/virtio/virtio_pci.ko"). Paths that are not modules are
// ignored. If two files give the same name, the one depmod picks under its
// default search order wins: "updates/" before everything else, then the
// lexically smallest path, so the result never depends on input order.
func NewIndex(paths []string, builtin []byte) *Index {
	ix := &Index{modules: map[string]string{}, builtin: map[string]bool{}}
	for _, p := range paths {
		name := moduleName(p)
		if name == "" {
			continue
		}
		if old, ok := ix.modules[name]; !ok || preferred(p, old) {
			ix.modules[name] = p
		}
	}
	for _, line := range strings.Split(string(builtin), "\n") {
		if name := moduleName(strings.TrimSpace(line)); name != "" {
			ix.builtin[name] = true
		}
	}
	return ix
}

// preferred reports whether path a wins over path b for the same module.
func preferred(a, b string) bool {
	ua, ub := strings.HasPrefix(a, "updates/"), strings.HasPrefix(b, "updates/")
	if ua != ub {
		return ua
	}
	return a < b
}

// Path returns the file of a loadable module.
func (ix *Index) Path(name string) (string, bool) {
	p, ok := ix.modules[Normalize(name)]
	return p, ok
}

// Builtin reports whether the module is built into the kernel image.
func (ix *Index) Builtin(name string) bool {
	return ix.builtin[Normalize(name)]
}
