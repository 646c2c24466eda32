// Package deb reads Debian binary packages (.deb) without dpkg, so that the
// image build can take the kernel, its modules and the firmware straight from
// the archive files it pinned by hash, on any machine with a Go toolchain.
//
// The format is deb(5): an ar archive whose members are debian-binary
// ("2.0\n"), control.tar[.gz|.xz|.zst] and data.tar[.gz|.xz|.zst], in that
// order, with optional members named "_*" in between that readers ignore.
// Only data.tar is read here; nothing is written to disk and links are not
// followed, so a hostile package can at worst make a call fail.
package deb

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Errors returned (wrapped) by this package; test them with errors.Is.
var (
	// ErrNotDeb: the file is not an ar archive as deb(5) describes it, or
	// its first member is not debian-binary with format version 2.x.
	ErrNotDeb = errors.New("not a Debian binary package")
	// ErrTruncated: the file ends inside the ar structure or inside the
	// compressed data.tar stream; typically an interrupted download.
	ErrTruncated = errors.New("truncated")
	// ErrNoData: the package has no data.tar member.
	ErrNoData = errors.New("no data.tar member")
	// ErrCompression: data.tar has a compression suffix this package does
	// not decode, or asks for more decoder memory than it allows.
	ErrCompression = errors.New("unsupported compression")
	// ErrCorrupt: the compressed stream or the tar archive inside it is
	// malformed (bad checksum, bad header), as opposed to cut short.
	ErrCorrupt = errors.New("corrupt")
	// ErrBadPath: a tar entry name is absolute after cleaning or climbs out
	// of the package root with "..".
	ErrBadPath = errors.New("unsafe path in data.tar")
	// ErrStop may be returned by a Walk callback to end the walk early;
	// Walk then returns nil.
	ErrStop = errors.New("stop walk")
)

// maxDebianBinary bounds the debian-binary member we read. deb(5) allows new
// lines to be added, but it is a version string, not a payload.
const maxDebianBinary = 4096

// Walk streams the data.tar member and calls fn for every tar entry in
// archive order. name is the entry name cleaned to a relative slash path
// without "./" ("usr/share/ovmf/OVMF.fd"; the root entry is "."). For a
// regular file, r yields its content; fn need not read it. An error from fn
// ends the walk and is returned wrapped with the entry name, except ErrStop,
// which makes Walk return nil.
func Walk(r io.ReaderAt, size int64, fn func(name string, hdr *tar.Header, r io.Reader) error) error {
	return walk(r, size, defaultLimits, fn)
}

// Extract returns the contents of the regular files whose cleaned names
// satisfy keep. Symlinks and hard links are not resolved: a kept name that is
// a link is simply absent from the result.
func Extract(r io.ReaderAt, size int64, keep func(name string) bool) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := Walk(r, size, func(name string, hdr *tar.Header, content io.Reader) error {
		if !hdr.FileInfo().Mode().IsRegular() || !keep(name) {
			return nil
		}
		// Grow from what was actually decompressed, never from hdr.Size,
		// which the package controls.
		b, err := io.ReadAll(content)
		if err != nil {
			return err
		}
		files[name] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// walk is Walk with explicit resource limits, so fuzz tests can lower them.
func walk(r io.ReaderAt, size int64, lim limits, fn func(string, *tar.Header, io.Reader) error) error {
	data, err := dataMember(r, size)
	if err != nil {
		return err
	}
	dec, err := decompress(io.NewSectionReader(r, data.Offset, data.Size), data.Name, lim)
	if err != nil {
		return err
	}
	defer dec.Close()

	tr := tar.NewReader(dec)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			// tar saw its end-of-archive blocks. Read what follows (record
			// padding) to the end of the compressed stream, so that its
			// trailer and checksum are verified too.
			if _, err := io.Copy(io.Discard, dec); err != nil && err != errStreamEnd {
				return fmt.Errorf("%s: after the tar end: %w", data.Name, streamErr(err))
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", data.Name, streamErr(err))
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", data.Name, err)
		}
		if err := fn(name, hdr, tr); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrTruncated) {
				// archive/tar's own report of content cut short.
				err = fmt.Errorf("%w: %w", ErrTruncated, err)
			}
			return fmt.Errorf("%s: %s: %w", data.Name, name, err)
		}
	}
}

// dataMember checks the member sequence deb(5) prescribes and returns the
// data.tar member: debian-binary first, then control.tar*, then data.tar*,
// with "_"-prefixed members allowed anywhere in between. Members after
// data.tar are ignored, as deb(5) asks of current readers.
func dataMember(r io.ReaderAt, size int64) (Member, error) {
	ms, err := Members(r, size)
	if err != nil {
		return Member{}, err
	}
	if len(ms) == 0 || ms[0].Name != "debian-binary" {
		first := "none"
		if len(ms) > 0 {
			first = fmt.Sprintf("%q", ms[0].Name)
		}
		return Member{}, fmt.Errorf("first member is %s, want \"debian-binary\": %w", first, ErrNotDeb)
	}
	if err := checkVersion(r, ms[0]); err != nil {
		return Member{}, err
	}
	control := false
	for _, m := range ms[1:] {
		switch {
		case strings.HasPrefix(m.Name, "_"):
		case isTar(m.Name, "control.tar") && !control:
			control = true
		case isTar(m.Name, "data.tar"):
			if !control {
				return Member{}, fmt.Errorf("member %q comes before control.tar: %w", m.Name, ErrNotDeb)
			}
			return m, nil
		default:
			return Member{}, fmt.Errorf("unexpected member %q before data.tar: %w", m.Name, ErrNotDeb)
		}
	}
	return Member{}, fmt.Errorf("%d members, none named data.tar*: %w", len(ms), ErrNoData)
}

// isTar reports whether name is base or base plus a compression suffix.
func isTar(name, base string) bool {
	return name == base || strings.HasPrefix(name, base+".")
}

// checkVersion reads debian-binary. deb(5): the major number must be 2; a
// larger minor number and extra lines are to be ignored.
func checkVersion(r io.ReaderAt, m Member) error {
	if m.Size > maxDebianBinary {
		return fmt.Errorf("debian-binary is %d bytes, want at most %d: %w", m.Size, maxDebianBinary, ErrNotDeb)
	}
	b := make([]byte, m.Size)
	if err := readAt(r, b, m.Offset); err != nil {
		return fmt.Errorf("reading debian-binary: %w", err)
	}
	line, _, ok := bytes.Cut(b, []byte("\n"))
	minor, isTwo := strings.CutPrefix(string(line), "2.")
	if !ok || !isTwo || minor == "" || strings.Trim(minor, "0123456789") != "" {
		return fmt.Errorf("debian-binary is %q, want \"2.0\\n\": %w", b, ErrNotDeb)
	}
	return nil
}

// cleanName turns a tar entry name ("./usr/bin/x", "usr/lib/", "./") into a
// clean relative path ("usr/bin/x", "usr/lib", "."). Names that would land
// outside the package root are refused, so callers may join the result onto
// a directory without checking it again.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("entry %q is absolute: %w", name, ErrBadPath)
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("entry %q climbs out of the package root: %w", name, ErrBadPath)
	}
	return clean, nil
}
