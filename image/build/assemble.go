package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cocoon-appliance/cocoon/image/bootparams"
	"github.com/cocoon-appliance/cocoon/image/cpio"
	"github.com/cocoon-appliance/cocoon/image/fstree"
	"github.com/cocoon-appliance/cocoon/image/gpt"
	"github.com/cocoon-appliance/cocoon/image/kmod"
	"github.com/cocoon-appliance/cocoon/image/lock"
	"github.com/cocoon-appliance/cocoon/image/manifest"
	"github.com/cocoon-appliance/cocoon/image/squashfs"
	"github.com/cocoon-appliance/cocoon/image/verity"
)

// Bundled are repository files the root filesystem carries at a fixed
// path: the built-in engine's test checkpoint and tokenizer (random
// weights, guest/engine/llama2/testdata/README.md), so a fresh appliance
// serves real inference with no model download. Destination → source,
// both slash-separated; the source is relative to the repository.
var Bundled = map[string]string{
	"usr/share/cocoon/models/test/model.bin":     "guest/engine/llama2/testdata/model.bin",
	"usr/share/cocoon/models/test/tokenizer.bin": "guest/engine/llama2/testdata/tokenizer.bin",
}

// OverlayDir is the static part of the root filesystem, relative to the
// module root: copied as is (files 0644, directories 0755).
const OverlayDir = "image/rootfs"

type builder struct {
	o         Options
	st        *stages
	dir, work string

	lf                   *lock.File
	epoch                int64
	kernel               *Unpacked
	firmware             *Unpacked
	kfiles               kernelFiles
	mods                 kmod.Resolved
	toolchain, srcDigest string
	overlay              []string // files of OverlayDir, listed once
	vres                 verity.Result
	salt                 []byte
	cmdline              string
	dataUUID, hashUUID   string
}

func (b *builder) out(name string) string { return filepath.Join(b.dir, name) }

func (b *builder) build(ctx context.Context) (*manifest.Manifest, error) {
	st := b.st
	// The guest binaries compile while the packages are checked and read.
	bins := filepath.Join(b.work, "bin")
	goDone := make(chan error, 1)
	go func() { goDone <- goBuild(ctx, b.o.GoBin, b.o.Src, bins, InitBinary, WorkerBinary) }()
	waitGo := func() error {
		if goDone == nil {
			return nil
		}
		err := <-goDone
		goDone = nil
		return err
	}
	defer waitGo()

	steps := []struct {
		name string
		fn   func() (string, error)
	}{
		{"lock", b.readLock},
		{"inputs", b.readInputs},
		{"modules", b.resolveModules},
		{"source", func() (string, error) { return b.source(ctx) }},
		{"go build", func() (string, error) {
			if err := waitGo(); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s, %s (%s)", InitBinary.Name, WorkerBinary.Name, b.toolchain), nil
		}},
		{"kernel", b.copyBoot},
		{"initrd", func() (string, error) { return b.initrd(bins) }},
		{"rootfs", func() (string, error) { return b.rootfs(bins) }},
		{"verity", b.verity},
		{"disk", b.disk},
	}
	for _, s := range steps {
		if err := st.run(s.name, s.fn); err != nil {
			return nil, err
		}
	}
	var m *manifest.Manifest
	err := st.run("manifest", func() (string, error) {
		var err error
		m, err = b.manifest()
		if err != nil {
			return "", err
		}
		return "root hash " + shortHex(m.Verity.RootHash), nil
	})
	return m, err
}

func (b *builder) readLock() (string, error) {
	lf, err := lock.Load(b.o.Lock)
	if err != nil {
		return "", err
	}
	b.lf = lf
	b.epoch = lf.SourceDateEpoch
	if b.o.Epoch >= 0 {
		b.epoch = b.o.Epoch
	}
	return fmt.Sprintf("%s, suite %s, SOURCE_DATE_EPOCH=%d", plural(len(lf.Packages), "package"), lf.Suite, b.epoch), nil
}

func (b *builder) readInputs() (string, error) {
	var unpacked []string
	for _, role := range []string{lock.RoleKernel, lock.RoleFirmware} {
		p, err := b.lf.ByRole(role)
		if err != nil {
			return "", err
		}
		u, fresh, err := unpack(b.o.Cache, p)
		if err != nil {
			return "", err
		}
		if fresh {
			unpacked = append(unpacked, p.Name)
		}
		if role == lock.RoleKernel {
			b.kernel = u
		} else {
			b.firmware = u
		}
	}
	detail := "verified against the lock"
	if len(unpacked) > 0 {
		detail += fmt.Sprintf(", unpacked %v into the cache", unpacked)
	}
	return detail, nil
}

func (b *builder) resolveModules() (string, error) {
	k, err := findKernel(b.kernel)
	if err != nil {
		return "", err
	}
	b.kfiles = k
	b.mods, err = resolveModules(b.kernel, k)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s, %s builtin", plural(len(b.mods.Modules), "module"), k.release, plural(len(b.mods.Builtin), "module")), nil
}

func (b *builder) source(ctx context.Context) (string, error) {
	var err error
	if b.toolchain, err = goVersion(ctx, b.o.GoBin, b.o.Src); err != nil {
		return "", err
	}
	if b.overlay, err = overlayFiles(filepath.Join(b.o.Src, OverlayDir)); err != nil {
		return "", err
	}
	extra := []string{}
	if rel, err := filepath.Rel(b.o.Src, b.o.Lock); err == nil && filepath.IsLocal(rel) {
		extra = append(extra, filepath.ToSlash(rel))
	}
	for _, f := range b.overlay {
		extra = append(extra, OverlayDir+"/"+f)
	}
	for _, src := range Bundled {
		extra = append(extra, src)
	}
	if b.srcDigest, err = sourceDigest(ctx, b.o.GoBin, b.o.Src, extra); err != nil {
		return "", err
	}
	return "sha256 " + shortHex(b.srcDigest), nil
}

func (b *builder) copyBoot() (string, error) {
	vmlinuz, err := b.kernel.ReadFile(b.kfiles.vmlinuz)
	if err != nil {
		return "", err
	}
	fw, err := b.firmware.ReadFile(FirmwarePath)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(b.out(VmlinuzName), vmlinuz, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(b.out(FirmwareName), fw, 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (%d bytes), %s (%d bytes)", VmlinuzName, len(vmlinuz), FirmwareName, len(fw)), nil
}

// initrdTree lays out the initrd: /init, the module closure with its load
// order, the device nodes the kernel and init need before devtmpfs is
// mounted, and empty mount points.
func (b *builder) initrdTree(bins string) (*fstree.Tree, error) {
	var t fstree.Tree
	initBin, err := os.ReadFile(filepath.Join(bins, InitBinary.Name))
	if err != nil {
		return nil, err
	}
	if err := t.AddFile("init", 0o755, initBin); err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "sysroot", "tmp"} {
		if err := t.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	// linux/Documentation/admin-guide/devices.txt: 5:1 is /dev/console, 1:3 /dev/null.
	for _, n := range []fstree.Entry{
		{Path: "dev/console", Kind: fstree.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "dev/null", Kind: fstree.CharDev, Perm: 0o666, Major: 1, Minor: 3},
	} {
		if err := t.Add(n); err != nil {
			return nil, err
		}
	}
	modDir := "lib/modules/" + b.kfiles.release
	var order bytes.Buffer
	for _, m := range b.mods.Modules {
		data, err := b.kernel.ReadFile(b.kfiles.modulesDir + "/" + m.Path)
		if err != nil {
			return nil, err
		}
		if err := t.AddFile(modDir+"/"+m.Path, 0o644, data); err != nil {
			return nil, err
		}
		order.WriteString(m.Path + "\n")
	}
	if err := t.AddFile(modDir+"/"+ModulesLoadName, 0o644, order.Bytes()); err != nil {
		return nil, err
	}
	return &t, nil
}

func (b *builder) initrd(bins string) (string, error) {
	t, err := b.initrdTree(bins)
	if err != nil {
		return "", err
	}
	f, err := os.Create(b.out(InitrdName))
	if err != nil {
		return "", err
	}
	if err := cpio.Write(f, t, b.epoch); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return fmt.Sprintf("newc cpio, %d entries", t.Len()), nil
}

// rootfsTree lays out the root filesystem: the worker, the static overlay,
// os-release, and the mount points of a read-only root.
func (b *builder) rootfsTree(bins string) (*fstree.Tree, error) {
	var t fstree.Tree
	worker, err := os.ReadFile(filepath.Join(bins, WorkerBinary.Name))
	if err != nil {
		return nil, err
	}
	if err := t.AddFile("usr/bin/"+WorkerBinary.Name, 0o755, worker); err != nil {
		return nil, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "var"} {
		if err := t.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	osRelease := fmt.Sprintf("NAME=\"Cocoon appliance\"\nID=cocoon\nVERSION_ID=%s\nBUILD_ID=%d\n", Version, b.epoch)
	if err := t.AddFile("usr/lib/os-release", 0o644, []byte(osRelease)); err != nil {
		return nil, err
	}
	if err := t.Add(fstree.Entry{Path: "etc/os-release", Kind: fstree.Symlink, Perm: 0o777, Target: "../usr/lib/os-release"}); err != nil {
		return nil, err
	}
	for dst, src := range Bundled { // fstree sorts: map order does not matter
		data, err := os.ReadFile(filepath.Join(b.o.Src, filepath.FromSlash(src)))
		if err != nil {
			return nil, fmt.Errorf("bundled %s: %w", src, err)
		}
		if err := t.AddFile(dst, 0o644, data); err != nil {
			return nil, fmt.Errorf("bundled %s: %w", dst, err)
		}
	}
	overlayRoot := filepath.Join(b.o.Src, OverlayDir)
	for _, f := range b.overlay { // listed by the source step
		data, err := os.ReadFile(filepath.Join(overlayRoot, filepath.FromSlash(f)))
		if err != nil {
			return nil, err
		}
		if err := t.AddFile(f, 0o644, data); err != nil {
			return nil, fmt.Errorf("overlay %s: %w", f, err)
		}
	}
	return &t, nil
}

func (b *builder) rootfs(bins string) (string, error) {
	t, err := b.rootfsTree(bins)
	if err != nil {
		return "", err
	}
	if err := squashfs.Write(b.out(RootfsName), t, squashfs.Options{Epoch: b.epoch}); err != nil {
		return "", err
	}
	return fmt.Sprintf("squashfs, %d entries", t.Len()), nil
}

func (b *builder) verity() (string, error) {
	_, sum, err := fileSHA256(b.out(RootfsName))
	if err != nil {
		return "", err
	}
	seed, _ := hex.DecodeString(sum)
	b.salt = verity.DeriveSalt(seed)
	u := sha256.Sum256(append([]byte("cocoon verity uuid v1\x00"), b.salt...))
	var id [16]byte
	copy(id[:], u[:16])
	id[6] = id[6]&0x0f | 0x40 // RFC 4122 version 4 ...
	id[8] = id[8]&0x3f | 0x80 // ... variant 10
	b.vres, err = verity.FormatFile(b.out(RootfsName), b.out(VerityName), verity.Params{
		HashAlg: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, Salt: b.salt, UUID: id,
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d data blocks, root hash %s", b.vres.DataBlocks, shortHex(hex.EncodeToString(b.vres.RootHash))), nil
}

func (b *builder) disk() (string, error) {
	dataID, hashID := gpt.UUIDsFromRootHash(b.vres.RootHash)
	b.dataUUID, b.hashUUID = dataID.String(), hashID.String()
	var err error
	b.cmdline, err = bootparams.Format(bootparams.Params{
		Console: "ttyS0",
		Verity: bootparams.Verity{
			Version: 1, DataDevice: "PARTUUID=" + b.dataUUID, HashDevice: "PARTUUID=" + b.hashUUID,
			DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: b.vres.DataBlocks,
			HashStartBlock: b.vres.HashOffset / 4096, Algorithm: "sha256",
			RootHash: b.vres.RootHash, Salt: b.salt,
		},
	})
	if err != nil {
		return "", err
	}
	// No trailing newline: the file holds exactly the bytes the host passes
	// with -append, which are measured.
	if err := os.WriteFile(b.out(CmdlineName), []byte(b.cmdline), 0o644); err != nil {
		return "", err
	}
	err = gpt.Write(b.out(DiskName), gpt.DiskGUID(b.vres.RootHash), []gpt.Partition{
		{Name: "root-x86-64", Type: gpt.TypeRootX86_64, UUID: dataID, Path: b.out(RootfsName)},
		{Name: "root-x86-64-verity", Type: gpt.TypeRootVerityX86_64, UUID: hashID, Path: b.out(VerityName)},
	})
	if err != nil {
		return "", err
	}
	return "GPT: root " + b.dataUUID + ", verity " + b.hashUUID, nil
}

func (b *builder) manifest() (*manifest.Manifest, error) {
	m := &manifest.Manifest{
		Schema:          manifest.Schema,
		Builder:         "cocoon-image/" + Version,
		Toolchain:       b.toolchain,
		SourceDateEpoch: b.epoch,
		Cmdline:         b.cmdline,
		Kernel:          manifest.Kernel{Release: b.kfiles.release},
		Verity: manifest.Verity{
			RootHash: hex.EncodeToString(b.vres.RootHash), Salt: hex.EncodeToString(b.salt),
			HashAlgorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: b.vres.DataBlocks,
			RootPartUUID: b.dataUUID, HashPartUUID: b.hashUUID,
		},
	}
	for _, p := range b.lf.Packages {
		m.Inputs = append(m.Inputs, manifest.Input{Name: p.Name, Version: p.Version, SHA256: p.SHA256})
	}
	m.Inputs = append(m.Inputs, manifest.Input{Name: "cocoon-source", Version: Version, SHA256: b.srcDigest})
	for _, mod := range b.mods.Modules {
		m.Kernel.Modules = append(m.Kernel.Modules, mod.Name)
	}
	for _, name := range OutputOrder {
		n, sum, err := fileSHA256(b.out(name))
		if err != nil {
			return nil, err
		}
		m.Outputs = append(m.Outputs, manifest.Output{Name: name, Size: n, SHA256: sum})
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return m, os.WriteFile(b.out(ManifestName), data, 0o644)
}
