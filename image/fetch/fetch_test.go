package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/lock"
)

// fakeDownloader writes content[name] for each requested package.
type fakeDownloader struct {
	content map[string][]byte
	calls   int
	err     error
}

func (f *fakeDownloader) Download(_ context.Context, _ string, pkgs []lock.Package, dir string) error {
	f.calls++
	if f.err != nil {
		return f.err
	}
	for _, p := range pkgs {
		b, ok := f.content[p.Name]
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, p.FileName()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func pin(name, role string, content []byte) lock.Package {
	s := sha256.Sum256(content)
	return lock.Package{Name: name, Role: role, Version: "1.0-1", Arch: "all", Size: int64(len(content)), SHA256: hex.EncodeToString(s[:])}
}

func TestFetch(t *testing.T) {
	kernel, fw := []byte("kernel deb bytes"), []byte("firmware deb bytes")
	lf := &lock.File{Suite: "trixie", Packages: []lock.Package{pin("k", lock.RoleKernel, kernel), pin("f", lock.RoleFirmware, fw)}}
	bad := append([]byte(nil), fw...)
	bad[0] ^= 1
	for _, tc := range []struct {
		name    string
		content map[string][]byte
		dlErr   error
		want    error
		wantIn  string // substring of the error
	}{
		{"ok", map[string][]byte{"k": kernel, "f": fw}, nil, nil, ""},
		{"checksum", map[string][]byte{"k": kernel, "f": bad}, nil, ErrChecksum, "want " + lf.Packages[1].SHA256},
		{"truncated", map[string][]byte{"k": kernel[:5], "f": fw}, nil, ErrSize, "is 5 bytes, want 16"},
		{"not downloaded", map[string][]byte{"k": kernel}, nil, ErrMissing, "f=1.0-1"},
		{"downloader fails", nil, ErrNotInArchive, ErrDownload, "not in archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			_, err := Fetch(context.Background(), lf, Options{Cache: cache, Downloader: &fakeDownloader{content: tc.content, err: tc.dlErr}})
			if !errors.Is(err, tc.want) || (tc.want != nil && !strings.Contains(err.Error(), tc.wantIn)) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.wantIn)
			}
			// Nothing unverified may be left in the cache, nor temp dirs.
			ents, _ := os.ReadDir(filepath.Join(cache, DebDir))
			for _, e := range ents {
				var p lock.Package
				for _, q := range lf.Packages {
					if q.FileName() == e.Name() {
						p = q
					}
				}
				if err := Verify(filepath.Join(cache, DebDir, e.Name()), p); err != nil {
					t.Errorf("cache holds unverified %s: %v", e.Name(), err)
				}
			}
			if tmp, _ := filepath.Glob(filepath.Join(cache, ".download-*")); len(tmp) != 0 {
				t.Errorf("temp dirs left: %v", tmp)
			}
		})
	}
}

func TestFetchUsesCacheAndReplacesBadFile(t *testing.T) {
	kernel, fw := []byte("kernel"), []byte("firmware")
	lf := &lock.File{Suite: "trixie", Packages: []lock.Package{pin("k", lock.RoleKernel, kernel), pin("f", lock.RoleFirmware, fw)}}
	cache := t.TempDir()
	dl := &fakeDownloader{content: map[string][]byte{"k": kernel, "f": fw}}
	if _, err := Fetch(context.Background(), lf, Options{Cache: cache, Downloader: dl}); err != nil {
		t.Fatal(err)
	}
	res, err := Fetch(context.Background(), lf, Options{Cache: cache, Downloader: dl})
	if err != nil || dl.calls != 1 || len(res.Cached) != 2 {
		t.Fatalf("second fetch: calls=%d res=%+v err=%v", dl.calls, res, err)
	}
	// Corrupt one cached file: the next fetch downloads only that one.
	if err := os.WriteFile(Path(cache, lf.Packages[0]), []byte("kernex"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := VerifyAll(cache, lf); !errors.Is(err, ErrChecksum) {
		t.Fatalf("VerifyAll = %v, want ErrChecksum", err)
	}
	res, err = Fetch(context.Background(), lf, Options{Cache: cache, Downloader: dl})
	if err != nil || len(res.Downloaded) != 1 || res.Downloaded[0].Name != "k" {
		t.Fatalf("repair fetch: res=%+v err=%v", res, err)
	}
	if err := VerifyAll(cache, lf); err != nil {
		t.Fatal(err)
	}
}

func TestFindMirror(t *testing.T) {
	root := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sources.list.d/00-other.list", "deb https://example.org/apt stable main\n")
	write("sources.list.d/debian.sources", `Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`)
	src, err := FindMirror(root)
	if err != nil {
		t.Fatal(err)
	}
	if src.URI != "http://mirror.example/debian" || src.SignedBy != "/usr/share/keyrings/debian-archive-keyring.gpg" {
		t.Fatalf("got %+v", src)
	}
	empty := t.TempDir()
	if _, err := FindMirror(empty); !errors.Is(err, ErrNoMirror) {
		t.Fatalf("empty tree: %v", err)
	}
	srcs := ParseOneLine([]byte("deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main # c\n#deb x y\n"))
	if len(srcs) != 1 || srcs[0].SignedBy != "/k.gpg" || srcs[0].URI != "http://m.example/debian" || srcs[0].Suites[0] != "bookworm" {
		t.Fatalf("one-line: %+v", srcs)
	}
}

func TestAptArgsAndNotFound(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/apt"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb http://m.example/debian bookworm main\n"), 0o644)
	var calls [][]string
	a := &Apt{AptRoot: root, StateDir: t.TempDir(), Run: func(_ context.Context, _ string, name string, args ...string) ([]byte, error) {
		calls = append(calls, append([]string{name}, args...))
		if args[len(args)-1] == "update" {
			return nil, nil
		}
		return []byte("Reading package lists...\nE: Version '9.9' for 'ovmf' was not found\n"), errors.New("exit status 100")
	}}
	err := a.Download(context.Background(), "trixie", []lock.Package{{Name: "ovmf", Version: "9.9"}}, t.TempDir())
	if !errors.Is(err, ErrNotInArchive) || !strings.Contains(err.Error(), "Version '9.9' for 'ovmf'") {
		t.Fatalf("err = %v", err)
	}
	if len(calls) != 2 || calls[1][len(calls[1])-1] != "ovmf=9.9" {
		t.Fatalf("calls = %v", calls)
	}
	list, _ := os.ReadFile(filepath.Join(a.StateDir, "sources.list"))
	if !bytes.Contains(list, []byte(" http://m.example/debian trixie main")) {
		t.Fatalf("sources.list = %q", list)
	}
}

// TestAptReal downloads the (small) firmware package from the archive this
// machine is configured for. It needs the network, so it runs only when
// COCOON_APT_TEST=1 (make test sets it).
func TestAptReal(t *testing.T) {
	if os.Getenv("COCOON_APT_TEST") != "1" {
		t.Skip("set COCOON_APT_TEST=1 to download from the Debian archive")
	}
	lf, err := lock.Load("../inputs.lock")
	if err != nil {
		t.Fatal(err)
	}
	fw, _ := lf.ByRole(lock.RoleFirmware)
	one := &lock.File{Suite: lf.Suite, Packages: []lock.Package{fw}}
	cache := t.TempDir()
	res, err := Fetch(context.Background(), one, Options{Cache: cache, Downloader: &Apt{StateDir: filepath.Join(cache, "apt")}})
	if err != nil || len(res.Downloaded) != 1 {
		t.Fatalf("fetch: %+v %v", res, err)
	}
	// A version the archive does not have is named in the error.
	gone := fw
	gone.Version = "0.0-0"
	_, err = Fetch(context.Background(), &lock.File{Suite: lf.Suite, Packages: []lock.Package{gone}}, Options{Cache: t.TempDir(), Downloader: &Apt{}})
	if !errors.Is(err, ErrNotInArchive) {
		t.Fatalf("missing version: %v", err)
	}
	// So is a package the archive never had.
	unknown := fw
	unknown.Name = "cocoon-no-such-package"
	_, err = Fetch(context.Background(), &lock.File{Suite: lf.Suite, Packages: []lock.Package{unknown}}, Options{Cache: t.TempDir(), Downloader: &Apt{}})
	if !errors.Is(err, ErrNotInArchive) || !strings.Contains(err.Error(), "cocoon-no-such-package") {
		t.Fatalf("unknown package: %v", err)
	}
}

func FuzzParseSources(f *testing.F) {
	f.Add([]byte("Types: deb\nURIs: http://a/debian\nSuites: x y\n\nTypes: deb\n URIs: q\n"))
	f.Add([]byte("deb [signed-by=/a arch=amd64] http://a/debian bookworm main\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range append(ParseDeb822(b), ParseOneLine(b)...) {
			if s.URI == "" {
				t.Fatalf("source without URI from %q", b)
			}
		}
	})
}
