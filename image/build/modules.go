package build

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/kmod"
)

// GuestModules are the kernel modules the guest loads from the initrd, by
// name. Debian's 6.12 kernel builds some of what we need in (virtio_pci,
// virtio_console, the TPM TIS/CRB drivers); Closure reports those as builtin
// and ships only real modules plus their dependencies.
var GuestModules = []string{
	"virtio_blk",                 // the appliance disk (rootfs + verity partitions)
	"virtio_net",                 // the NIC
	"vsock",                      // host channel: health, config, logs
	"vmw_vsock_virtio_transport", // vsock over virtio
	"virtio_rng",                 // entropy from the host in early boot
	"dm_mod",                     // device-mapper core
	"dm_verity",                  // the verity root
	"squashfs",                   // the root filesystem
	"configfs",                   // configfs-tsm quote requests
	"tsm",                        // TSM reports (quotes) interface
	"tdx_guest",                  // TDX guest driver: quotes and RTMR extends
	"sha256_ssse3",               // fast sha256 for dm-verity
	"virtio_pci",                 // builtin in Debian's config
	"virtio_console",             // builtin in Debian's config
	"tpm_tis",                    // vTPM on the dev profile (builtin)
	"tpm_crb",                    // builtin
}

// ModulesLoadName is the file in lib/modules/<release>/ of the initrd that
// lists the shipped modules in load order, one path (relative to that
// directory) per line. The init loads them in this order with
// finit_module(2); no modules.dep is needed in the guest.
const ModulesLoadName = "modules.load"

// kernelFiles finds the kernel image and module directory in the unpacked
// kernel package: boot/vmlinuz-<release> and usr/lib/modules/<release>/
// (or lib/modules/<release>/ in packages from before the usr merge).
type kernelFiles struct {
	release    string
	vmlinuz    string
	modulesDir string
}

var errKernelLayout = errors.New("build: kernel package layout")

func findKernel(u *Unpacked) (kernelFiles, error) {
	var found []kernelFiles
	for _, f := range u.Files() {
		if rel, ok := strings.CutPrefix(f, "boot/vmlinuz-"); ok {
			k := kernelFiles{release: rel, vmlinuz: f}
			for _, d := range []string{"usr/lib/modules/", "lib/modules/"} {
				if u.Has(d + rel + "/modules.builtin") {
					k.modulesDir = d + rel
				}
			}
			if k.modulesDir == "" {
				return k, fmt.Errorf("%w: %s has %s but no modules.builtin for %s", errKernelLayout, u.Pkg, f, rel)
			}
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return kernelFiles{}, fmt.Errorf("%w: %s has %d kernel images (boot/vmlinuz-*), want 1", errKernelLayout, u.Pkg, len(found))
	}
	return found[0], nil
}

// resolveModules computes the module closure of GuestModules from the
// unpacked kernel package.
func resolveModules(u *Unpacked, k kernelFiles) (kmod.Resolved, error) {
	prefix := k.modulesDir + "/"
	var paths []string
	for _, f := range u.Files() {
		if rel, ok := strings.CutPrefix(f, prefix); ok && strings.HasPrefix(rel, "kernel/") && isModule(rel) {
			paths = append(paths, rel)
		}
	}
	builtin, err := u.ReadFile(prefix + "modules.builtin")
	if err != nil {
		return kmod.Resolved{}, err
	}
	ix := kmod.NewIndex(paths, builtin)
	return ix.Closure(GuestModules, func(p string) (kmod.Info, error) {
		b, err := u.ReadFile(prefix + p)
		if err != nil {
			return kmod.Info{}, err
		}
		info, err := kmod.ParseModinfo(b)
		if err != nil {
			return kmod.Info{}, fmt.Errorf("%s: %w", p, err)
		}
		return info, nil
	})
}

func isModule(p string) bool {
	switch path.Ext(p) {
	case ".ko":
		return true
	case ".xz", ".zst", ".gz":
		return strings.HasSuffix(strings.TrimSuffix(p, path.Ext(p)), ".ko")
	}
	return false
}
