// Package lock reads the image's pinned-inputs file (image/inputs.lock).
//
// The format is line based so that a change shows as a one-line diff:
//
//	# comment
//	suite trixie
//	source-date-epoch 1767225600
//	deb NAME role=ROLE version=VERSION arch=ARCH size=BYTES sha256=HEX
//
// Every field of a deb line is required, each key appears once, and unknown
// keys are errors: a lock file that says more than we understand must not be
// half obeyed.
package lock

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Roles a package can play in the image. The builder knows what to take from
// each role; a package with any other role is refused.
const (
	RoleKernel   = "kernel"   // vmlinuz and the kernel modules
	RoleFirmware = "firmware" // OVMF.fd (TDVF)
)

var knownRoles = map[string]bool{RoleKernel: true, RoleFirmware: true}

// Errors.
var (
	ErrSyntax  = errors.New("lock: syntax error")
	ErrInvalid = errors.New("lock: invalid lock file")
	ErrMissing = errors.New("lock: package not in lock file")
)

// Package is one pinned Debian package.
type Package struct {
	Name    string
	Role    string
	Version string
	Arch    string
	Size    int64
	SHA256  string // lowercase hex
}

// FileName is the canonical cache file name, as dpkg names a .deb (with the
// epoch's colon escaped the way apt does).
func (p Package) FileName() string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Arch)
}

// String names the package the way apt does: name=version.
func (p Package) String() string { return p.Name + "=" + p.Version }

// File is a parsed lock file.
type File struct {
	Suite string
	// SourceDateEpoch is the timestamp every file in the image carries
	// (https://reproducible-builds.org/specs/source-date-epoch/); the
	// SOURCE_DATE_EPOCH environment variable overrides it.
	SourceDateEpoch int64
	Packages        []Package // in file order
}

// ByRole returns the package with the given role.
func (f *File) ByRole(role string) (Package, error) {
	for _, p := range f.Packages {
		if p.Role == role {
			return p, nil
		}
	}
	return Package{}, fmt.Errorf("%w: no package with role=%s", ErrMissing, role)
}

// Debian policy §5.6.1 (package names) and §5.6.12 (versions); arch is a
// dpkg architecture name.
var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	versionRE = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	archRE    = regexp.MustCompile(`^[a-z0-9-]+$`)
	suiteRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
)

// Load reads and parses a lock file from disk.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	f, err := Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// maxLine bounds a line so a hostile file cannot make us buffer without end.
const maxLine = 4096

// Parse parses a lock file.
func Parse(r io.Reader) (*File, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	f := &File{}
	seen := map[string]int{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch fields[0] {
		case "suite":
			if len(fields) != 2 || !suiteRE.MatchString(fields[1]) {
				return nil, fmt.Errorf("%w: line %d: want `suite NAME`, got %q", ErrSyntax, n, line)
			}
			if f.Suite != "" {
				return nil, fmt.Errorf("%w: line %d: second suite line", ErrSyntax, n)
			}
			f.Suite = fields[1]
		case "source-date-epoch":
			if len(fields) != 2 || f.SourceDateEpoch != 0 {
				return nil, fmt.Errorf("%w: line %d: want one `source-date-epoch SECONDS`, got %q", ErrSyntax, n, line)
			}
			v, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil || v <= 0 || v > 1<<32-1 {
				return nil, fmt.Errorf("%w: line %d: source-date-epoch %q is not a positive 32-bit number of seconds", ErrSyntax, n, fields[1])
			}
			f.SourceDateEpoch = v
		case "deb":
			p, err := parseDeb(fields[1:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if prev, dup := seen[p.Name]; dup {
				return nil, fmt.Errorf("%w: line %d: package %s already pinned on line %d", ErrInvalid, n, p.Name, prev)
			}
			seen[p.Name] = n
			f.Packages = append(f.Packages, p)
		default:
			return nil, fmt.Errorf("%w: line %d: unknown directive %q", ErrSyntax, n, fields[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if f.Suite == "" {
		return nil, fmt.Errorf("%w: no suite line", ErrInvalid)
	}
	if f.SourceDateEpoch == 0 {
		return nil, fmt.Errorf("%w: no source-date-epoch line", ErrInvalid)
	}
	if len(f.Packages) == 0 {
		return nil, fmt.Errorf("%w: no packages", ErrInvalid)
	}
	roles := map[string]string{}
	for _, p := range f.Packages {
		if other, ok := roles[p.Role]; ok {
			return nil, fmt.Errorf("%w: role=%s given to both %s and %s", ErrInvalid, p.Role, other, p.Name)
		}
		roles[p.Role] = p.Name
	}
	for _, r := range sortedKeys(knownRoles) {
		if _, ok := roles[r]; !ok {
			return nil, fmt.Errorf("%w: no package with role=%s", ErrInvalid, r)
		}
	}
	return f, nil
}

func parseDeb(fields []string) (Package, error) {
	if len(fields) == 0 {
		return Package{}, fmt.Errorf("%w: deb line without a package name", ErrSyntax)
	}
	p := Package{Name: fields[0]}
	if !nameRE.MatchString(p.Name) {
		return p, fmt.Errorf("%w: bad package name %q", ErrSyntax, p.Name)
	}
	kv := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return p, fmt.Errorf("%w: %s: want key=value, got %q", ErrSyntax, p.Name, f)
		}
		if _, dup := kv[k]; dup {
			return p, fmt.Errorf("%w: %s: %s given twice", ErrSyntax, p.Name, k)
		}
		kv[k] = v
	}
	for _, k := range sortedKeys(kv) {
		v := kv[k]
		switch k {
		case "role":
			if !knownRoles[v] {
				return p, fmt.Errorf("%w: %s: unknown role %q (want one of %s)", ErrInvalid, p.Name, v, strings.Join(sortedKeys(knownRoles), ", "))
			}
			p.Role = v
		case "version":
			if !versionRE.MatchString(v) {
				return p, fmt.Errorf("%w: %s: bad version %q", ErrSyntax, p.Name, v)
			}
			p.Version = v
		case "arch":
			if !archRE.MatchString(v) {
				return p, fmt.Errorf("%w: %s: bad arch %q", ErrSyntax, p.Name, v)
			}
			p.Arch = v
		case "size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return p, fmt.Errorf("%w: %s: bad size %q", ErrSyntax, p.Name, v)
			}
			p.Size = n
		case "sha256":
			if b, err := hex.DecodeString(v); err != nil || len(b) != 32 || strings.ToLower(v) != v {
				return p, fmt.Errorf("%w: %s: sha256 must be 64 lowercase hex digits, got %q", ErrSyntax, p.Name, v)
			}
			p.SHA256 = v
		default:
			return p, fmt.Errorf("%w: %s: unknown key %q", ErrSyntax, p.Name, k)
		}
	}
	for _, k := range []string{"role", "version", "arch", "size", "sha256"} {
		if _, ok := kv[k]; !ok {
			return p, fmt.Errorf("%w: %s: missing %s=", ErrSyntax, p.Name, k)
		}
	}
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Format renders p as a deb line of the lock file.
func Format(p Package) string {
	return fmt.Sprintf("deb %s role=%s version=%s arch=%s size=%d sha256=%s", p.Name, p.Role, p.Version, p.Arch, p.Size, p.SHA256)
}
