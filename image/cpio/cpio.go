// Package cpio turns an fstree.Tree into the initrd archive the Linux kernel
// unpacks into its initial rootfs, and parses such an archive back into
// entries so two initrds can be compared file by file.
//
// The format is "newc" (magic "070701"), the only cpio format the kernel's
// initramfs unpacker reads besides its checksummed "070702" twin
// (Documentation/driver-api/early-userspace/buffer-format.rst, init/initramfs.c).
// Each record is a 110-byte ASCII header of thirteen 8-digit hex fields, the
// NUL-terminated name padded to a multiple of 4, then the body padded to a
// multiple of 4. The archive ends with a record named "TRAILER!!!".
//
// The writer is reproducible: everything in a header is a function of the tree
// and of the epoch passed in, never of the build machine.
package cpio

import "errors"

// Errors. Read returns errors that match ErrFormat for any malformed input;
// ErrTruncated additionally matches when the input ends early, so a caller
// that only asks "is this a valid archive" can test ErrFormat alone.
var (
	ErrFormat      = errors.New("cpio: bad newc archive")
	ErrTruncated   = truncated{}
	ErrUnsupported = errors.New("cpio: not representable as an fstree entry")
	ErrTooLarge    = errors.New("cpio: too large for newc")
	ErrEpoch       = errors.New("cpio: epoch out of range")
)

// truncated is ErrTruncated's type: it is its own sentinel and also matches
// ErrFormat under errors.Is.
type truncated struct{}

func (truncated) Error() string        { return "cpio: archive truncated" }
func (truncated) Is(target error) bool { return target == ErrFormat }

// Layout constants of the newc format (buffer-format.rst).
const (
	magic      = "070701"
	headerLen  = 110 // 6 magic + 13 fields * 8 hex digits
	trailer    = "TRAILER!!!"
	blockAlign = 512 // see Write: padding of the whole archive

	// pathMax is the kernel's PATH_MAX, including the terminating NUL. The
	// initramfs unpacker rejects longer names and symlink bodies.
	pathMax = 4096
)

// Unix file type bits of the mode field (inode(7)).
const (
	sIFMT  = 0o170000
	sIFREG = 0o100000
	sIFDIR = 0o040000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
	sIFBLK = 0o060000
)
