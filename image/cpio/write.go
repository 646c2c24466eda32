package cpio

import (
	"fmt"
	"io"
	"math"
	"path"

	"github.com/cocoon-appliance/cocoon/image/fstree"
	ucpio "github.com/u-root/u-root/pkg/cpio"
)

// Write writes t as a newc archive: one record per entry in t.Entries() order
// (a directory always precedes its contents, which the kernel's unpacker
// needs because it creates paths as it reads them), then the TRAILER!!!
// record, then zero bytes up to a multiple of 512.
//
// Records are built with u-root's pkg/cpio and written by its newc writer, but
// every header field is set here rather than taken from u-root's
// MakeReproducible, which zeroes mtime (we want SOURCE_DATE_EPOCH) and leaves
// the inode number and link count to the caller:
//
//   - ino: 1, 2, 3, ... in entry order (0 is left to the trailer);
//   - uid, gid: 0; mtime: epoch; dev major/minor: 0;
//   - nlink: 1, except a directory's 2 + its number of subdirectories, what
//     a Unix filesystem reports and so what GNU cpio would record;
//   - rdev major/minor: from the entry for devices, else 0.
//
// Regular files never share an inode number, so the unpacker's hard-link
// logic (init/initramfs.c maybe_link, nlink >= 2 only) never applies.
//
// The 512-byte padding is what the kernel's usr/gen_init_cpio and GNU cpio
// produce. The unpacker skips zero bytes between and after archives, so the
// padding is harmless, and it keeps the archive block aligned if another
// archive (early microcode, say) is concatenated to it.
func Write(w io.Writer, t *fstree.Tree, epoch int64) error {
	if epoch < 0 || epoch > math.MaxUint32 {
		return fmt.Errorf("%w: %d, want 0..%d (newc mtime is 32 bits)", ErrEpoch, epoch, uint32(math.MaxUint32))
	}
	entries := t.Entries()
	subdirs := map[string]uint64{}
	for _, e := range entries {
		if e.Kind == fstree.Dir {
			subdirs[path.Dir(e.Path)]++
		}
	}
	cw := &countingWriter{w: w}
	rw := ucpio.Newc.Writer(cw)
	for i, e := range entries {
		rec, err := record(e)
		if err != nil {
			return err
		}
		rec.Ino = uint64(i + 1)
		rec.UID, rec.GID = 0, 0
		rec.MTime = uint64(epoch)
		rec.Dev, rec.Major, rec.Minor = 0, 0, 0
		rec.NLink = 1
		if e.Kind == fstree.Dir {
			rec.NLink = 2 + subdirs[e.Path]
		}
		if err := rw.WriteRecord(rec); err != nil {
			return fmt.Errorf("cpio: writing %s: %w", e.Path, err)
		}
	}
	if err := ucpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("cpio: writing trailer: %w", err)
	}
	if r := cw.n % blockAlign; r != 0 {
		if _, err := cw.Write(make([]byte, blockAlign-r)); err != nil {
			return fmt.Errorf("cpio: writing padding: %w", err)
		}
	}
	return nil
}

// record converts one entry into a u-root record with its type, permission
// bits and body; Write fills in the rest of the header.
func record(e fstree.Entry) (ucpio.Record, error) {
	if len(e.Path)+1 > pathMax {
		return ucpio.Record{}, fmt.Errorf("%w: %s: name is %d bytes, the kernel allows %d", ErrTooLarge, e.Path, len(e.Path), pathMax-1)
	}
	perm := uint64(e.Perm & 0o7777)
	if e.Perm&^0o7777 != 0 {
		return ucpio.Record{}, fmt.Errorf("%w: %s: perm %#o, want permission bits only", ErrUnsupported, e.Path, uint32(e.Perm))
	}
	var r ucpio.Record
	switch e.Kind {
	case fstree.File:
		if uint64(len(e.Data)) > math.MaxUint32 {
			return r, fmt.Errorf("%w: %s: %d bytes, newc filesize is 32 bits", ErrTooLarge, e.Path, len(e.Data))
		}
		r = ucpio.StaticRecord(e.Data, ucpio.Info{Name: e.Path, Mode: sIFREG | perm})
	case fstree.Dir:
		r = ucpio.Directory(e.Path, perm)
	case fstree.Symlink:
		if len(e.Target)+1 > pathMax {
			return r, fmt.Errorf("%w: %s: link target is %d bytes, the kernel allows %d", ErrTooLarge, e.Path, len(e.Target), pathMax-1)
		}
		r = ucpio.Symlink(e.Path, e.Target)
		r.Mode = sIFLNK | perm
	case fstree.CharDev:
		r = ucpio.CharDev(e.Path, perm, uint64(e.Major), uint64(e.Minor))
	case fstree.BlockDev:
		// u-root has no block-device helper; this is CharDev's record with
		// the other type bits.
		r = ucpio.CharDev(e.Path, perm, uint64(e.Major), uint64(e.Minor))
		r.Mode = sIFBLK | perm
	default:
		return r, fmt.Errorf("%w: %s: kind %s", ErrUnsupported, e.Path, e.Kind)
	}
	return r, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
