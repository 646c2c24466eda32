package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/image/cpio"
	"github.com/cocoon-appliance/cocoon/image/fstree"
	initconfig "github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// e2eImage builds the image through the CLI; it skips without QEMU, swtpm
// or the pinned inputs, and with -short.
func e2eImage(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM through OVMF (~30 s)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "swtpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	realBootFiles(t, t.TempDir()) // skips without the pinned inputs
	img := filepath.Join(t.TempDir(), "img")
	if code, _, stderr := execute("image", "build", "--quiet", "--src", "../../..", "--out", img); code != 0 {
		t.Fatalf("image build: %s", stderr)
	}
	return img
}

// qemuVersion is the installed QEMU's "major.minor", for the prediction.
func qemuVersion(t *testing.T) string {
	ver, err := exec.Command("qemu-system-x86_64", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(regexp.MustCompile(`version (\d+\.\d+)`).FindSubmatch(ver)[1])
}

// predictTPM runs `cocoon measure tpm` for img booted with 1024 MiB, with
// the runtime events of static when it is not nil.
func predictTPM(t *testing.T, img string, static *initconfig.Static) map[string]string {
	t.Helper()
	args := []string{"measure", "tpm", "--image", img, "--memory", "1024", "--qemu", qemuVersion(t), "--json"}
	if static != nil {
		b, err := static.StaticBytes()
		if err != nil {
			t.Fatal(err)
		}
		rl, _ := runtime.Log{{Kind: runtime.KindStaticConfig, Payload: b}, {Kind: runtime.KindBootComplete}}.Marshal()
		p := filepath.Join(t.TempDir(), "runtime.log")
		if err := os.WriteFile(p, rl, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--runtime", p)
	}
	code, out, stderr := execute(args...)
	if code != 0 {
		t.Fatalf("measure tpm: %s", stderr)
	}
	var want map[string]string
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// launched is what one `cocoon host launch` boot printed.
type launched struct {
	console []string
	regs    map[string]string // from the "cocoon-init: registers" line
	fatal   string            // the FATAL line, if any
	health  string            // GET /healthz through the host forward
}

func (l launched) has(s string) bool {
	for _, c := range l.console {
		if strings.Contains(c, s) {
			return true
		}
	}
	return false
}

// bootLaunch boots img through `cocoon host launch` (dev profile: TCG, OVMF, a
// fresh swtpm, user-mode network with DHCP and a forward to the worker's :8080) and
// reads the console until the worker listens (then asks it /healthz
// through the forward) or the init fails.
func bootLaunch(t *testing.T, img string, static initconfig.Static) launched {
	t.Helper()
	dir := t.TempDir()
	port := freeTCPPort(t)
	guest, _ := json.Marshal(map[string]any{"static": static, "runtime": map[string]any{
		"network":     map[string]any{"mode": "dhcp"}, // QEMU's user-mode network serves DHCP
		"worker_args": []string{"-listen", ":8080"}}})
	hostCfg := fmt.Sprintf(`{"schema":"cocoon-host/v1","profile":"dev","image":%q,"cpus":1,"memory_mib":1024,"restart":{"max":0},
		"forwards":[{"host":"127.0.0.1:%d","guest_port":8080}],"guest":%s}`, img, port, guest)
	cfgPath := filepath.Join(dir, "host.json")
	if err := os.WriteFile(cfgPath, []byte(hostCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	c := Context{Stdin: strings.NewReader(""), Stdout: pw, Stderr: &stderr, Args: []string{"host", "launch", "--state", filepath.Join(dir, "state"), cfgPath}}
	done := make(chan int, 1)
	go func() { done <- c.Execute(ctx); pw.Close() }()
	var l launched
	regsRE := regexp.MustCompile(`cocoon-init: registers (.*)`)
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		l.console = append(l.console, line)
		if m := regsRE.FindStringSubmatch(line); m != nil {
			l.regs = map[string]string{}
			for _, kv := range strings.Fields(m[1]) {
				k, v, _ := strings.Cut(kv, "=")
				l.regs[k] = v
			}
		}
		if strings.Contains(line, "cocoon-init: FATAL") {
			l.fatal = line
			break
		}
		if strings.Contains(line, "cocoon-init: worker exited") {
			l.fatal = line
			break
		}
		if strings.Contains(line, "worker: cocoon-worker: serving model") {
			l.health = get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
			break
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; l.fatal == "" && l.health == "" {
		t.Logf("host launch exited %d: %s", code, stderr.String())
	}
	return l
}

func get(url string) string {
	c := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := c.Get(url)
		if err != nil {
			time.Sleep(500 * time.Millisecond) // the forward may lag the listen line
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	return ""
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestE2ELaunchPCRs boots the built image through `cocoon host launch`
// with a static config that expects the predicted PCR 4 and PCR 9, checks
// the console for every stage, asks the worker through the host forward,
// and compares the PCRs the init reads from the vTPM after measuring the
// config with `cocoon measure tpm` for the same image and runtime events:
// the end-to-end proof that prediction and boot agree.
//
// Then it appends a file to the initrd (a second cpio archive, which the
// kernel unpacks as well, so the guest still boots its init) and boots that
// with the same config: PCR 9 differs from the expectation and the init
// stops.
func TestE2ELaunchPCRs(t *testing.T) {
	img := e2eImage(t)
	boot := predictTPM(t, img, nil)
	static := initconfig.Static{Model: "e2e", Policy: "production", Expect: map[string]string{"pcr4": boot["pcr4"], "pcr9": boot["pcr9"]}}
	l := bootLaunch(t, img, static)
	if l.fatal != "" || l.regs == nil {
		t.Fatalf("boot failed (%q); console tail:\n%s", l.fatal, strings.Join(tail(l.console, 40), "\n"))
	}
	for _, want := range []string{
		"modules loaded", // kernel modules
		"cocoon-init: root /dev/dm-0 verified against root hash", // verity root
		"] replay the firmware event log and compare it with the live RTMRs / PCRs ok",
		"cocoon-init: 2 boot registers equal the config's expectations",
		"cocoon-init: dhcp eth0: 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 from 10.0.2.2",
		"] extend RTMR3/PCR15 with static-config and boot-complete >> /run/cocoon/runtime.log ok",
		"cocoon-init: worker started (pid ",
		// The worker quotes with the vTPM (production policy: no simulator).
		"worker: cocoon-worker: serving model cocoon-test over RA-TLS on :8443 (attestation vtpm, key ",
		// The host channel (virtio-serial): the init's lines also reach
		// the launcher through it, which prints them as "guest: …".
		"cocoon-init: host channel over virtio-serial /dev/vport",
		"guest: cocoon-init: [",
	} {
		if !l.has(want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if !strings.HasPrefix(l.health, "ok cocoon-worker") {
		t.Errorf("GET /healthz through the host forward: %q", l.health)
	}
	want := predictTPM(t, img, &static)
	for _, k := range []string{"pcr4", "pcr9", "pcr15"} {
		if l.regs[k] == "" || l.regs[k] != want[k] {
			t.Errorf("%s: guest read %s, predicted %s", k, l.regs[k], want[k])
		}
	}
	t.Logf("guest PCRs equal the prediction: pcr4=%s pcr9=%s pcr15=%s; /healthz: %q", l.regs["pcr4"], l.regs["pcr9"], l.regs["pcr15"], strings.TrimSpace(l.health))

	// The tampered initrd, same config.
	tampered := filepath.Join(t.TempDir(), "img")
	if err := os.CopyFS(tampered, os.DirFS(img)); err != nil {
		t.Fatal(err)
	}
	var extra fstree.Tree
	if err := extra.AddFile("etc/tampered", 0o644, []byte("not the image the config was made for\n")); err != nil {
		t.Fatal(err)
	}
	var arc bytes.Buffer
	if err := cpio.Write(&arc, &extra, 0); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(tampered, "initrd"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(arc.Bytes())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The launcher checks the image against its manifest and would refuse
	// this one; a hostile host rewrites the manifest too. The guest's own
	// check must still stop the boot.
	rewriteManifest(t, tampered, "initrd")
	l = bootLaunch(t, tampered, static)
	t.Logf("tampered initrd: %s", l.fatal)
	if !strings.Contains(l.fatal, "cocoon-init: FATAL: replay the firmware event log") || !strings.Contains(l.fatal, "PCR9 = ") ||
		!strings.Contains(l.fatal, "expected "+boot["pcr9"]) {
		t.Errorf("tampered initrd: want a FATAL naming PCR9 and the expected value; console tail:\n%s", strings.Join(tail(l.console, 30), "\n"))
	}
	if l.has("worker started") {
		t.Error("the worker started on a tampered initrd")
	}
}

// rewriteManifest sets the size and sha256 of output name in dir's
// manifest.json to the file's.
func rewriteManifest(t *testing.T, dir, name string) {
	t.Helper()
	p := filepath.Join(dir, "manifest.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	for _, o := range m["outputs"].([]any) {
		if o := o.(map[string]any); o["name"] == name {
			o["size"], o["sha256"] = len(data), hex.EncodeToString(sum[:])
		}
	}
	b, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
