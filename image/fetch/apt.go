package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/lock"
)

// ErrNotInArchive means the archive does not (or no longer) carry the pinned
// name=version.
var ErrNotInArchive = errors.New("fetch: package version not in archive")

// ErrNoMirror means no Debian archive URI could be found in the apt setup.
var ErrNoMirror = errors.New("fetch: no Debian archive configured")

// DefaultKeyring is Debian's archive keyring; apt checks the suite's
// InRelease signature with it before we check each package's sha256.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Apt downloads with apt-get, without touching the machine's apt setup: a
// temporary sources list for the lock's suite on the archive the machine
// already uses, its own lists and cache directories.
type Apt struct {
	// Mirror is the archive URI; empty means: the Debian archive configured
	// in AptRoot's sources (see FindMirror).
	Mirror string
	// Keyring verifies the suite's InRelease. Empty means DefaultKeyring,
	// or the Signed-By of the configured source when that file is absent.
	Keyring string
	// StateDir keeps apt's lists between runs (inside the cache).
	StateDir string
	// AptRoot is where /etc/apt lives ("/" in production, a fake tree in tests).
	AptRoot string
	// Run runs a command; nil means exec. Tests replace it.
	Run func(ctx context.Context, dir string, name string, args ...string) ([]byte, error)
}

func (a *Apt) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	if a.Run != nil {
		return a.Run(ctx, dir, name, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// Download implements Downloader.
func (a *Apt) Download(ctx context.Context, suite string, pkgs []lock.Package, dir string) error {
	root := a.AptRoot
	if root == "" {
		root = "/"
	}
	// Keyring: the one given, else Debian's archive keyring when installed,
	// else the Signed-By of the configured source.
	mirror, keyring := a.Mirror, a.Keyring
	if keyring == "" {
		if _, err := os.Stat(DefaultKeyring); err == nil {
			keyring = DefaultKeyring
		}
	}
	if mirror == "" {
		src, err := FindMirror(filepath.Join(root, "etc/apt"))
		if err != nil {
			return err
		}
		mirror = src.URI
		if keyring == "" {
			keyring = src.SignedBy
		}
	}
	state := a.StateDir
	if state == "" {
		state = filepath.Join(dir, "apt")
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			return err
		}
	}
	opt := "[arch=amd64]"
	if keyring != "" {
		opt = "[arch=amd64 signed-by=" + keyring + "]"
	}
	list := filepath.Join(state, "sources.list")
	line := fmt.Sprintf("deb %s %s %s main\n", opt, mirror, suite)
	if err := os.WriteFile(list, []byte(line), 0o644); err != nil {
		return err
	}
	base := []string{
		"-q",
		"-o", "Dir::Etc::SourceList=" + list,
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(state, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(state, "cache"),
		"-o", "APT::Architecture=amd64",
		"-o", "Debug::NoLocking=1",
		// apt drops to _apt for downloads; that user cannot write our
		// cache, and the sha256 check below is what we trust anyway.
		"-o", "APT::Sandbox::User=root",
	}
	if out, err := a.run(ctx, dir, "apt-get", append(base, "update")...); err != nil {
		return fmt.Errorf("apt-get update for %s on %s: %w\n%s", suite, mirror, err, tail(out))
	}
	args := append(base, "download")
	for _, p := range pkgs {
		args = append(args, p.Name+"="+p.Version)
	}
	out, err := a.run(ctx, dir, "apt-get", args...)
	if err != nil {
		if m := notFoundRE.FindSubmatch(out); m != nil {
			return fmt.Errorf("%w: %s (suite %s): %s", ErrNotInArchive, pkgs, suite, bytes.TrimSpace(m[0]))
		}
		return fmt.Errorf("apt-get download: %w\n%s", err, tail(out))
	}
	return nil
}

var notFoundRE = regexp.MustCompile(`(?m)^E: (Unable to locate package|Version '[^']*' for '[^']*' was not found|Can't select version).*$`)

func tail(b []byte) string {
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// Source is one apt source entry.
type Source struct {
	URI      string
	Suites   []string
	SignedBy string
}

// FindMirror picks the Debian archive from an /etc/apt tree: the first
// source, in file-name order, whose URI path ends in /debian and which
// serves a plain release suite (not -security or -updates). Both the
// one-line format (sources.list) and deb822 (*.sources) are read (man
// sources.list(5)).
func FindMirror(etcApt string) (Source, error) {
	var files []string
	if _, err := os.Stat(filepath.Join(etcApt, "sources.list")); err == nil {
		files = append(files, filepath.Join(etcApt, "sources.list"))
	}
	parts, _ := filepath.Glob(filepath.Join(etcApt, "sources.list.d", "*"))
	sort.Strings(parts)
	files = append(files, parts...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var srcs []Source
		switch {
		case strings.HasSuffix(f, ".sources"):
			srcs = ParseDeb822(b)
		case strings.HasSuffix(f, ".list"):
			srcs = ParseOneLine(b)
		}
		for _, s := range srcs {
			if isDebianArchive(s) {
				return s, nil
			}
		}
	}
	return Source{}, fmt.Errorf("%w in %s (pass --mirror URI)", ErrNoMirror, etcApt)
}

func isDebianArchive(s Source) bool {
	if !strings.HasSuffix(strings.TrimSuffix(s.URI, "/"), "/debian") {
		return false
	}
	for _, su := range s.Suites {
		if !strings.Contains(su, "-") && !strings.Contains(su, "/") {
			return true
		}
	}
	return false
}

// ParseDeb822 reads deb822 stanzas (Types/URIs/Suites/Signed-By) of type deb.
func ParseDeb822(b []byte) []Source {
	var out []Source
	for _, stanza := range regexp.MustCompile(`\n\s*\n`).Split(string(b), -1) {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if (line[0] == ' ' || line[0] == '\t') && last != "" {
				fields[last] += " " + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if !contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			signed := strings.Fields(fields["signed-by"])
			s := Source{URI: uri, Suites: strings.Fields(fields["suites"])}
			if len(signed) == 1 && strings.HasPrefix(signed[0], "/") {
				s.SignedBy = signed[0]
			}
			out = append(out, s)
		}
	}
	return out
}

// ParseOneLine reads "deb [options] uri suite components..." lines.
func ParseOneLine(b []byte) []Source {
	var out []Source
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		var s Source
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 {
				opt := strings.Trim(f[0], "[]")
				if k, v, ok := strings.Cut(opt, "="); ok && k == "signed-by" && strings.HasPrefix(v, "/") {
					s.SignedBy = v
				}
				done := strings.HasSuffix(f[0], "]")
				f = f[1:]
				if done {
					break
				}
			}
		}
		if len(f) < 2 {
			continue
		}
		s.URI, s.Suites = f[0], []string{f[1]}
		out = append(out, s)
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
