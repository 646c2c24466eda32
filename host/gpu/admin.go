package gpu

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
)

// CC modes as gpu-admin-tools names them.
const (
	CCOn       = "on"
	CCOff      = "off"
	CCDevtools = "devtools"
)

// CCMode is a GPU's confidential-computing mode.
type CCMode struct{ Mode string }

// Valid reports whether m is one of on, off, devtools.
func (m CCMode) Valid() bool { return m.Mode == CCOn || m.Mode == CCOff || m.Mode == CCDevtools }

// Admin queries and sets a GPU's CC mode.
type Admin interface {
	QueryCC(addr string) (string, error)
	SetCC(addr, mode string) error
}

// ErrNoAdminTools means NVIDIA gpu-admin-tools is not installed.
var ErrNoAdminTools = errors.New("gpu: NVIDIA gpu-admin-tools not found: install it from https://github.com/NVIDIA/gpu-admin-tools and set its nvidia_gpu_tools.py path (needs python3 and root)")

// ErrBadMode is returned for a mode other than on, off, devtools.
var ErrBadMode = errors.New("gpu: bad CC mode")

// AdminTools runs NVIDIA's nvidia_gpu_tools.py.
type AdminTools struct {
	Python string // default "python3"
	Script string // path to nvidia_gpu_tools.py; required
	// Run executes a command and returns its combined output; nil runs it.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

func (a AdminTools) run(args ...string) ([]byte, error) {
	if a.Script == "" {
		return nil, ErrNoAdminTools
	}
	py := a.Python
	if py == "" {
		py = "python3"
	}
	run := a.Run
	if run == nil {
		if _, err := exec.LookPath(py); err != nil {
			return nil, fmt.Errorf("%w (%s: %v)", ErrNoAdminTools, py, err)
		}
		run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).CombinedOutput()
		}
	}
	return run(context.Background(), py, append([]string{a.Script}, args...)...)
}

// The tool logs e.g. "... GPU 0000:1b:00.0 H100-PCIE ... CC mode is on".
var ccLine = regexp.MustCompile(`CC mode is (on|off|devtools)\b`)

// QueryCC returns on, off or devtools.
func (a AdminTools) QueryCC(addr string) (string, error) {
	if !pciAddr.MatchString(addr) {
		return "", fmt.Errorf("%w: %q", ErrBadAddress, addr)
	}
	out, err := a.run("--gpu-bdf="+addr, "--query-cc-mode")
	if err != nil {
		return "", fmt.Errorf("gpu: %s: query CC mode: %w\n%s", addr, err, out)
	}
	m := ccLine.FindAllSubmatch(out, -1)
	if len(m) == 0 {
		return "", fmt.Errorf("gpu: %s: query CC mode: no \"CC mode is on|off|devtools\" in output:\n%s", addr, out)
	}
	return string(m[len(m)-1][1]), nil
}

// SetCC sets the mode and resets the GPU so it takes effect.
func (a AdminTools) SetCC(addr, mode string) error {
	if !pciAddr.MatchString(addr) {
		return fmt.Errorf("%w: %q", ErrBadAddress, addr)
	}
	if !(CCMode{mode}).Valid() {
		return fmt.Errorf("%w: %q, want on, off or devtools", ErrBadMode, mode)
	}
	out, err := a.run("--gpu-bdf="+addr, "--set-cc-mode="+mode, "--reset-after-cc-mode-switch")
	if err != nil {
		return fmt.Errorf("gpu: %s: set CC mode %s: %w\n%s", addr, mode, err, out)
	}
	return nil
}
