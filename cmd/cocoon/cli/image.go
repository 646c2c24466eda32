package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/image/fetch"
	"github.com/cocoon-appliance/cocoon/image/lock"
	"github.com/cocoon-appliance/cocoon/image/manifest"
)

func (c *Context) image(ctx context.Context, _ *Context, args []string) error {
	return c.dispatch(ctx, "cocoon image", args, []command{
		{"fetch", "download the pinned Debian packages into the cache and verify them", c.imageFetch},
		{"build", "build the image into --out", c.imageBuild},
		{"verify", "rebuild an image and compare it with its manifest", c.imageVerify},
		{"show", "print a built image's manifest as a summary", c.imageShow},
	})
}

// common flags of the image commands.
type imageFlags struct {
	src, lock, cache string
	quiet            bool
}

func (c *Context) imageFlagSet(name, usage string) (*flag.FlagSet, *imageFlags) {
	fs := c.flags(name, usage)
	f := &imageFlags{}
	fs.StringVar(&f.src, "src", "", "checkout of this project (default: found from the working directory)")
	fs.StringVar(&f.lock, "lock", "", "lock file of pinned inputs (default: SRC/image/inputs.lock)")
	fs.StringVar(&f.cache, "cache", defaultCache(), "package cache ($COCOON_CACHE)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output on stderr")
	return fs, f
}

func (f *imageFlags) resolve() error {
	if f.src == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if f.src, err = findSource(wd); err != nil {
			return err
		}
	}
	abs, err := filepath.Abs(f.src)
	if err != nil {
		return err
	}
	f.src = abs
	if f.lock == "" {
		f.lock = filepath.Join(f.src, "image", "inputs.lock")
	}
	return nil
}

func (c *Context) progress(quiet bool) io.Writer {
	if quiet {
		return nil
	}
	return c.Stderr
}

func (c *Context) imageFetch(ctx context.Context, _ *Context, args []string) error {
	fs, f := c.imageFlagSet("fetch", "cocoon image fetch [--lock FILE] [--cache DIR] [--mirror URI]")
	mirror := fs.String("mirror", os.Getenv("COCOON_DEBIAN_MIRROR"), "Debian archive URI (default: the one in this machine's apt sources)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if err := f.resolve(); err != nil {
		return err
	}
	lf, err := lock.Load(f.lock)
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	if !f.quiet {
		log = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	}
	res, err := fetch.Fetch(ctx, lf, fetch.Options{
		Cache:      f.cache,
		Downloader: &fetch.Apt{Mirror: *mirror, StateDir: filepath.Join(f.cache, "apt")},
		Log:        log,
	})
	if err != nil {
		return fmt.Errorf("image fetch: %w", err)
	}
	fmt.Fprintf(c.Stdout, "%d packages in %s (%d downloaded, %d already cached), all match %s\n",
		len(lf.Packages), filepath.Join(f.cache, fetch.DebDir), len(res.Downloaded), len(res.Cached), f.lock)
	return nil
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func (c *Context) buildOptions(f *imageFlags) (build.Options, error) {
	epoch, err := build.EpochFromEnv()
	if err != nil {
		return build.Options{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	return build.Options{Src: f.src, Lock: f.lock, Cache: f.cache, Epoch: epoch, Progress: c.progress(f.quiet)}, nil
}

func (c *Context) imageBuild(ctx context.Context, _ *Context, args []string) error {
	fs, f := c.imageFlagSet("build", "cocoon image build --out DIR [--src DIR] [--lock FILE] [--cache DIR] [--quiet]")
	out := fs.String("out", "", "output directory (required; replaced atomically)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return fmt.Errorf("%w: image build: --out is required", errUsage)
	}
	if err := f.resolve(); err != nil {
		return err
	}
	o, err := c.buildOptions(f)
	if err != nil {
		return err
	}
	o.Out = *out
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "cocoon image build: %s -> %s\n", f.src, *out)
	}
	m, err := build.Build(ctx, o)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	fmt.Fprintf(c.Stdout, "%s\nroot hash %s\n", filepath.Join(*out, build.ManifestName), m.Verity.RootHash)
	return nil
}

func (c *Context) imageVerify(ctx context.Context, _ *Context, args []string) error {
	fs, f := c.imageFlagSet("verify", "cocoon image verify --manifest FILE [--src DIR] [--cache DIR]")
	path := fs.String("manifest", "", "manifest.json of the image to verify (required)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *path == "" {
		fs.Usage()
		return fmt.Errorf("%w: image verify: --manifest is required", errUsage)
	}
	if err := f.resolve(); err != nil {
		return err
	}
	o, err := c.buildOptions(f)
	if err != nil {
		return err
	}
	rep, err := build.Verify(ctx, *path, o)
	if rep != nil {
		for _, ch := range rep.Checks {
			fmt.Fprintln(c.Stdout, ch)
		}
	}
	if err != nil {
		return fmt.Errorf("image verify: %w", err)
	}
	fmt.Fprintf(c.Stdout, "image %s rebuilt bit for bit\n", *path)
	return nil
}

func (c *Context) imageShow(_ context.Context, _ *Context, args []string) error {
	fs := c.flags("show", "cocoon image show [--json] MANIFEST")
	asJSON := fs.Bool("json", false, "print the manifest itself")
	rest, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: image show: want one manifest path", errUsage)
	}
	m, err := manifest.Load(rest[0])
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := m.Marshal()
		if err != nil {
			return err
		}
		_, err = c.Stdout.Write(b)
		return err
	}
	printSummary(c.Stdout, m)
	return nil
}

func printSummary(w io.Writer, m *manifest.Manifest) {
	fmt.Fprintf(w, "Cocoon image (%s, %s, SOURCE_DATE_EPOCH=%d)\n\nInputs\n", m.Builder, m.Toolchain, m.SourceDateEpoch)
	for _, in := range m.Inputs {
		fmt.Fprintf(w, "  %-36s %-22s %s\n", in.Name, in.Version, in.SHA256)
	}
	fmt.Fprintln(w, "\nOutputs")
	for _, o := range m.Outputs {
		fmt.Fprintf(w, "  %-14s %10d  %s\n", o.Name, o.Size, o.SHA256)
	}
	fmt.Fprintf(w, "\nKernel %s, %d modules in the initrd: %s\n", m.Kernel.Release, len(m.Kernel.Modules), strings.Join(m.Kernel.Modules, " "))
	v := m.Verity
	fmt.Fprintf(w, "\nRoot filesystem (dm-verity %s, %d x %d-byte blocks)\n  root hash  %s\n  salt       %s\n  root part  %s\n  verity     %s\n",
		v.HashAlgorithm, v.DataBlocks, v.DataBlockSize, v.RootHash, v.Salt, v.RootPartUUID, v.HashPartUUID)
	fmt.Fprintf(w, "\nKernel command line (measured into RTMR2 / PCR 9)\n  %s\n", m.Cmdline)
}
