package verity

import (
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/google/uuid"
)

var testUUID = uuid.MustParse("3f0c2a7e-5b1d-4c8e-9a6f-0d2e4b6c8a10")

// pseudoRandom returns n deterministic pseudo-random bytes.
func pseudoRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// formatFile runs FormatFile and fails the test on error.
func formatFile(t testing.TB, data, hash string, p Params) Result {
	t.Helper()
	res, err := FormatFile(data, hash, p)
	if err != nil {
		t.Fatalf("Format: %v", err)
	}
	return res
}

// verifyFile runs VerifyFile.
func verifyFile(t testing.TB, data, hash string, root []byte) error {
	t.Helper()
	return VerifyFile(data, hash, root)
}

func needVeritysetup(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("veritysetup")
	if err != nil {
		t.Skip("veritysetup not installed (Debian: cryptsetup-bin)")
	}
	return p
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)\s*$`)

// veritysetupFormat runs `veritysetup format` and returns the root hash it prints.
func veritysetupFormat(t testing.TB, data, hash string, p Params) []byte {
	t.Helper()
	salt := "-" // veritysetup's spelling of "no salt"
	if len(p.Salt) > 0 {
		salt = hex.EncodeToString(p.Salt)
	}
	args := []string{"format", "--hash=sha256", "--format=1", "--salt=" + salt, "--uuid=" + uuid.UUID(p.UUID).String()}
	if p.DataBlockSize != 0 {
		args = append(args, "--data-block-size="+itoa(p.DataBlockSize))
	}
	if p.HashBlockSize != 0 {
		args = append(args, "--hash-block-size="+itoa(p.HashBlockSize))
	}
	args = append(args, data, hash)
	out, err := exec.Command(needVeritysetup(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup %v: %v\n%s", args, err, out)
	}
	m := rootHashLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Root hash:\" line in veritysetup output:\n%s", out)
	}
	root, err := hex.DecodeString(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// veritysetupVerify reports whether `veritysetup verify` accepts the files.
func veritysetupVerify(t testing.TB, data, hash string, root []byte) (bool, string) {
	t.Helper()
	out, err := exec.Command(needVeritysetup(t), "verify", data, hash, hex.EncodeToString(root)).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running veritysetup verify: %v", err)
		}
		return false, string(out)
	}
	return true, string(out)
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
