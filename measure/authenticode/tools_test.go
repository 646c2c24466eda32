package authenticode

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
)

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

var ossslDigest = regexp.MustCompile(`(?m)^(Current|Calculated) message digest\s*:\s*([0-9A-Fa-f]+)`)

// osslsigncodeDigests runs `osslsigncode verify` and returns the digest the
// signature records ("Current") and the one osslsigncode computes
// ("Calculated"). verify exits non-zero when the chain is not trusted, which
// does not matter here.
func osslsigncodeDigests(t *testing.T, path string) (current, calculated []byte) {
	t.Helper()
	out, _ := exec.Command(lookTool(t, "osslsigncode"), "verify", "-in", path).CombinedOutput()
	for _, m := range ossslDigest.FindAllStringSubmatch(string(out), -1) {
		b, err := hex.DecodeString(m[2])
		if err != nil {
			t.Fatal(err)
		}
		if m[1] == "Current" && current == nil {
			current = b
		} else if m[1] == "Calculated" && calculated == nil {
			calculated = b
		}
	}
	if current == nil || calculated == nil {
		t.Fatalf("osslsigncode verify printed no digests:\n%s", out)
	}
	return current, calculated
}

// TestRealKernel is the known-answer test: Debian signs its vmlinuz, so the
// digest in its signature is what firmware computes for the unmodified file.
func TestRealKernel(t *testing.T) {
	k, rel := testinputs.Kernel(t)
	h, embedded, err := Embedded(k)
	if err != nil {
		t.Fatal(err)
	}
	if h != crypto.SHA256 {
		t.Fatalf("vmlinuz-%s signed with %v, want SHA-256", rel, h)
	}
	got, err := Digest(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, embedded) {
		t.Fatalf("vmlinuz-%s: Digest SHA-256 = %x, embedded = %x", rel, got, embedded)
	}
	sha384, err := Digest(k, crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vmlinuz-%s: %d bytes, Authenticode SHA-256 %x (= embedded), SHA-384 %x", rel, len(k), got, sha384)
}

// signingKey makes a throwaway self-signed RSA key and certificate for
// osslsigncode in a temporary directory.
func signingKey(t *testing.T) (dir, key, crt string) {
	t.Helper()
	openssl := lookTool(t, "openssl")
	dir = t.TempDir()
	key, crt = filepath.Join(dir, "key.pem"), filepath.Join(dir, "crt.pem")
	if out, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-keyout", key, "-out", crt, "-subj", "/CN=cocoon authenticode test", "-days", "1").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	return dir, key, crt
}

func writeKernel(t *testing.T) (string, []byte) {
	t.Helper()
	k, rel := testinputs.Kernel(t)
	p := filepath.Join(t.TempDir(), "vmlinuz-"+rel)
	if err := os.WriteFile(p, k, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, k
}

func TestRealKernelOsslsigncode(t *testing.T) {
	p, k := writeKernel(t)
	current, calculated := osslsigncodeDigests(t, p)
	got, err := Digest(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(current, got) || !bytes.Equal(calculated, got) {
		t.Fatalf("osslsigncode current %x calculated %x, Digest %x", current, calculated, got)
	}
	t.Logf("osslsigncode: current = calculated = Digest = %X", got)
}

func TestRealKernelPesign(t *testing.T) {
	p, k := writeKernel(t)
	out, err := exec.Command(lookTool(t, "pesign"), "-h", "-i", p).CombinedOutput()
	if err != nil {
		t.Fatalf("pesign -h: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "hash:" {
		t.Fatalf("pesign -h printed %q, want \"hash: HEX\"", out)
	}
	got, err := Digest(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if f[1] != hex.EncodeToString(got) {
		t.Fatalf("pesign hash %s, Digest %x", f[1], got)
	}
}

func TestRealKernelSbverify(t *testing.T) {
	p, _ := writeKernel(t)
	out, err := exec.Command(lookTool(t, "sbverify"), "--list", p).CombinedOutput()
	if err != nil {
		t.Fatalf("sbverify --list: %v\n%s", err, out)
	}
	// sbverify lists signatures but prints no digest; it is a parse check of
	// the same certificate table Embedded reads.
	if !strings.Contains(string(out), "signature 1") {
		t.Fatalf("sbverify --list found no signature:\n%s", out)
	}
}

// TestSignedSynthetic signs PE32 and PE32+ images with a throwaway key,
// using SHA-256 and SHA-384, and checks that the digest osslsigncode records
// and recomputes equals Digest, and that Embedded reads it back.
func TestSignedSynthetic(t *testing.T) {
	osslsigncode := lookTool(t, "osslsigncode")
	dir, key, crt := signingKey(t)
	for _, pe32 := range []bool{false, true} {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
			name := map[bool]string{false: "pe32+", true: "pe32"}[pe32] + "-" + strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
			t.Run(name, func(t *testing.T) {
				// Trailing data of odd length: the signer pads it to 8 bytes,
				// and the padding is hashed as trailing data of the signed file.
				img := synth{pe32: pe32, numDirs: 16, sections: [][]byte{fill(0x400, 1), fill(0x200, 2)}, trailing: fill(13, 3)}.build()
				in, out := filepath.Join(dir, name+".efi"), filepath.Join(dir, name+".signed.efi")
				if err := os.WriteFile(in, img, 0o644); err != nil {
					t.Fatal(err)
				}
				alg := strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
				if b, err := exec.Command(osslsigncode, "sign", "-certs", crt, "-key", key, "-h", alg,
					"-in", in, "-out", out).CombinedOutput(); err != nil {
					t.Fatalf("osslsigncode sign: %v\n%s", err, b)
				}
				signed, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Digest(signed, h)
				if err != nil {
					t.Fatal(err)
				}
				eh, embedded, err := Embedded(signed)
				if err != nil {
					t.Fatal(err)
				}
				current, calculated := osslsigncodeDigests(t, out)
				if eh != h || !bytes.Equal(embedded, got) || !bytes.Equal(current, got) || !bytes.Equal(calculated, got) {
					t.Fatalf("Digest %x; Embedded %v %x; osslsigncode current %x calculated %x", got, eh, embedded, current, calculated)
				}
			})
		}
	}
}

// TestRealKernelSHA384 cross-checks the SHA-384 digest (the one TDX extends)
// of the real kernel: osslsigncode strips Debian's signature, re-signs with
// SHA-384 and a throwaway key, and reports the digest it signed. Removing and
// adding a signature changes only the excluded ranges (checksum, certificate
// entry, certificate table), so the digest is the original file's.
func TestRealKernelSHA384(t *testing.T) {
	osslsigncode := lookTool(t, "osslsigncode")
	p, k := writeKernel(t)
	dir, key, crt := signingKey(t)
	unsigned, resigned := filepath.Join(dir, "unsigned"), filepath.Join(dir, "resigned")
	for _, args := range [][]string{
		{"remove-signature", "-in", p, "-out", unsigned},
		{"sign", "-certs", crt, "-key", key, "-h", "sha384", "-in", unsigned, "-out", resigned},
	} {
		if out, err := exec.Command(osslsigncode, args...).CombinedOutput(); err != nil {
			t.Fatalf("osslsigncode %s: %v\n%s", args[0], err, out)
		}
	}
	current, calculated := osslsigncodeDigests(t, resigned)
	got, err := Digest(k, crypto.SHA384)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(current, got) || !bytes.Equal(calculated, got) {
		t.Fatalf("osslsigncode SHA-384 current %x calculated %x, Digest(original) %x", current, calculated, got)
	}
}
