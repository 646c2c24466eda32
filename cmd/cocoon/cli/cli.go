// Package cli is the cocoon command line, driven through Context so tests
// can run any command in-process with their own streams and arguments.
package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Context is one invocation.
type Context struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Args           []string
}

// errUsage marks errors that come with usage help; exit status 2.
var errUsage = errors.New("usage")

type command struct {
	name, summary string
	run           func(ctx context.Context, c *Context, args []string) error
}

func (c *Context) commands() []command {
	return []command{
		{"image", "build, fetch and verify the appliance image", c.image},
		{"measure", "predict TDX/vTPM measurements, check quotes", c.measure},
		{"host", "launch the appliance on this host; check the host; list GPUs", c.host},
		{"registry", "run a registry; allowlist images; payouts", c.registry},
		{"client", "list verified workers; chat; a local OpenAI-compatible proxy", c.client},
		{"dev", "the whole network on this machine (dev up)", c.dev},
		{"version", "print the version", func(context.Context, *Context, []string) error {
			fmt.Fprintln(c.Stdout, "cocoon", Version)
			return nil
		}},
	}
}

// Version of the CLI.
const Version = "0.1.0"

// Execute runs the command and returns the process exit status: 0 success,
// 1 failure, 2 usage error.
func (c *Context) Execute(ctx context.Context) int {
	err := c.dispatch(ctx, "cocoon", c.Args, c.commands())
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(c.Stderr, "cocoon:", err)
		return 2
	default:
		fmt.Fprintln(c.Stderr, "cocoon:", err)
		return 1
	}
}

func (c *Context) dispatch(ctx context.Context, prefix string, args []string, cmds []command) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		c.usage(prefix, cmds)
		if len(args) == 0 {
			return fmt.Errorf("%w: %s needs a command", errUsage, prefix)
		}
		return flag.ErrHelp
	}
	for _, cmd := range cmds {
		if cmd.name == args[0] {
			return cmd.run(ctx, c, args[1:])
		}
	}
	c.usage(prefix, cmds)
	return fmt.Errorf("%w: unknown command %q", errUsage, prefix+" "+args[0])
}

func (c *Context) usage(prefix string, cmds []command) {
	w := bufio.NewWriter(c.Stderr)
	fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\nCommands:\n", prefix)
	for _, cmd := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", cmd.name, cmd.summary)
	}
	w.Flush()
}

// flags makes a FlagSet that reports to Stderr and does not exit.
func (c *Context) flags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.Stderr, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; positional arguments are refused unless allowed.
func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > positional {
		return nil, fmt.Errorf("%w: %s: unexpected argument %q", errUsage, fs.Name(), fs.Arg(positional))
	}
	return fs.Args(), nil
}

// ModulePath is this repository's Go module; findSource looks for its go.mod.
const ModulePath = "github.com/cocoon-appliance/cocoon"

// findSource returns the checkout holding this project's go.mod, searching
// upward from dir.
func findSource(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(strings.TrimPrefix(first, "module")) == ModulePath {
				return d, nil
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no checkout of %s at or above %s (pass --src)", ModulePath, dir)
		}
		d = parent
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// defaultCache is $COCOON_CACHE, else the user cache directory.
func defaultCache() string {
	if v := os.Getenv("COCOON_CACHE"); v != "" {
		return v
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "cocoon")
	}
	return filepath.Join(os.TempDir(), "cocoon-cache")
}
