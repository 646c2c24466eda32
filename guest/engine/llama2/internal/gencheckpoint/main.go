// Command gencheckpoint writes the llama2 engine's test model: a tiny
// llama2.c checkpoint with RANDOM weights from a fixed seed, and a matching
// tokenizer.bin (see package testmodel). The output is the same on every
// run; guest/engine/llama2's tests regenerate it and compare the bytes.
//
//	go run ./guest/engine/llama2/internal/gencheckpoint -out guest/engine/llama2/testdata
package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cocoon-appliance/cocoon/guest/engine/llama2/internal/testmodel"
)

func main() {
	out := flag.String("out", "guest/engine/llama2/testdata", "directory to write model.bin and tokenizer.bin to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gencheckpoint:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	model, err := testmodel.Checkpoint(testmodel.Default, testmodel.Seed)
	if err != nil {
		return err
	}
	tok, err := testmodel.Tokenizer(testmodel.Default.VocabSize)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"model.bin", model}, {"tokenizer.bin", tok}} {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, 0o644); err != nil {
			return err
		}
		fmt.Printf("%x  %s (%d bytes)\n", sha256.Sum256(f.data), f.name, len(f.data))
	}
	return nil
}
