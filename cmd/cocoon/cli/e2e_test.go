package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	initconfig "github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// TestE2ELaunchPCRs boots the built image through `cocoon host launch`
// (dev profile: QEMU TCG, OVMF, a fresh swtpm), waits for the init to print
// the PCRs it reads from the vTPM after measuring the static config, and
// compares them with `cocoon measure tpm` for the same image and runtime
// events: the end-to-end proof that prediction and boot agree.
func TestE2ELaunchPCRs(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM through OVMF (~30 s)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "swtpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	realBootFiles(t, t.TempDir()) // skips without the pinned inputs
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if code, _, stderr := execute("image", "build", "--quiet", "--src", "../../..", "--out", img); code != 0 {
		t.Fatalf("image build: %s", stderr)
	}
	static := initconfig.Static{Model: "e2e", Policy: "production"}
	guest, _ := json.Marshal(map[string]any{"static": static, "runtime": map[string]any{
		"network": map[string]any{"mode": "static", "address": "10.0.2.15/24", "gateway": "10.0.2.2"}}})
	hostCfg := fmt.Sprintf(`{"schema":"cocoon-host/v1","profile":"dev","image":%q,"cpus":1,"memory_mib":1024,"restart":{"max":0},"guest":%s}`, img, guest)
	cfgPath := filepath.Join(dir, "host.json")
	os.WriteFile(cfgPath, []byte(hostCfg), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	c := Context{Stdin: strings.NewReader(""), Stdout: pw, Stderr: io.Discard, Args: []string{"host", "launch", "--state", filepath.Join(dir, "state"), cfgPath}}
	done := make(chan int, 1)
	go func() { done <- c.Execute(ctx); pw.Close() }()
	regsRE := regexp.MustCompile(`cocoon-init: registers (.*)`)
	var regs, fatal string
	var console []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		l := sc.Text()
		console = append(console, l)
		if m := regsRE.FindStringSubmatch(l); m != nil {
			regs = m[1]
			break
		}
		if strings.Contains(l, "cocoon-init: FATAL") {
			fatal = l
			break
		}
	}
	cancel()
	go io.Copy(io.Discard, pr)
	<-done
	if regs == "" {
		t.Fatalf("no registers line (fatal: %q); console tail:\n%s", fatal, strings.Join(tail(console, 40), "\n"))
	}
	got := map[string]string{}
	for _, kv := range strings.Fields(regs) {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}

	// The prediction, for the same image, memory and runtime events.
	staticBytes, err := static.StaticBytes()
	if err != nil {
		t.Fatal(err)
	}
	rl, _ := runtime.Log{{Kind: runtime.KindStaticConfig, Payload: staticBytes}, {Kind: runtime.KindBootComplete}}.Marshal()
	rlPath := filepath.Join(dir, "runtime.log")
	os.WriteFile(rlPath, rl, 0o644)
	ver, err := exec.Command("qemu-system-x86_64", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	qv := regexp.MustCompile(`version (\d+\.\d+)`).FindSubmatch(ver)
	code, out, stderr := execute("measure", "tpm", "--image", img, "--memory", "1024", "--qemu", string(qv[1]), "--runtime", rlPath, "--json")
	if code != 0 {
		t.Fatalf("measure tpm: %s", stderr)
	}
	var want map[string]string
	json.Unmarshal([]byte(out), &want)
	for _, k := range []string{"pcr4", "pcr9", "pcr15"} {
		if got[k] == "" || got[k] != want[k] {
			t.Errorf("%s: guest read %s, predicted %s", k, got[k], want[k])
		}
	}
	t.Logf("guest PCRs equal the prediction: pcr4=%s pcr9=%s pcr15=%s", got["pcr4"], got["pcr9"], got["pcr15"])
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
