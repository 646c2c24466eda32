//go:build unix

package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScreenshot renders the page in a real headless Chromium: the golden file
// proves the bytes, this proves a browser draws them (CSS valid, CSP not
// blocking the inline style, badges visible in the first screen).
//
//	COCOON_REQUIRE_CHROMIUM=1  fail instead of skip when no browser is installed
//	COCOON_SCREENSHOT_DIR=dir  keep dashboard.png there for a human to look at
func TestScreenshot(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		msg := "no chromium or chromium-browser in PATH (apt-get install chromium)"
		if os.Getenv("COCOON_REQUIRE_CHROMIUM") == "1" {
			t.Fatal(msg + "; COCOON_REQUIRE_CHROMIUM=1 makes this a failure")
		}
		t.Skip(msg + "; set COCOON_REQUIRE_CHROMIUM=1 to make this a failure")
	}
	v := fixture()
	srv := httptest.NewServer(Handler(fixed(v)))
	defer srv.Close()
	url := srv.URL + "/"
	dir := t.TempDir()

	// The two runs are independent, so run them side by side to halve the time.
	shot := filepath.Join(dir, "dashboard.png")
	type result struct {
		out []byte
		err error
	}
	domc := make(chan result, 1)
	go func() {
		out, err := runChromium(bin, filepath.Join(dir, "profile-dom"), "--dump-dom", url)
		domc <- result{out, err}
	}()
	out, err := runChromium(bin, filepath.Join(dir, "profile-shot"), "--screenshot="+shot, url)
	dom := <-domc // before any Fatal: TempDir cleanup must not race a live browser
	if err != nil {
		t.Fatalf("screenshot: %v\n%s", err, out)
	}
	if dom.err != nil {
		t.Fatalf("dump-dom: %v\n%s", dom.err, dom.out)
	}

	checkDOM(t, string(dom.out), v)
	img := checkPNG(t, shot)
	if d := os.Getenv("COCOON_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(shot)
		if err := os.WriteFile(filepath.Join(d, "dashboard.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", filepath.Join(d, "dashboard.png"))
	}
	checkColours(t, img)
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// runChromium runs one headless Chromium with its own profile and a hard
// deadline. Chromium forks helpers (zygote, renderer); they get their own
// process group so a timeout kills all of them, not just the launcher.
func runChromium(bin, profile string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	base := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1280,900",
		"--user-data-dir=" + profile,
		// Pin what affects pixels, so the colour check can ask for exact RGB.
		"--force-device-scale-factor=1", "--force-color-profile=srgb",
		// Quiet and quick in a container: no first-run UI, no crash dumps,
		// no /dev/shm (often 64 MiB in Docker).
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-dev-shm-usage", "--disable-breakpad",
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	// Keep HOME-relative caches (fontconfig, .pki) inside the test's temp dir.
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+profile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 3 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		// Helpers that outlive a clean exit would leak past the test.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("chromium timed out: %w", ctx.Err())
	}
	if err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

func checkDOM(t *testing.T, dom string, v *View) {
	t.Helper()
	if !strings.Contains(dom, "<table") {
		t.Fatalf("dumped DOM has no tables:\n%.2000s", dom)
	}
	want := []string{formatTON(v.Wallet.Balance), formatTON(v.Totals.Earned), formatTON(v.Totals.Fees)}
	for _, w := range v.Workers {
		want = append(want, w.ID, formatTON(w.Earned))
	}
	for _, b := range v.Batches {
		want = append(want, "#"+strconv.FormatInt(b.ID, 10), formatTON(b.Total))
	}
	want = append(want, "SIMULATED")
	for _, s := range want {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered DOM lacks %q", s)
		}
	}
}

func checkPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Fatalf("screenshot is %dx%d, want 1280x900", b.Dx(), b.Dy())
	}
	return img
}

// checkColours wants a page that is not blank (anti-aliased text alone gives
// hundreds of colours) and the badge backgrounds painted with the exact RGB
// the stylesheet defines.
func checkColours(t *testing.T, img image.Image) {
	t.Helper()
	seen := map[[3]uint8]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}]++
		}
	}
	if len(seen) < 100 {
		t.Errorf("screenshot has only %d distinct colours; looks blank", len(seen))
	}
	for name, hex := range map[string]string{
		"attested (green)": colorOK,
		"expired (amber)":  colorWarn,
		"offline (grey)":   colorOff,
		"SIMULATED (red)":  colorBad,
	} {
		c := parseHex(t, hex)
		// A badge is ~60x20 px; well over 100 solid pixels means it was drawn,
		// not just a stray anti-aliasing pixel that happens to match.
		if n := seen[c]; n < 100 {
			t.Errorf("badge colour %s %s: %d pixels in screenshot, want >= 100", name, hex, n)
		}
	}
}

func parseHex(t *testing.T, s string) [3]uint8 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	if err != nil || len(s) != 7 {
		t.Fatalf("bad colour constant %q", s)
	}
	return [3]uint8{uint8(v >> 16), uint8(v >> 8), uint8(v)}
}
