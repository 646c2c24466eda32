package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func execute(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	c := Context{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Args: args}
	code := c.Execute(context.Background())
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "cocoon needs a command"},
		{[]string{"frobnicate"}, 2, `unknown command "cocoon frobnicate"`},
		{[]string{"image"}, 2, "cocoon image needs a command"},
		{[]string{"image", "build"}, 2, "--out is required"},
		{[]string{"image", "build", "--out", "x", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"image", "build", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"image", "verify"}, 2, "--manifest is required"},
		{[]string{"image", "show"}, 2, "want one manifest path"},
		{[]string{"image", "show", "/nonexistent/manifest.json"}, 1, "no such file"},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"image", "build", "-h"}, 0, "Usage: cocoon image build"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := execute(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d containing %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := execute("version")
	if code != 0 || out != "cocoon "+Version+"\n" {
		t.Fatalf("%d %q", code, out)
	}
}

func TestBadSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	code, _, stderr := execute("image", "build", "--out", t.TempDir(), "--src", "../../..")
	if code != 2 || !strings.Contains(stderr, `SOURCE_DATE_EPOCH="yesterday"`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestShowSummary(t *testing.T) {
	// A manifest as the builder writes it (fixture from a real build, see
	// testdata/README.md).
	code, out, stderr := execute("image", "show", "testdata/manifest.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"Inputs", "linux-image-6.12.107+deb13-amd64", "root hash", "cocoon.verity=1,PARTUUID="} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = execute("image", "show", "--json", "testdata/manifest.json")
	want, _ := os.ReadFile("testdata/manifest.json")
	if code != 0 || out != string(want) {
		t.Fatalf("--json does not reproduce the canonical manifest")
	}
}

func TestFindSource(t *testing.T) {
	root, err := findSource(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "image", "inputs.lock")); err != nil {
		t.Fatalf("found %s: %v", root, err)
	}
	if _, err := findSource(t.TempDir()); err == nil {
		t.Fatal("found a checkout in an empty temp dir")
	}
}
