package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cocoon-appliance/cocoon/image/cpio"
	"github.com/cocoon-appliance/cocoon/image/fstree"
	"github.com/cocoon-appliance/cocoon/image/manifest"
	"github.com/cocoon-appliance/cocoon/image/squashfs"
)

// ErrDiffers is returned by Verify when the rebuild does not match.
var ErrDiffers = errors.New("build: rebuild differs from the manifest")

// Check is the verdict on one component.
type Check struct {
	Kind string // "input", "toolchain", "output"
	Name string
	OK   bool
	Want string // from the manifest
	Got  string // from the rebuild
	// FirstDiff names the first differing file inside an initrd or root
	// filesystem, when the original image was there to compare with.
	FirstDiff *fstree.Difference
	Note      string
}

func (c Check) String() string {
	if c.OK {
		return fmt.Sprintf("%-9s %-34s ok", c.Kind, c.Name)
	}
	s := fmt.Sprintf("%-9s %-34s DIFFERS\n            manifest %s\n            rebuild  %s", c.Kind, c.Name, c.Want, c.Got)
	if c.FirstDiff != nil {
		s += "\n            first differing file: " + c.FirstDiff.String()
	}
	if c.Note != "" {
		s += "\n            " + c.Note
	}
	return s
}

// Report is the result of Verify.
type Report struct {
	Checks  []Check
	Rebuilt *manifest.Manifest
}

// OK says whether every check passed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Verify rebuilds the image described by the manifest at path (with the
// manifest's SOURCE_DATE_EPOCH, from o.Src and o.Cache) into a temporary
// directory and compares inputs, toolchain and every output. When the
// original artifacts sit beside the manifest, a differing initrd or root
// filesystem is opened to name the first differing file. The returned
// error wraps ErrDiffers when anything differs.
func Verify(ctx context.Context, path string, o Options) (*Report, error) {
	want, err := manifest.Load(path)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "cocoon-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	o.Out = filepath.Join(tmp, "image")
	o.Epoch = want.SourceDateEpoch
	got, err := Build(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	r := &Report{Rebuilt: got}
	for _, in := range want.Inputs {
		c := Check{Kind: "input", Name: in.Name, Want: in.Version + " " + in.SHA256, Got: "absent"}
		if g, ok := got.Input(in.Name); ok {
			c.Got = g.Version + " " + g.SHA256
			c.OK = g == in
		}
		r.Checks = append(r.Checks, c)
	}
	for _, in := range got.Inputs {
		if _, ok := want.Input(in.Name); !ok {
			r.Checks = append(r.Checks, Check{Kind: "input", Name: in.Name, Want: "absent", Got: in.Version + " " + in.SHA256})
		}
	}
	r.Checks = append(r.Checks, Check{Kind: "toolchain", Name: "go", Want: want.Toolchain, Got: got.Toolchain,
		OK: want.Toolchain == got.Toolchain, Note: "guest binaries depend on the exact Go release"})
	origDir := filepath.Dir(path)
	for _, wo := range want.Outputs {
		c := Check{Kind: "output", Name: wo.Name, Want: fmt.Sprintf("sha256 %s (%d bytes)", wo.SHA256, wo.Size), Got: "absent"}
		if g, ok := got.Output(wo.Name); ok {
			c.Got = fmt.Sprintf("sha256 %s (%d bytes)", g.SHA256, g.Size)
			c.OK = g == wo
		}
		if !c.OK {
			explain(&c, wo, filepath.Join(origDir, wo.Name), filepath.Join(o.Out, wo.Name), want, got)
		}
		r.Checks = append(r.Checks, c)
	}
	if !r.OK() {
		return r, ErrDiffers
	}
	return r, nil
}

// explain adds what is known about a differing output.
func explain(c *Check, wo manifest.Output, orig, rebuilt string, want, got *manifest.Manifest) {
	if wo.Name == CmdlineName {
		c.Note = fmt.Sprintf("manifest cmdline %q, rebuilt %q", want.Cmdline, got.Cmdline)
		return
	}
	if _, sum, err := fileSHA256(orig); err != nil {
		c.Note = "original not beside the manifest; cannot name the differing file"
		return
	} else if sum != wo.SHA256 {
		c.Note = fmt.Sprintf("the %s beside the manifest does not match it either (sha256 %s)", wo.Name, sum)
		return
	}
	var list func(string) ([]fstree.Entry, error)
	switch wo.Name {
	case InitrdName:
		list = func(p string) ([]fstree.Entry, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return cpio.Read(f)
		}
	case RootfsName:
		list = squashfs.Read
	case VerityName, DiskName:
		if want.Verity.RootHash != got.Verity.RootHash {
			c.Note = fmt.Sprintf("follows from the root filesystem: root hash %s, rebuilt %s", want.Verity.RootHash, got.Verity.RootHash)
		}
		return
	default:
		return
	}
	a, err := list(orig)
	if err != nil {
		c.Note = "cannot read the original: " + err.Error()
		return
	}
	b, err := list(rebuilt)
	if err != nil {
		c.Note = "cannot read the rebuild: " + err.Error()
		return
	}
	if d := fstree.FirstDifference(a, b); d != nil {
		c.FirstDiff = d
	} else {
		c.Note = "same files with the same contents and modes: the difference is in metadata (timestamps, ordering, compression)"
	}
}
