package cpio

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// Read parses an uncompressed newc archive into entries sorted with
// fstree.SortEntries.
//
// It is a small parser of its own rather than u-root's reader, because that
// one allocates the name size the header claims before checking it against
// the input. Here the archive is read into memory once and every size is
// checked against what is left of it, so a hostile header cannot make Read
// allocate more than the input.
//
// Read is strict where the kernel would do something the entry list cannot
// show: a path must be clean, unique and come after its parent directory;
// a directory or device has no body; only regular files, directories,
// symlinks and devices are accepted (FIFOs and sockets are not); owners must
// be 0:0 (fstree has no ownership, so accepting others would hide a
// difference); and only zero padding may follow the trailer, so a
// concatenation of archives is rejected. A "." or "./" record (the root) is
// skipped and leading "./" and "/" are stripped, as the kernel does.
//
// Hard links are resolved the way GNU cpio writes them: regular files with
// nlink >= 2 and the same (dev, ino, mode) share the one body that is present.
func Read(r io.Reader) ([]fstree.Entry, error) {
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("cpio: reading archive: %w", err)
	}
	return parse(buf)
}

// header is the decoded newc header, fields in on-disk order.
type header struct {
	ino, mode, uid, gid, nlink, mtime, filesize uint32
	devMajor, devMinor, rdevMajor, rdevMinor    uint32
	namesize, check                             uint32
}

var fieldNames = [13]string{"ino", "mode", "uid", "gid", "nlink", "mtime", "filesize",
	"devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check"}

// parseHeader decodes the 110 header bytes of the record at off.
func parseHeader(b []byte, off int) (header, error) {
	if string(b[:len(magic)]) != magic {
		return header{}, fmt.Errorf("%w: record at offset %d: magic %q, want %q", ErrFormat, off, b[:len(magic)], magic)
	}
	var v [13]uint32
	for i := range v {
		f := b[len(magic)+8*i : len(magic)+8*i+8]
		for _, c := range f {
			var d byte
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				d = c - 'A' + 10
			default:
				return header{}, fmt.Errorf("%w: record at offset %d: %s field %q, want 8 hex digits", ErrFormat, off, fieldNames[i], f)
			}
			v[i] = v[i]<<4 | uint32(d)
		}
	}
	return header{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]}, nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

type linkKey struct{ major, minor, ino, mode uint32 }

func parse(buf []byte) ([]fstree.Entry, error) {
	var (
		entries []fstree.Entry
		kinds   = map[string]fstree.Kind{}
		links   = map[linkKey][]int{} // hard-link groups: indices into entries
		size    = uint64(len(buf))
		off     uint64
	)
	for {
		if size-off < headerLen {
			return nil, fmt.Errorf("%w: %d bytes at offset %d, want a %d-byte header (no %s record yet)", ErrTruncated, size-off, off, headerLen, trailer)
		}
		h, err := parseHeader(buf[off:off+headerLen], int(off))
		if err != nil {
			return nil, err
		}
		nameAt := off + headerLen
		if h.namesize == 0 || h.namesize > pathMax {
			return nil, fmt.Errorf("%w: record at offset %d: namesize %d, want 1..%d", ErrFormat, off, h.namesize, pathMax)
		}
		if uint64(h.namesize) > size-nameAt {
			return nil, fmt.Errorf("%w: record at offset %d: namesize %d, only %d bytes left", ErrTruncated, off, h.namesize, size-nameAt)
		}
		nameb := buf[nameAt : nameAt+uint64(h.namesize)]
		if nameb[len(nameb)-1] != 0 || bytes.IndexByte(nameb[:len(nameb)-1], 0) >= 0 {
			return nil, fmt.Errorf("%w: record at offset %d: name %q, want one NUL at its end", ErrFormat, off, nameb)
		}
		name := string(nameb[:len(nameb)-1])
		bodyAt := align4(nameAt + uint64(h.namesize))
		if bodyAt > size || uint64(h.filesize) > size-bodyAt {
			return nil, fmt.Errorf("%w: record %q at offset %d: body of %d bytes at offset %d, input is %d bytes", ErrTruncated, name, off, h.filesize, bodyAt, size)
		}
		end := bodyAt + uint64(h.filesize)
		body := buf[bodyAt:end:end]
		next := align4(end)
		if next > size {
			return nil, fmt.Errorf("%w: record %q at offset %d: padding to offset %d, input is %d bytes", ErrTruncated, name, off, next, size)
		}
		if name == trailer {
			if i := bytes.IndexFunc(buf[next:], func(r rune) bool { return r != 0 }); i >= 0 {
				return nil, fmt.Errorf("%w: non-zero byte at offset %d after %s, want only zero padding (concatenated archives are not supported)", ErrFormat, next+uint64(i), trailer)
			}
			break
		}
		e, skip, err := toEntry(h, name, body, off)
		if err != nil {
			return nil, err
		}
		off = next
		if skip {
			continue
		}
		if _, dup := kinds[e.Path]; dup {
			return nil, fmt.Errorf("%w: %s appears twice", ErrFormat, e.Path)
		}
		if parent := path.Dir(e.Path); parent != "." && kinds[parent] != fstree.Dir {
			return nil, fmt.Errorf("%w: %s comes before its parent directory %s", ErrFormat, e.Path, parent)
		}
		kinds[e.Path] = e.Kind
		if e.Kind == fstree.File && h.nlink >= 2 {
			k := linkKey{h.devMajor, h.devMinor, h.ino, h.mode}
			links[k] = append(links[k], len(entries))
		}
		entries = append(entries, e)
	}
	if err := resolveLinks(entries, links); err != nil {
		return nil, err
	}
	var t fstree.Tree
	for _, e := range entries {
		if err := t.Add(e); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFormat, err)
		}
	}
	return t.Entries(), nil
}

// toEntry converts one record; skip is true for the root record.
func toEntry(h header, name string, body []byte, off uint64) (e fstree.Entry, skip bool, err error) {
	typ := h.mode & sIFMT
	if p := strings.TrimLeft(strings.TrimPrefix(name, "./"), "/"); p == "" || p == "." {
		if typ != sIFDIR {
			return e, false, fmt.Errorf("%w: root record %q at offset %d has mode %#o, want a directory", ErrFormat, name, off, h.mode)
		}
		return e, true, nil
	}
	p, err := fstree.CleanPath(name)
	if err != nil {
		return e, false, fmt.Errorf("%w: record at offset %d: %w", ErrFormat, off, err)
	}
	if h.mode&^0o177777 != 0 {
		return e, false, fmt.Errorf("%w: %s: mode %#o has bits above 0o177777", ErrFormat, p, h.mode)
	}
	if h.uid != 0 || h.gid != 0 {
		return e, false, fmt.Errorf("%w: %s: owner %d:%d, want 0:0", ErrUnsupported, p, h.uid, h.gid)
	}
	e = fstree.Entry{Path: p, Perm: fs.FileMode(h.mode & 0o7777)}
	switch typ {
	case sIFREG:
		e.Kind, e.Data = fstree.File, body
		return e, false, nil
	case sIFDIR:
		e.Kind = fstree.Dir
	case sIFLNK:
		e.Kind, e.Target = fstree.Symlink, string(body)
		if len(body) == 0 || len(body) >= pathMax || bytes.IndexByte(body, 0) >= 0 {
			return e, false, fmt.Errorf("%w: symlink %s: target %q, want 1..%d bytes without NUL", ErrFormat, p, body, pathMax-1)
		}
		return e, false, nil
	case sIFCHR, sIFBLK:
		e.Kind, e.Major, e.Minor = fstree.CharDev, h.rdevMajor, h.rdevMinor
		if typ == sIFBLK {
			e.Kind = fstree.BlockDev
		}
	default:
		return e, false, fmt.Errorf("%w: %s: file type %#o, want a regular file, directory, symlink or device", ErrFormat, p, typ)
	}
	if len(body) != 0 {
		return e, false, fmt.Errorf("%w: %s %s: body of %d bytes, want none", ErrFormat, e.Kind, p, len(body))
	}
	return e, false, nil
}

// resolveLinks gives every member of a hard-link group the group's body. GNU
// cpio writes the body with the last name only; the kernel links the names
// to one inode. Two different non-empty bodies in a group are an error.
func resolveLinks(entries []fstree.Entry, links map[linkKey][]int) error {
	for _, group := range links {
		var data []byte
		for _, i := range group {
			if d := entries[i].Data; len(d) > 0 {
				if data != nil && !bytes.Equal(data, d) {
					return fmt.Errorf("%w: hard links %s and %s have different bodies", ErrFormat, entries[group[0]].Path, entries[i].Path)
				}
				data = d
			}
		}
		for _, i := range group {
			entries[i].Data = data
		}
	}
	return nil
}
