package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/image/lock"
)

// samplePolicy accepts go-tdx-guest's sample production quote by its image
// hash (see measure/policy/doc.go).
const samplePolicy = `{"schema":"cocoon-policy/v1","image_hashes":["69aaad308a05d8033b2f6b776a83f85376860325d1bd2280d820b942b2734a51"]}`

const sampleQuote = "../../../measure/quote/testdata/tdx_prod_quote_SPR_E4.dat"

func TestMeasureQuote(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(samplePolicy), 0o644)
	code, out, stderr := execute("measure", "quote", "--policy", good, "--now", "2025-06-01T00:00:00Z", sampleQuote)
	if code != 0 || !strings.Contains(out, "verify    ok") || !strings.Contains(out, "validate  ok") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	other := filepath.Join(dir, "other.json")
	os.WriteFile(other, []byte(strings.Replace(samplePolicy, "69aaad", "00aaad", 1)), 0o644)
	code, out, stderr = execute("measure", "quote", "--policy", other, "--now", "2025-06-01T00:00:00Z", sampleQuote)
	if code != 1 || !strings.Contains(out, "validate  FAILED") || !strings.Contains(stderr, "does not satisfy") {
		t.Fatalf("other image: exit %d\n%s\n%s", code, out, stderr)
	}
	// One flipped byte inside the quote's MRTD: not genuine.
	q, _ := os.ReadFile(sampleQuote)
	q[48+136] ^= 1
	bad := filepath.Join(dir, "bad.dat")
	os.WriteFile(bad, q, 0o644)
	code, out, _ = execute("measure", "quote", "--policy", good, "--now", "2025-06-01T00:00:00Z", bad)
	if code != 1 || !strings.Contains(out, "verify    FAILED") {
		t.Fatalf("tampered quote: exit %d\n%s", code, out)
	}
	if code, _, stderr := execute("measure", "quote", sampleQuote); code != 2 || !strings.Contains(stderr, "want --policy") {
		t.Fatalf("no policy: exit %d %s", code, stderr)
	}
}

// realBootFiles writes the pinned firmware and kernel from the verified
// cache into dir, or skips.
func realBootFiles(t *testing.T, dir string) (fw, kernel string) {
	c := os.Getenv("COCOON_CACHE")
	if c == "" {
		d, _ := os.UserCacheDir()
		c = filepath.Join(d, "cocoon")
	}
	lf, err := lock.Load("../../../image/inputs.lock")
	if err != nil {
		t.Fatal(err)
	}
	get := func(role string) *build.Unpacked {
		p, _ := lf.ByRole(role)
		u, err := build.Unpack(c, p)
		if err != nil {
			if os.Getenv("COCOON_REQUIRE_INPUTS") == "1" {
				t.Fatal(err)
			}
			t.Skipf("pinned inputs not cached: %v", err)
		}
		return u
	}
	fwb, err := get(lock.RoleFirmware).ReadFile(build.FirmwarePath)
	if err != nil {
		t.Fatal(err)
	}
	ku := get(lock.RoleKernel)
	_, kpath, err := build.KernelImage(ku)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := ku.ReadFile(kpath)
	if err != nil {
		t.Fatal(err)
	}
	fw, kernel = filepath.Join(dir, "OVMF.fd"), filepath.Join(dir, "vmlinuz")
	os.WriteFile(fw, fwb, 0o644)
	os.WriteFile(kernel, kb, 0o644)
	return fw, kernel
}

func TestMeasureTDXJSON(t *testing.T) {
	dir := t.TempDir()
	fw, k := realBootFiles(t, dir)
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(initrd, []byte("not really a cpio"), 0o644)
	code, out, stderr := execute("measure", "tdx", "--firmware", fw, "--kernel", k, "--initrd", initrd, "--cmdline", "console=ttyS0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("keys %v", got)
	}
	for _, k := range []string{"mrtd", "rtmr1", "rtmr2", "rtmr3"} {
		if s, _ := got[k].(string); len(s) != 96 || strings.ToLower(s) != s {
			t.Errorf("%s = %v, want 96 lowercase hex digits", k, got[k])
		}
	}
	if got["rtmr0"] != nil || got["image_hash"] != nil {
		t.Errorf("rtmr0/image_hash without a platform capture: %v %v", got["rtmr0"], got["image_hash"])
	}
	// Missing inputs are a usage error naming them.
	if code, _, stderr := execute("measure", "tdx", "--kernel", k); code != 2 || !strings.Contains(stderr, "--firmware") {
		t.Fatalf("missing inputs: %d %s", code, stderr)
	}
	if code, _, stderr := execute("measure", "tdx", "--image", dir, "--kernel", k); code != 2 || !strings.Contains(stderr, "do not combine") {
		t.Fatalf("--image with --kernel: %d %s", code, stderr)
	}
	if code, _, stderr := execute("measure", "tdx", "--firmware", fw, "--kernel", k, "--initrd", initrd, "--cmdline", "x", "--profile", "qemu-0.1"); code != 2 || !strings.Contains(stderr, "unknown VM profile") {
		t.Fatalf("bad profile: %d %s", code, stderr)
	}
	code, out, _ = execute("measure", "tpm", "--kernel", k, "--initrd", initrd, "--cmdline", "console=ttyS0", "--json")
	if code != 0 || !strings.Contains(out, `"pcr4"`) || !strings.Contains(out, `"pcr9"`) {
		t.Fatalf("tpm: %d %s", code, out)
	}
}
