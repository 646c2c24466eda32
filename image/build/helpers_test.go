package build_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fetch"
	"github.com/cocoon-appliance/cocoon/image/lock"
)

// moduleRoot is the checkout this test runs in.
func moduleRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// cache returns the package cache holding verified inputs, or skips (fails
// under COCOON_REQUIRE_INPUTS=1, as make test sets) when they are missing.
func cache(t testing.TB) string {
	t.Helper()
	c := os.Getenv("COCOON_CACHE")
	if c == "" {
		d, _ := os.UserCacheDir()
		c = filepath.Join(d, "cocoon")
	}
	lf, err := lock.Load(filepath.Join(moduleRoot(t), "image", "inputs.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fetch.VerifyAll(c, lf); err != nil {
		if os.Getenv("COCOON_REQUIRE_INPUTS") == "1" {
			t.Fatalf("pinned inputs missing (COCOON_REQUIRE_INPUTS=1): %v", err)
		}
		t.Skipf("pinned inputs not in %s (run `make setup`): %v", c, err)
	}
	return c
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// cocoon returns a cocoon binary built from this checkout.
func cocoon(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "cocoon-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cocoon")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/cocoon")
		cmd.Dir = moduleRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("go build: %s", out)
			binErr = err
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if refDir != "" {
		os.RemoveAll(filepath.Dir(refDir))
	}
	os.Exit(code)
}

// run runs a command line through sh (for umask), returning stdout,
// stderr and the exit code.
type run struct {
	dir   string
	env   []string
	umask string
}

func (r run) cocoon(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	script := "umask " + r.umask + ` && exec "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", cocoon(t)}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = r.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// baseEnv is the test's environment with the given overrides.
func baseEnv(over map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := over[k]; ok || k == "SOURCE_DATE_EPOCH" {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range over {
		env = append(env, k+"="+v)
	}
	return env
}

// copySource copies the module's source files (not .git, outputs or caches)
// to dst, so a build can run from a checkout at another path.
func copySource(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			switch rel {
			case ".git", "out", "bin", ".cache":
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sha(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// linkOrCopy makes dst hold the bytes of src (a hard link when possible).
func linkOrCopy(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.Link(src, dst); err == nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pinBytes re-pins p to the given content.
func pinBytes(p lock.Package, b []byte) lock.Package {
	s := sha256.Sum256(b)
	p.Size, p.SHA256 = int64(len(b)), hex.EncodeToString(s[:])
	return p
}
