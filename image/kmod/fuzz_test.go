package kmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The seed corpus in testdata/fuzz/FuzzParseModinfo is written by
// TestWriteFuzzSeeds (COCOON_UPDATE_SEEDS=1) from the gen.sh objects.

func FuzzParseModinfo(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		// A 16 MiB cap keeps decompression bombs cheap for the fuzzer.
		info, err := parseModinfo(data, 16<<20)
		if err != nil {
			if !errors.Is(err, ErrNotModule) && !errors.Is(err, ErrNoModinfo) {
				t.Fatalf("error %v wraps neither ErrNotModule nor ErrNoModinfo", err)
			}
			return
		}
		for _, d := range append(info.Depends, info.SoftdepPre...) {
			if d == "" {
				t.Fatalf("empty dependency name in %+v", info)
			}
		}
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("COCOON_UPDATE_SEEDS") == "" {
		t.Skip("set COCOON_UPDATE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseModinfo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{
		"ko":        readTestdata(t, "dm_demo.ko"),
		"ko-xz":     readTestdata(t, "dm_demo.ko.xz"),
		"ko-zst":    readTestdata(t, "dm_demo.ko.zst"),
		"nomodinfo": readTestdata(t, "nomodinfo.o"),
	}
	for name, data := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
