package squashfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/cocoon-appliance/cocoon/image/fstree"
	diskfile "github.com/diskfs/go-diskfs/backend/file"
	diskfs "github.com/diskfs/go-diskfs/filesystem/squashfs"
)

// readWithGoDiskfs lists an image with go-diskfs's reader, a second,
// independent implementation: squashfs.Read on a file backend, ReadDir
// walked recursively. Its modes hold only the 0777 bits.
func readWithGoDiskfs(img string) ([]fstree.Entry, error) {
	fi, err := os.Stat(img)
	if err != nil {
		return nil, err
	}
	b, err := diskfile.OpenFromPath(img, true)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	sq, err := diskfs.Read(b, fi.Size(), 0, 0)
	if err != nil {
		return nil, err
	}
	var out []fstree.Entry
	var walk func(dir string) error
	walk = func(dir string) error {
		des, err := sq.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, de := range des {
			p := path.Join(dir, de.Name())
			info, err := de.Info()
			if err != nil {
				return err
			}
			e := fstree.Entry{Path: p, Perm: info.Mode().Perm()}
			switch m := info.Mode(); {
			case m.IsDir():
				e.Kind = fstree.Dir
				out = append(out, e)
				if err := walk(p); err != nil {
					return err
				}
				continue
			case m&fs.ModeSymlink != 0:
				e.Kind = fstree.Symlink
				e.Target = info.Sys().(*diskfs.StatT).LinkTarget
			case m&fs.ModeCharDevice != 0:
				e.Kind = fstree.CharDev
			case m&fs.ModeDevice != 0:
				e.Kind = fstree.BlockDev
			case m.IsRegular():
				e.Kind = fstree.File
				f, err := sq.OpenFile(p, os.O_RDONLY)
				if err != nil {
					return err
				}
				e.Data, err = io.ReadAll(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			default:
				return fmt.Errorf("%s: mode %v", p, m)
			}
			out = append(out, e)
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, err
	}
	fstree.SortEntries(out)
	return out, nil
}
