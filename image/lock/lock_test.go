package lock

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const (
	kernelLine = "deb linux-image-6.12.107+deb13-amd64 role=kernel version=6.12.107-1 arch=amd64 size=107898972 sha256=7794643cf4560de2a7e3b069e8ca8511ad2a568d652ea285f0fe051f79bc9e99"
	ovmfLine   = "deb ovmf role=firmware version=2025.02-8+deb13u1 arch=all size=5779964 sha256=78e0d54df11fc77406cb7a0bc9a39e5bca6d1cbe06556b91d9a73491c52decdf"
	good       = "# c\nsuite trixie\nsource-date-epoch 1767225600\n\n" + kernelLine + "\n" + ovmfLine + "\n"
)

func TestParseGood(t *testing.T) {
	f, err := Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if f.Suite != "trixie" || len(f.Packages) != 2 {
		t.Fatalf("got %+v", f)
	}
	k, err := f.ByRole(RoleKernel)
	if err != nil || k.Version != "6.12.107-1" || k.Size != 107898972 || k.Arch != "amd64" {
		t.Fatalf("kernel = %+v, %v", k, err)
	}
	if got, want := k.FileName(), "linux-image-6.12.107+deb13-amd64_6.12.107-1_amd64.deb"; got != want {
		t.Errorf("FileName = %s, want %s", got, want)
	}
	if got := (Package{Name: "a", Version: "1:2.0-1", Arch: "all"}).FileName(); got != "a_1%3a2.0-1_all.deb" {
		t.Errorf("epoch FileName = %s", got)
	}
}

func TestParseRepoLock(t *testing.T) {
	if _, err := Load("../inputs.lock"); err != nil {
		t.Fatal(err)
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       error
	}{
		{"no suite", "source-date-epoch 1\n" + kernelLine + "\n" + ovmfLine, ErrInvalid},
		{"no epoch", "suite a\n" + kernelLine + "\n" + ovmfLine, ErrInvalid},
		{"bad epoch", "suite a\nsource-date-epoch -5\n" + kernelLine + "\n" + ovmfLine, ErrSyntax},
		{"two suites", "source-date-epoch 1\nsuite a\nsuite b\n" + kernelLine + "\n" + ovmfLine, ErrSyntax},
		{"no packages", "suite trixie\nsource-date-epoch 1\n", ErrInvalid},
		{"unknown directive", "suite trixie\nrpm foo\n", ErrSyntax},
		{"unknown role", "suite trixie\nsource-date-epoch 1\n" + strings.Replace(kernelLine, "role=kernel", "role=bootloader", 1) + "\n" + ovmfLine, ErrInvalid},
		{"missing role", "suite trixie\nsource-date-epoch 1\n" + kernelLine, ErrInvalid},
		{"duplicate package", "suite trixie\nsource-date-epoch 1\n" + kernelLine + "\n" + kernelLine + "\n" + ovmfLine, ErrInvalid},
		{"duplicate role", "suite trixie\nsource-date-epoch 1\n" + kernelLine + "\n" + strings.Replace(ovmfLine, "role=firmware", "role=kernel", 1), ErrInvalid},
		{"short sha", "suite trixie\nsource-date-epoch 1\n" + strings.Replace(kernelLine, "sha256=7794", "sha256=", 1) + "\n" + ovmfLine, ErrSyntax},
		{"upper sha", "suite trixie\nsource-date-epoch 1\n" + strings.Replace(kernelLine, "sha256=7794643cf", "sha256=7794643CF", 1) + "\n" + ovmfLine, ErrSyntax},
		{"bad size", "suite trixie\nsource-date-epoch 1\n" + strings.Replace(kernelLine, "size=107898972", "size=-1", 1) + "\n" + ovmfLine, ErrSyntax},
		{"missing size", "suite trixie\nsource-date-epoch 1\n" + strings.Replace(kernelLine, " size=107898972", "", 1) + "\n" + ovmfLine, ErrSyntax},
		{"unknown key", "suite trixie\nsource-date-epoch 1\n" + kernelLine + " mirror=x\n" + ovmfLine, ErrSyntax},
		{"repeated key", "suite trixie\nsource-date-epoch 1\n" + kernelLine + " arch=all\n" + ovmfLine, ErrSyntax},
		{"bad name", "suite trixie\nsource-date-epoch 1\n" + strings.Replace(kernelLine, "linux-image", "Linux_Image", 1) + "\n" + ovmfLine, ErrSyntax},
		{"bad version", "suite trixie\nsource-date-epoch 1\n" + strings.Replace(kernelLine, "version=6.12.107-1", "version=x;rm", 1) + "\n" + ovmfLine, ErrSyntax},
		{"no value", "suite trixie\nsource-date-epoch 1\n" + kernelLine + " x\n" + ovmfLine, ErrSyntax},
		{"long line", "suite trixie\n# " + strings.Repeat("x", 5000) + "\n" + kernelLine + "\n" + ovmfLine, ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.text))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzParse: any text Parse accepts must describe a complete, consistent
// lock, and formatting it back must parse to the same thing.
func FuzzParse(f *testing.F) {
	f.Add(good)
	f.Add("suite trixie\nsource-date-epoch 1\n" + kernelLine)
	f.Add("suite x\nsource-date-epoch 9\ndeb a role=kernel version=1 arch=all size=1 sha256=" + strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, s string) {
		lf, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "suite %s\nsource-date-epoch %d\n", lf.Suite, lf.SourceDateEpoch)
		for _, p := range lf.Packages {
			if p.Name == "" || p.Version == "" || p.Arch == "" || p.Size <= 0 || len(p.SHA256) != 64 || !knownRoles[p.Role] {
				t.Fatalf("accepted incomplete package %+v", p)
			}
			b.WriteString(Format(p) + "\n")
		}
		again, err := Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.String(), err)
		}
		if len(again.Packages) != len(lf.Packages) {
			t.Fatal("round trip lost packages")
		}
		for i := range again.Packages {
			if again.Packages[i] != lf.Packages[i] {
				t.Fatalf("round trip: %+v != %+v", again.Packages[i], lf.Packages[i])
			}
		}
	})
}
