//go:build !unix

package llama2

import (
	"fmt"
	"os"
)

// OpenCheckpoint reads the checkpoint at path in one read; without mmap the
// weights live on the heap.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ck, err := ParseCheckpoint(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ck, nil
}
