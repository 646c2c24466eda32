package build_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fetch"
	"github.com/cocoon-appliance/cocoon/image/lock"
)

// badCase prepares a cache and lock file for one kind of bad input.
type badCase struct {
	name string
	// prepare fills cache (empty) and returns the lock text to use.
	prepare func(t *testing.T, realCache, cache string, lf *lock.File) string
	want    string // in the single error line
}

func writeLock(lf *lock.File) string {
	var b strings.Builder
	b.WriteString("suite " + lf.Suite + "\n")
	b.WriteString("source-date-epoch 1767225600\n")
	for _, p := range lf.Packages {
		b.WriteString(lock.Format(p) + "\n")
	}
	return b.String()
}

func linkAll(t *testing.T, realCache, cache string, lf *lock.File) {
	os.MkdirAll(filepath.Join(cache, fetch.DebDir), 0o755)
	for _, p := range lf.Packages {
		linkOrCopy(t, fetch.Path(realCache, p), fetch.Path(cache, p))
	}
}

// TestBadInputs: each bad input gives one clear error line, exit status 1,
// and leaves nothing in --out (neither a new directory nor a change to an
// existing image).
func TestBadInputs(t *testing.T) {
	real := cache(t)
	cases := []badCase{
		{"missing cache file", func(t *testing.T, _, cache string, lf *lock.File) string {
			return writeLock(lf)
		}, "does not exist (run `cocoon image fetch`)"},
		{"wrong sha256", func(t *testing.T, realCache, cache string, lf *lock.File) string {
			linkAll(t, realCache, cache, lf)
			fw := &lf.Packages[1]
			fw.SHA256 = strings.Repeat("0", 64)
			return writeLock(lf)
		}, "sha256 mismatch: ovmf=2025.02-8+deb13u1"},
		{"truncated deb", func(t *testing.T, realCache, cache string, lf *lock.File) string {
			linkAll(t, realCache, cache, lf)
			fw := lf.Packages[1]
			os.Remove(fetch.Path(cache, fw))
			b, _ := os.ReadFile(fetch.Path(realCache, fw))
			os.WriteFile(fetch.Path(cache, fw), b[:len(b)/2], 0o644)
			return writeLock(lf)
		}, "(truncated or wrong file)"},
		{"truncated deb pinned as is", func(t *testing.T, realCache, cache string, lf *lock.File) string {
			// The lock pins the truncated bytes, so only the .deb reader
			// can notice.
			linkAll(t, realCache, cache, lf)
			fw := &lf.Packages[1]
			os.Remove(fetch.Path(cache, *fw))
			b, _ := os.ReadFile(fetch.Path(realCache, *fw))
			b = b[:len(b)*3/4]
			os.WriteFile(fetch.Path(cache, *fw), b, 0o644)
			*fw = pinBytes(*fw, b)
			return writeLock(lf)
		}, "truncated"},
		{"unknown package role", func(t *testing.T, realCache, cache string, lf *lock.File) string {
			linkAll(t, realCache, cache, lf)
			return strings.Replace(writeLock(lf), "role=firmware", "role=bootloader", 1)
		}, `unknown role "bootloader"`},
		{"unknown package", func(t *testing.T, realCache, cache string, lf *lock.File) string {
			linkAll(t, realCache, cache, lf)
			return writeLock(lf) + "deb no-such-package role=kernel version=1.0-1 arch=all size=1 sha256=" + strings.Repeat("0", 64) + "\n"
		}, "role=kernel given to both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			lf, err := lock.Load(filepath.Join(moduleRoot(t), "image", "inputs.lock"))
			if err != nil {
				t.Fatal(err)
			}
			c := filepath.Join(base, "cache")
			os.MkdirAll(c, 0o755)
			lockPath := filepath.Join(base, "inputs.lock")
			os.WriteFile(lockPath, []byte(tc.prepare(t, real, c, lf)), 0o644)
			out := filepath.Join(base, "out")
			r := run{dir: base, umask: "022", env: baseEnv(map[string]string{"COCOON_CACHE": c})}
			_, stderr, code := r.cocoon(t, "image", "build", "--quiet", "--src", moduleRoot(t), "--lock", lockPath, "--out", out)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if lines := strings.Count(strings.TrimRight(stderr, "\n"), "\n") + 1; lines != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("want one error line containing %q, got %d lines:\n%s", tc.want, lines, stderr)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("--out exists after a failed build: %v", err)
			}
			if left, _ := filepath.Glob(filepath.Join(base, ".out.tmp-*")); len(left) != 0 {
				t.Fatalf("temporary build directory left: %v", left)
			}
			t.Logf("error: %s", strings.TrimSpace(stderr))
		})
	}
}

// TestFailedBuildKeepsOldImage: a failing build leaves a previous image in
// --out untouched, and a non-image directory is never replaced.
func TestFailedBuildKeepsOldImage(t *testing.T) {
	ref := reference(t)
	base := t.TempDir()
	out := filepath.Join(base, "out")
	copySource(t, ref, out) // a previous image
	before := sha(t, filepath.Join(out, "manifest.json"))
	r := run{dir: base, umask: "022", env: baseEnv(map[string]string{"COCOON_CACHE": filepath.Join(base, "empty-cache")})}
	if _, stderr, code := r.cocoon(t, "image", "build", "--quiet", "--src", moduleRoot(t), "--out", out); code != 1 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if sha(t, filepath.Join(out, "manifest.json")) != before {
		t.Fatal("previous image changed by a failed build")
	}
	precious := filepath.Join(base, "precious")
	os.MkdirAll(precious, 0o755)
	os.WriteFile(filepath.Join(precious, "thesis.tex"), []byte("x"), 0o644)
	r.env = baseEnv(map[string]string{"COCOON_CACHE": cache(t)})
	_, stderr, code := r.cocoon(t, "image", "build", "--quiet", "--src", moduleRoot(t), "--out", precious)
	if code != 1 || !strings.Contains(stderr, "refusing to replace it") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(precious, "thesis.tex")); err != nil {
		t.Fatal("non-image directory was touched")
	}
}

// TestVerify: an image verifies against its own manifest; a rebuild from
// changed source is reported per component, naming the first differing
// file of the root filesystem.
func TestVerify(t *testing.T) {
	ref := reference(t)
	base := t.TempDir()
	r := run{dir: base, umask: "022", env: baseEnv(map[string]string{"COCOON_CACHE": cache(t)})}
	stdout, stderr, code := r.cocoon(t, "image", "verify", "--quiet", "--src", moduleRoot(t), "--manifest", filepath.Join(ref, "manifest.json"))
	if code != 0 || !strings.Contains(stdout, "rebuilt bit for bit") {
		t.Fatalf("verify of a fresh image: exit %d\n%s\n%s", code, stdout, stderr)
	}
	src := filepath.Join(base, "src")
	copySource(t, moduleRoot(t), src)
	static := filepath.Join(src, "image", "rootfs", "etc", "cocoon", "static.json")
	b, _ := os.ReadFile(static)
	os.WriteFile(static, append(b, ' '), 0o644)
	stdout, stderr, code = r.cocoon(t, "image", "verify", "--quiet", "--src", src, "--manifest", filepath.Join(ref, "manifest.json"))
	if code != 1 {
		t.Fatalf("verify of changed source: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"input     cocoon-source                      DIFFERS",
		"output    initrd                             ok",
		"output    rootfs.img                         DIFFERS",
		"first differing file: etc/cocoon/static.json",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, stdout)
		}
	}
	t.Logf("verify report:\n%s", stdout)
}
