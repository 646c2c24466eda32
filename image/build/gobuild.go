package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ErrGo is returned when the Go toolchain fails.
var ErrGo = errors.New("build: go toolchain")

// GuestBinary is a Go main package compiled into the image.
type GuestBinary struct {
	Package string // import path relative to the module root, e.g. "./init"
	Name    string // output file name
}

// GuestBinaries are compiled for the guest, each into one place of the image.
var (
	InitBinary   = GuestBinary{Package: "./init", Name: "init"}
	WorkerBinary = GuestBinary{Package: "./cmd/cocoon-worker", Name: "cocoon-worker"}
)

// GoFlags are the flags of every guest build. A reader can reproduce a
// guest binary by hand with exactly these (see README, "Rebuild a binary"):
// -trimpath drops the checkout path, -buildvcs=false keeps git state out,
// -buildid= empties the build id, -s -w drop the symbol table and DWARF,
// which would otherwise carry nothing host-specific but add megabytes.
var GoFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// GoEnv pins everything in the environment that changes the bytes the
// compiler writes; the user's own GOFLAGS, GOAMD64 or GOEXPERIMENT must not.
func GoEnv() []string {
	var env []string
	flags := "-mod=readonly"
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "GOFLAGS" && slices.Contains(strings.Fields(v), "-modcacherw") {
			flags += " -modcacherw" // only file modes in the module cache
		}
		switch k {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOAMD64", "GOFLAGS", "GOEXPERIMENT", "GOTOOLCHAIN", "GOWORK", "GODEBUG", "CC", "CGO_CFLAGS", "CGO_LDFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1",
		"GOFLAGS="+flags, "GOEXPERIMENT=", "GOTOOLCHAIN=local", "GOWORK=off",
	)
}

// goBuild compiles bins from the module at src into dir.
func goBuild(ctx context.Context, goBin, src, dir string, bins ...GuestBinary) error {
	for _, b := range bins {
		args := append([]string{"build"}, GoFlags...)
		args = append(args, "-o", filepath.Join(dir, b.Name), b.Package)
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = src
		cmd.Env = GoEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: go %s: %v\n%s", ErrGo, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// goVersion reports the toolchain, e.g. "go1.26.8 linux/amd64".
func goVersion(ctx context.Context, goBin, src string) (string, error) {
	cmd := exec.CommandContext(ctx, goBin, "version")
	cmd.Dir = src
	cmd.Env = GoEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: go version: %v", ErrGo, err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "go version "), nil
}

// sourceDigest is the sha256 over every file of this module that can change
// the image: the Go files of the guest binaries and of the image builder
// (non-test, from `go list -deps`), go.mod, go.sum, the lock file and the
// static root filesystem overlay. Each line is "sha256  path" with paths
// relative to the module root, sorted; so the digest does not depend on
// where the checkout lives.
func sourceDigest(ctx context.Context, goBin, src string, extra []string) (string, error) {
	args := []string{"list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", InitBinary.Package, WorkerBinary.Package, "./image/..."}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = src
	cmd.Env = GoEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: go list: %v\n%s", ErrGo, err, bytes.TrimSpace(stderr.Bytes()))
	}
	files := map[string]bool{"go.mod": true, "go.sum": true}
	for _, e := range extra {
		files[e] = true
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir        string
			GoFiles    []string
			EmbedFiles []string
			Module     *struct{ Main bool }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("%w: go list output: %v", ErrGo, err)
		}
		if p.Module == nil || !p.Module.Main {
			continue // dependencies are pinned by go.sum; the stdlib by the toolchain
		}
		rel, err := filepath.Rel(src, p.Dir)
		if err != nil {
			return "", err
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files[filepath.ToSlash(filepath.Join(rel, f))] = true
		}
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, f := range names {
		b, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(f)))
		if err != nil {
			return "", fmt.Errorf("build: source digest: %w", err)
		}
		s := sha256.Sum256(b)
		fmt.Fprintf(h, "%x  %s\n", s, f)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// overlayFiles lists the regular files under dir (the static root
// filesystem overlay), slash-separated and relative to dir.
func overlayFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("build: overlay %s: only regular files and directories are allowed", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out, err
}
