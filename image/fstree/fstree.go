// Package fstree is the in-memory description of a filesystem tree that the
// image writers (cpio for the initrd, squashfs for the root) turn into bytes,
// and that their readers produce again so two images can be compared file by
// file.
//
// A Tree carries only what must end up in the image: path, type, permission
// bits, content, link target and device numbers. Ownership is always 0:0 and
// every timestamp is the build's SOURCE_DATE_EPOCH, so nothing of the build
// machine (user, umask, clock) can leak into an artifact.
package fstree

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Kind is the type of an entry.
type Kind uint8

// Entry kinds.
const (
	File Kind = iota + 1
	Dir
	Symlink
	CharDev
	BlockDev
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case CharDev:
		return "chardev"
	case BlockDev:
		return "blockdev"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one node of the tree.
type Entry struct {
	// Path is slash separated, relative, cleaned, without a leading "/" or
	// "./" (for example "usr/bin/worker"). The root itself is not an entry.
	Path string
	Kind Kind
	// Perm holds the permission bits only (0o7777 at most).
	Perm fs.FileMode
	// Data is the content of a File.
	Data []byte
	// Target is the target of a Symlink.
	Target string
	// Major and Minor are the device numbers of a CharDev or BlockDev.
	Major, Minor uint32
}

// Digest is the sha256 of what the entry holds: file data or link target.
// Directories and devices have an empty digest.
func (e Entry) Digest() string {
	switch e.Kind {
	case File:
		s := sha256.Sum256(e.Data)
		return hex.EncodeToString(s[:])
	case Symlink:
		s := sha256.Sum256([]byte(e.Target))
		return hex.EncodeToString(s[:])
	}
	return ""
}

// Describe is a one-line, stable summary used when reporting a difference.
func (e Entry) Describe() string {
	switch e.Kind {
	case File:
		return fmt.Sprintf("file %04o size=%d sha256=%s", uint32(e.Perm), len(e.Data), e.Digest())
	case Symlink:
		return fmt.Sprintf("symlink %04o -> %s", uint32(e.Perm), e.Target)
	case CharDev, BlockDev:
		return fmt.Sprintf("%s %04o %d:%d", e.Kind, uint32(e.Perm), e.Major, e.Minor)
	}
	return fmt.Sprintf("%s %04o", e.Kind, uint32(e.Perm))
}

// Errors returned by Tree methods.
var (
	ErrBadPath   = errors.New("fstree: bad path")
	ErrDuplicate = errors.New("fstree: duplicate path")
	ErrBadEntry  = errors.New("fstree: bad entry")
)

// Tree is a set of entries keyed by path. The zero value is empty and ready.
type Tree struct {
	entries map[string]Entry
}

// CleanPath validates p and returns its canonical form.
func CleanPath(p string) (string, error) {
	q := strings.TrimPrefix(p, "./")
	q = strings.TrimLeft(q, "/")
	if q == "" || q == "." {
		return "", fmt.Errorf("%w: %q names the root", ErrBadPath, p)
	}
	c := path.Clean(q)
	if c != q || c == ".." || strings.HasPrefix(c, "../") || strings.ContainsRune(c, 0) {
		return "", fmt.Errorf("%w: %q is not clean", ErrBadPath, p)
	}
	return c, nil
}

// Add inserts e, creating missing parent directories with mode 0755.
// Adding the same path twice is an error unless both are identical
// directories.
func (t *Tree) Add(e Entry) error {
	p, err := CleanPath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if e.Perm&^0o7777 != 0 {
		return fmt.Errorf("%w: %s: perm %o has non-permission bits", ErrBadEntry, p, uint32(e.Perm))
	}
	switch e.Kind {
	case File, Dir, CharDev, BlockDev:
	case Symlink:
		if e.Target == "" {
			return fmt.Errorf("%w: %s: symlink without target", ErrBadEntry, p)
		}
	default:
		return fmt.Errorf("%w: %s: unknown kind %d", ErrBadEntry, p, e.Kind)
	}
	if t.entries == nil {
		t.entries = map[string]Entry{}
	}
	if old, ok := t.entries[p]; ok {
		if old.Kind == Dir && e.Kind == Dir && old.Perm == e.Perm {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrDuplicate, p)
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if old, ok := t.entries[d]; ok {
			if old.Kind != Dir {
				return fmt.Errorf("%w: parent %s of %s is a %s", ErrBadEntry, d, p, old.Kind)
			}
			break
		}
		t.entries[d] = Entry{Path: d, Kind: Dir, Perm: 0o755}
	}
	t.entries[p] = e
	return nil
}

// AddFile is Add for a regular file.
func (t *Tree) AddFile(p string, perm fs.FileMode, data []byte) error {
	return t.Add(Entry{Path: p, Kind: File, Perm: perm, Data: data})
}

// AddDir is Add for a directory.
func (t *Tree) AddDir(p string, perm fs.FileMode) error {
	return t.Add(Entry{Path: p, Kind: Dir, Perm: perm})
}

// Get returns the entry at p.
func (t *Tree) Get(p string) (Entry, bool) {
	e, ok := t.entries[p]
	return e, ok
}

// Len is the number of entries.
func (t *Tree) Len() int { return len(t.entries) }

// Entries returns every entry in SortEntries order.
func (t *Tree) Entries() []Entry {
	out := make([]Entry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	SortEntries(out)
	return out
}

// SortEntries sorts by path component, so a directory comes right before its
// contents (depth-first, names compared bytewise). Readers use it so that the
// listings of two images line up.
func SortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return ComparePaths(es[i].Path, es[j].Path) < 0 })
}

// ComparePaths orders slash-separated paths component by component.
func ComparePaths(a, b string) int {
	for {
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		ac, bc := a, b
		if ai >= 0 {
			ac = a[:ai]
		}
		if bi >= 0 {
			bc = b[:bi]
		}
		if c := strings.Compare(ac, bc); c != 0 {
			return c
		}
		if ai < 0 || bi < 0 {
			switch {
			case ai < 0 && bi < 0:
				return 0
			case ai < 0:
				return -1
			default:
				return 1
			}
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}

// Difference describes the first place two listings disagree.
type Difference struct {
	Path      string
	Want, Got string // Describe() of each side, or "absent"
}

func (d Difference) String() string {
	return fmt.Sprintf("%s: want %s, got %s", d.Path, d.Want, d.Got)
}

// FirstDifference compares two listings (each sorted with SortEntries) and
// returns the first differing path, or nil when they hold the same entries.
func FirstDifference(want, got []Entry) *Difference {
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j >= len(got) || (i < len(want) && ComparePaths(want[i].Path, got[j].Path) < 0):
			return &Difference{Path: want[i].Path, Want: want[i].Describe(), Got: "absent"}
		case i >= len(want) || ComparePaths(want[i].Path, got[j].Path) > 0:
			return &Difference{Path: got[j].Path, Want: "absent", Got: got[j].Describe()}
		}
		if w, g := want[i].Describe(), got[j].Describe(); w != g {
			return &Difference{Path: want[i].Path, Want: w, Got: g}
		}
		i++
		j++
	}
	return nil
}

// FromEntries builds a tree from a listing such as a reader returns. Every
// parent directory must be listed itself: a listing that relies on implied
// parents is refused, so a reader that drops a directory is caught.
func FromEntries(es []Entry) (*Tree, error) {
	var t Tree
	for _, e := range es {
		if err := t.Add(e); err != nil {
			return nil, err
		}
	}
	if t.Len() != len(es) {
		return nil, fmt.Errorf("%w: %d entries listed, %d after adding implied parent directories", ErrBadEntry, len(es), t.Len())
	}
	return &t, nil
}

// ModeString renders type and permissions as ls -l (and cpio -tv,
// unsquashfs -ll) print them, e.g. "-rwsr-xr-x" or "drwxrwxrwt".
func (e Entry) ModeString() string {
	typ := map[Kind]byte{File: '-', Dir: 'd', Symlink: 'l', CharDev: 'c', BlockDev: 'b'}[e.Kind]
	if typ == 0 {
		typ = '?'
	}
	b := []byte{typ}
	for i, special := range []struct {
		bit       fs.FileMode
		set, only byte // shown with and without the x bit
	}{{0o4000, 's', 'S'}, {0o2000, 's', 'S'}, {0o1000, 't', 'T'}} {
		p := uint32(e.Perm) >> (6 - 3*i) & 7
		b = append(b, "-r"[p>>2&1], "-w"[p>>1&1])
		x := "-x"[p&1]
		if e.Perm&special.bit != 0 {
			x = special.only
			if p&1 != 0 {
				x = special.set
			}
		}
		b = append(b, x)
	}
	return string(b)
}
