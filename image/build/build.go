// Package build turns the pinned inputs (image/inputs.lock) and this
// repository's Go sources into the appliance image: vmlinuz, OVMF.fd, initrd,
// rootfs.img + rootfs.verity, cmdline, disk.img and manifest.json.
//
// Every artifact is a pure function of the inputs and SOURCE_DATE_EPOCH. The
// build happens in a temporary directory beside the output and is renamed
// into place at the end, so --out only ever holds a complete image.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cocoon-appliance/cocoon/image/manifest"
)

// Version is the builder's version, recorded in every manifest. Bump it
// whenever a change makes the builder write different bytes for the same
// inputs.
const Version = "0.1.0"

// Output file names.
const (
	VmlinuzName  = "vmlinuz"
	FirmwareName = "OVMF.fd"
	InitrdName   = "initrd"
	RootfsName   = "rootfs.img"
	VerityName   = "rootfs.verity"
	CmdlineName  = "cmdline"
	DiskName     = "disk.img"
	ManifestName = "manifest.json"
)

// OutputOrder is the order outputs appear in the manifest.
var OutputOrder = []string{VmlinuzName, FirmwareName, InitrdName, RootfsName, VerityName, CmdlineName, DiskName}

// FirmwarePath is OVMF.fd inside the ovmf package (4 MiB, with the TDVF
// metadata that TDX needs).
const FirmwarePath = "usr/share/ovmf/OVMF.fd"

// ErrOutDir is returned when --out names a directory the builder must not
// replace.
var ErrOutDir = errors.New("build: output directory")

// Options configure one build.
type Options struct {
	Src   string // module root holding go.mod (the checkout)
	Lock  string // lock file; default <Src>/image/inputs.lock
	Cache string // package cache (see fetch)
	Out   string // output directory, replaced atomically
	// Epoch overrides the lock file's source-date-epoch when >= 0.
	Epoch    int64
	GoBin    string    // default "go"
	Progress io.Writer // one line per stage; nil is quiet
}

// stages prints one line per stage with its duration.
type stages struct {
	w     io.Writer
	start time.Time
}

func (s *stages) run(name string, fn func() (string, error)) error {
	t := time.Now()
	detail, err := fn()
	if s.w != nil && err == nil {
		fmt.Fprintf(s.w, "  %-9s %6.2fs  %s\n", name, time.Since(t).Seconds(), detail)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Build builds the image and returns its manifest.
func Build(ctx context.Context, o Options) (*manifest.Manifest, error) {
	if o.Src == "" || o.Cache == "" || o.Out == "" {
		return nil, errors.New("build: Src, Cache and Out are required")
	}
	if o.GoBin == "" {
		o.GoBin = "go"
	}
	if o.Lock == "" {
		o.Lock = filepath.Join(o.Src, "image", "inputs.lock")
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	if err := checkOutDir(out); err != nil {
		return nil, err
	}
	st := &stages{w: o.Progress, start: time.Now()}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	work := filepath.Join(tmp, ".work")
	if err := os.Mkdir(work, 0o755); err != nil {
		return nil, err
	}

	b := &builder{o: o, st: st, dir: tmp, work: work}
	m, err := b.build(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := replaceDir(tmp, out); err != nil {
		return nil, err
	}
	if st.w != nil {
		fmt.Fprintf(st.w, "  %-9s %6.2fs  %s\n", "total", time.Since(st.start).Seconds(), out)
	}
	return m, nil
}

// checkOutDir refuses to replace a non-empty directory that is not a
// previous image (no manifest.json): a typo in --out must not delete data.
func checkOutDir(out string) error {
	ents, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOutDir, err)
	}
	if len(ents) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, ManifestName)); err != nil {
		return fmt.Errorf("%w: %s is not empty and holds no %s; refusing to replace it", ErrOutDir, out, ManifestName)
	}
	return nil
}

// replaceDir moves the finished build to out, keeping the old image until
// the new one is in place.
func replaceDir(tmp, out string) error {
	if _, err := os.Lstat(out); errors.Is(err, os.ErrNotExist) {
		return os.Rename(tmp, out)
	}
	old := tmp + ".old"
	if err := os.Rename(out, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Rename(old, out)
		return err
	}
	return os.RemoveAll(old)
}

// EpochFromEnv returns SOURCE_DATE_EPOCH from the environment, or -1 when
// unset.
func EpochFromEnv() (int64, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return -1, nil
	}
	var n int64
	if _, err := fmt.Sscan(v, &n); err != nil || n < 0 || fmt.Sprint(n) != v {
		return -1, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative integer", v)
	}
	return n, nil
}

// fileSHA256 hashes a file.
func fileSHA256(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
