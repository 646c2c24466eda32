//go:build unix

package llama2

import (
	"fmt"
	"os"
	"syscall"
)

// OpenCheckpoint maps the checkpoint at path read-only and parses it in
// place, so a model of hundreds of MiB costs no copy and its pages are
// shared with the page cache. Close unmaps it.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < headerSize {
		// Also keeps mmap away from an empty file, which it refuses.
		return nil, fmt.Errorf("%w: %s is %d bytes, shorter than the %d-byte header", ErrCheckpoint, path, size, headerSize)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than this machine can map", ErrCheckpoint, path, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	ck, err := ParseCheckpoint(data)
	if err != nil {
		_ = syscall.Munmap(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ck.release = func() error { return syscall.Munmap(data) }
	return ck, nil
}
