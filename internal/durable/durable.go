// Package durable writes files so that a crash (SIGKILL, power loss)
// leaves either the old content or the new one, never a torn file or a
// rename that is not on disk yet: data is fsynced before the rename, the
// directory after it (rename(2) is atomic within a filesystem; the
// directory's fsync makes the new entry durable, see fsync(2)).
package durable

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with data atomically and durably, through
// path+".tmp" next to it (same filesystem). The temporary name is fixed, not
// random, so a leftover from a crash is truncated and reused by the next
// write instead of piling up; a file has one writer at a time.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil { // an old leftover keeps its mode
		f.Close()
		return err
	}
	if err := writeSync(f, data); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// CreateNew writes a new file that must not exist yet (O_EXCL: never
// overwrites, e.g. a key), durably.
func CreateNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if err := writeSync(f, data); err != nil {
		os.Remove(path)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// writeSync writes, fsyncs and closes f.
func writeSync(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
