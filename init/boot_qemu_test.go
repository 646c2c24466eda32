package main

import (
	"bufio"
	"context"
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

	"github.com/cocoon-appliance/cocoon/image/bootparams"
	"github.com/cocoon-appliance/cocoon/init/config"
)

// The boot smoke test builds the image with the repo's CLI, boots it under
// QEMU (TCG, direct kernel boot) with a config disk, and reads the console.

func buildImage(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	if testing.Short() {
		t.Skip("boots a VM; skipped with -short")
	}
	tmp := t.TempDir()
	cli := filepath.Join(tmp, "cocoon")
	run(t, "..", "go", "build", "-o", cli, "./cmd/cocoon")
	img := filepath.Join(tmp, "img")
	run(t, "..", cli, "image", "build", "--out", img, "--quiet")
	disk, err := config.Encode(&config.Config{
		Schema: config.Schema,
		Static: config.Static{Model: "smoke-test", Policy: "dev"},
		// QEMU's user-mode network: guest 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3.
		Runtime: config.Runtime{Network: config.Network{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
			WorkerArgs: []string{"-listen", ":8080"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(img, "config.img"), disk, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// vm is one direct-kernel boot of the built image.
type vm struct {
	img      string   // image directory
	disk     string   // root disk file in img (default disk.img)
	cmdline  string   // "" reads img/cmdline
	noConfig bool     // boot without the config disk
	extra    []string // more QEMU arguments
	// then, when set, is called while the VM still runs, once done matched.
	then func()
}

// boot runs QEMU until a console line matches done or the deadline, and
// returns the console lines.
func (v vm) boot(t *testing.T, done *regexp.Regexp) []string {
	t.Helper()
	if v.disk == "" {
		v.disk = "disk.img"
	}
	if v.cmdline == "" {
		b, err := os.ReadFile(filepath.Join(v.img, "cmdline"))
		if err != nil {
			t.Fatal(err)
		}
		v.cmdline = string(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	q := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-machine", "q35", "-cpu", "max", "-m", "1024", "-smp", "1",
		"-nodefaults", "-nographic", "-serial", "stdio", "-no-reboot",
		"-kernel", filepath.Join(v.img, "vmlinuz"), "-initrd", filepath.Join(v.img, "initrd"),
		"-append", v.cmdline,
		"-drive", "file="+filepath.Join(v.img, v.disk)+",if=none,id=root,format=raw,readonly=on",
		"-device", "virtio-blk-pci,drive=root,serial=cocoon-root",
	)
	if !v.noConfig {
		q.Args = append(q.Args,
			"-drive", "file="+filepath.Join(v.img, "config.img")+",if=none,id=cfg,format=raw,readonly=on",
			"-device", "virtio-blk-pci,drive=cfg,serial=cocoon-config")
	}
	q.Args = append(q.Args, v.extra...)
	out, err := q.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	q.Stderr = q.Stdout
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { q.Process.Kill(); q.Wait() }()
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		lines = append(lines, l)
		if done.MatchString(l) {
			if v.then != nil {
				v.then()
			}
			return lines
		}
	}
	io.Copy(io.Discard, out)
	t.Errorf("console ended (%v) before %s", ctx.Err(), done)
	return lines
}

func initLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		if strings.HasPrefix(l, "cocoon-init:") || strings.HasPrefix(l, "worker:") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestBootQEMU(t *testing.T) {
	img := buildImage(t)
	port := freePort(t)
	var health string
	check := func() {
		// The guest answers a request forwarded from the host: network up.
		c := &http.Client{Timeout: 10 * time.Second}
		for i := 0; i < 20 && health == ""; i++ {
			if resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				health = string(b)
			} else {
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
	lines := vm{img: img, then: check, extra: []string{
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:8080", port), "-device", "virtio-net-pci,netdev=net0"},
	}.boot(t, regexp.MustCompile(`^worker: cocoon-worker: serving model|cocoon-init: FATAL|cocoon-init: worker exited`))
	if !strings.HasPrefix(health, "ok cocoon-worker") {
		t.Errorf("GET /healthz through the host forward: %q", health)
	} else {
		t.Logf("GET /healthz through the host forward: %q", health)
	}
	got := initLines(lines)
	t.Logf("console:\n%s", got)
	for _, want := range []string{
		"] mount -t proc ", "] cat /proc/cmdline ok", "] insmod $(cat /lib/modules/", "] mount -t configfs ",
		"] wait for root PARTUUIDs", "] dmsetup create --readonly root", "] mount -t squashfs -o ro /dev/mapper/root /sysroot && dmsetup status root && dmsetup table root ok",
		"cocoon-init: root /dev/dm-0 verified against root hash ",
		"] read config from the disk with serial cocoon-config ok", "] switch_root /sysroot ok",
		"ip link set up && ip addr add && ip route add default ok",
		"WARNING: no TPM and no TDX measurement registers; policy \"dev\" lets this development boot run UNMEASURED",
		"GPU gate: no NVIDIA GPU, none required",
		"cocoon-init: worker started (pid ", "worker: cocoon-worker: listening on :8080",
		// The dev policy lets the worker fall back to the quote simulator.
		"worker: cocoon-worker: serving model cocoon-test over RA-TLS on :8443 (attestation sim, key ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(got, "FATAL") {
		t.Errorf("boot failed:\n%s", strings.Join(lines, "\n"))
	}
}

// TestBootQEMUNegative boots images that must not come up; each must stop
// with a FATAL line naming the step, before the worker starts:
//   - one flipped byte in the squashfs superblock (the root partition
//     starts at 1 MiB): dm-verity refuses the block;
//   - a command line whose root hash is not the image's: no block verifies;
//   - no config disk.
func TestBootQEMUNegative(t *testing.T) {
	img := buildImage(t)
	disk, err := os.ReadFile(filepath.Join(img, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	disk[1<<20+100] ^= 0x01
	if err := os.WriteFile(filepath.Join(img, "tampered.img"), disk, 0o644); err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(filepath.Join(img, "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bootparams.Parse(strings.TrimSpace(string(cmdline)))
	if err != nil {
		t.Fatal(err)
	}
	p.Verity.RootHash[0] ^= 0x01
	wrongRoot, err := bootparams.Format(p)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		vm    vm
		fatal string // the console's FATAL line starts with this
	}{
		{"flipped rootfs byte", vm{img: img, disk: "tampered.img"}, "cocoon-init: FATAL: mount -t squashfs"},
		{"wrong root hash on the command line", vm{img: img, cmdline: wrongRoot}, "cocoon-init: FATAL: mount -t squashfs"},
		{"missing config disk", vm{img: img, noConfig: true}, "cocoon-init: FATAL: read config from the disk with serial cocoon-config: no config disk (serial cocoon-config)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := tc.vm.boot(t, regexp.MustCompile(`cocoon-init: (FATAL|worker started)`))
			got := initLines(lines)
			t.Logf("console:\n%s", got)
			if !strings.Contains(got, tc.fatal) {
				t.Errorf("want a line starting %q; console:\n%s", tc.fatal, strings.Join(lines, "\n"))
			}
			if strings.Contains(got, "worker started") {
				t.Error("the worker started")
			}
		})
	}
}
