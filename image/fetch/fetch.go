// Package fetch brings the pinned Debian packages of image/inputs.lock into a
// local cache and proves each one against its pin.
//
// Downloading sits behind the Downloader interface: Apt is the real one
// (apt-get download with a throw-away source list, see apt.go), tests use a
// fake. Whatever a Downloader returns is checked here: size first (a
// truncated download names itself), then sha256. A file only enters the cache
// after it matched, by rename, so the cache never holds a partial or unproven
// package.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cocoon-appliance/cocoon/image/lock"
)

// Errors. Each message names the package, what was expected and what was
// found.
var (
	ErrMissing  = errors.New("fetch: package not in cache")
	ErrSize     = errors.New("fetch: size mismatch")
	ErrChecksum = errors.New("fetch: sha256 mismatch")
	ErrDownload = errors.New("fetch: download failed")
)

// Downloader puts the .deb files of pkgs into dir, named as apt names them
// or as Package.FileName; it may leave other files there.
type Downloader interface {
	Download(ctx context.Context, suite string, pkgs []lock.Package, dir string) error
}

// DebDir is the cache sub-directory that holds verified packages.
const DebDir = "debs"

// Path is where the verified .deb of p lives in cache.
func Path(cache string, p lock.Package) string {
	return filepath.Join(cache, DebDir, p.FileName())
}

// Verify checks the file at path against p: size, then sha256.
func Verify(path string, p lock.Package) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s: %s does not exist (run `cocoon image fetch`)", ErrMissing, p, path)
		}
		return fmt.Errorf("fetch: %s: %w", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("fetch: %s: %w", p, err)
	}
	if st.Size() != p.Size {
		return fmt.Errorf("%w: %s: %s is %d bytes, want %d (truncated or wrong file)", ErrSize, p, path, st.Size(), p.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("fetch: %s: reading %s: %w", p, path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%w: %s: %s has sha256 %s, want %s", ErrChecksum, p, path, got, p.SHA256)
	}
	return nil
}

// Options for Fetch.
type Options struct {
	Cache      string
	Downloader Downloader
	Log        *slog.Logger // progress; nil discards
}

// Result says what Fetch did per package.
type Result struct {
	Cached, Downloaded []lock.Package
}

// Fetch makes sure every package of lf is in the cache and matches its pin.
// Packages already there and valid are not downloaded again; an invalid one
// in the cache is replaced. A package that fails verification after download
// is deleted and reported; nothing unverified stays in the cache.
func Fetch(ctx context.Context, lf *lock.File, o Options) (Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	var need []lock.Package
	for _, p := range lf.Packages {
		if err := Verify(Path(o.Cache, p), p); err == nil {
			log.Info("cached", "package", p.String())
			res.Cached = append(res.Cached, p)
			continue
		} else if !errors.Is(err, ErrMissing) {
			log.Warn("cached file invalid, downloading again", "package", p.String(), "err", err)
		}
		need = append(need, p)
	}
	if len(need) == 0 {
		return res, nil
	}
	if o.Downloader == nil {
		return res, fmt.Errorf("%w: no downloader", ErrDownload)
	}
	debs := filepath.Join(o.Cache, DebDir)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return res, fmt.Errorf("fetch: %w", err)
	}
	tmp, err := os.MkdirTemp(o.Cache, ".download-")
	if err != nil {
		return res, fmt.Errorf("fetch: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, p := range need {
		log.Info("downloading", "package", p.String(), "bytes", p.Size)
	}
	if err := o.Downloader.Download(ctx, lf.Suite, need, tmp); err != nil {
		return res, fmt.Errorf("%w: %w", ErrDownload, err)
	}
	var errs []error
	for _, p := range need {
		got := filepath.Join(tmp, p.FileName())
		if err := Verify(got, p); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Rename(got, Path(o.Cache, p)); err != nil {
			errs = append(errs, fmt.Errorf("fetch: %s: %w", p, err))
			continue
		}
		log.Info("verified", "package", p.String(), "sha256", p.SHA256)
		res.Downloaded = append(res.Downloaded, p)
	}
	return res, errors.Join(errs...)
}

// VerifyAll checks every package of lf in the cache, without downloading.
func VerifyAll(cache string, lf *lock.File) error {
	var errs []error
	for _, p := range lf.Packages {
		if err := Verify(Path(cache, p), p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
